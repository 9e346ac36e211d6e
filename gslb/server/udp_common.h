/* What both UDP loops (gslb/server/_udpbatch.c and _engine.c) do the same way: reply from the
 * address a query was sent to (PKTINFO), and count per-query handler time in doubling buckets
 * (<1, <2, <4 ... <1024 us, then everything slower) that the workers ship to /metrics.
 * Each extension gets its own counters (static); the worker adds them up. */
#ifndef GSLB_UDP_COMMON_H
#define GSLB_UDP_COMMON_H

#include <Python.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define HANDLER_BUCKETS 12

static unsigned long long handler_histogram[HANDLER_BUCKETS];
static unsigned long long handler_ns_sum; /* the exact total behind the buckets: /metrics' _sum */

static long long
now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The bucket of a query that took `ns`. */
static inline int
handler_bucket(long long ns)
{
    long long limit = 1000;
    int i = 0;
    while (i < HANDLER_BUCKETS - 1 && ns >= limit) {
        limit <<= 1;
        i++;
    }
    return i;
}

/* Count one query that took `ns`; safe from threads that do not hold the GIL. */
static void
observe_ns(long long ns)
{
    __atomic_fetch_add(&handler_histogram[handler_bucket(ns)], 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&handler_ns_sum, (unsigned long long)(ns > 0 ? ns : 0), __ATOMIC_RELAXED);
}

/* `count` queries that took `ns` together, counted evenly (each in the bucket of the mean; the
 * exact total in the sum) with one atomic add per bucket touched, not two per query: the
 * native engine's first pass answers a batch without a system call or the GIL, so its queries
 * differ little, and per-query clock readings and atomics were a visible part of its user time. */
static inline void
observe_even(long long ns, int count)
{
    if (ns < 0)
        ns = 0;
    __atomic_fetch_add(&handler_histogram[handler_bucket(ns / count)], (unsigned long long)count,
                       __ATOMIC_RELAXED);
    __atomic_fetch_add(&handler_ns_sum, (unsigned long long)ns, __ATOMIC_RELAXED);
}

/* The sum of every observed time in nanoseconds (the module's `histogram_sum_ns()`). */
static PyObject *
histogram_sum_ns(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyLong_FromUnsignedLongLong(__atomic_load_n(&handler_ns_sum, __ATOMIC_RELAXED));
}

/* The counts as a Python list (the module's `histogram()`). */
static PyObject *
histogram_list(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    PyObject *out = PyList_New(HANDLER_BUCKETS);
    if (!out)
        return NULL;
    for (int i = 0; i < HANDLER_BUCKETS; i++)
        PyList_SET_ITEM(out, i, PyLong_FromUnsignedLongLong(__atomic_load_n(&handler_histogram[i],
                                                                             __ATOMIC_RELAXED)));
    return out;
}

/* Copy the destination address of a received datagram into the source of its reply: anycast
 * nodes hold several addresses, and a reply must leave from the one the client asked. `buf`
 * holds at least CMSG_SPACE(sizeof(struct in6_pktinfo)) bytes. */
static void
reply_source(struct msghdr *in, struct msghdr *out, char *buf)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(in); c; c = CMSG_NXTHDR(in, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo got, info;
            memcpy(&got, CMSG_DATA(c), sizeof(got));
            memset(&info, 0, sizeof(info));
            info.ipi_spec_dst = got.ipi_addr;
            out->msg_control = buf;
            out->msg_controllen = CMSG_SPACE(sizeof(info));
            struct cmsghdr *o = CMSG_FIRSTHDR(out);
            o->cmsg_level = IPPROTO_IP;
            o->cmsg_type = IP_PKTINFO;
            o->cmsg_len = CMSG_LEN(sizeof(info));
            memcpy(CMSG_DATA(o), &info, sizeof(info));
            return;
        }
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo got, info;
            memcpy(&got, CMSG_DATA(c), sizeof(got));
            memset(&info, 0, sizeof(info));
            info.ipi6_addr = got.ipi6_addr;
            out->msg_control = buf;
            out->msg_controllen = CMSG_SPACE(sizeof(info));
            struct cmsghdr *o = CMSG_FIRSTHDR(out);
            o->cmsg_level = IPPROTO_IPV6;
            o->cmsg_type = IPV6_PKTINFO;
            o->cmsg_len = CMSG_LEN(sizeof(info));
            memcpy(CMSG_DATA(o), &info, sizeof(info));
            return;
        }
    }
}

#endif
