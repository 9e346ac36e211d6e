/*
 * Response rate limiting and per-prefix query limits for the native engine (_engine.c), with
 * the semantics and the configuration of gslb/server/rrl.py, which stays the reference: the same
 * response classes and accounts, the same token-bucket arithmetic (doubles, like Python floats),
 * the same slip counter, exempt prefixes, log-only mode, and the valid-server-cookie exemption
 * (RFC 9018 cookies checked with the shared secrets). A differential test (tests/test_abuse_native.py)
 * feeds both the same (time, client, response) sequences and compares every decision.
 *
 * Memory is bounded: one fixed table of buckets per limiter, slot = hash % size; a slot holds a
 * 64-bit fingerprint of its account (class, prefix, name) instead of the key itself, and a
 * collision restarts the bucket, as in rrl.py. Per-ASN limits need the ASN database, so they stay
 * in Python: abuse_config does not hand such a configuration to the engine.
 *
 * Threads: every UDP loop of a worker shares one rrl_state; its own mutex guards it (never held
 * while taking another lock). The hooks run without the GIL.
 *
 *   rrl_gate(s, query...)    before answering: the query limits; 1 = decided (REFUSED or drop)
 *   rrl_filter(s, query, response...)  before sending: pass, slip (a TC=1 answer) or drop
 */
#ifndef GSLB_RRL_H
#define GSLB_RRL_H

#include <Python.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "siphash24.h"

#define RRL_CLASSES 5 /* positive, nxdomain, nodata, referral, error: rrl.py's order */
#define RRL_POSITIVE 0
#define RRL_NXDOMAIN 1
#define RRL_NODATA 2
#define RRL_REFERRAL 3
#define RRL_ERROR 4

enum { RRL_PASS = 0, RRL_REPLACED = 1, RRL_DROP = 2 };

typedef struct {
    uint64_t key; /* fingerprint of the account; 0: empty */
    double credit, stamp;
} rrl_bucket;

typedef struct {
    unsigned char addr[16];
    int v4; /* 1: an IPv4 network (4 bytes), else IPv6 */
    int bits;
} rrl_net;

typedef struct {
    rrl_bucket *slots;
    size_t size;
} rrl_table;

typedef struct {
    pthread_mutex_t mu;
    /* RRL */
    int rrl_on, log_only, window, slip, v4, v6;
    long long rates[RRL_CLASSES];
    rrl_table table;
    rrl_net *exempt;
    size_t n_exempt;
    unsigned long long slip_count;
    /* cookies: a valid server cookie skips RRL */
    int cookies_on, has_previous;
    unsigned char secret[16], previous[16];
    double previous_until;
    /* query limits (per prefix) */
    int ql_on, ql_refuse, ql_v4, ql_v6;
    long long ql_rate;
    rrl_table ql_table;
    rrl_net *ql_exempt;
    size_t n_ql_exempt;
    /* counters, as rrl.Stats and rrl.QueryStats */
    unsigned long long limited[RRL_CLASSES], dropped[RRL_CLASSES], slipped[RRL_CLASSES];
    unsigned long long would_limit[RRL_CLASSES], exempted, cookie_passed;
    unsigned long long limited6[RRL_CLASSES], dropped6[RRL_CLASSES], slipped6[RRL_CLASSES]; /* IPv6 clients' part */
    unsigned long long would_limit6[RRL_CLASSES];
    unsigned long long prefix_refused, prefix_dropped;
} rrl_state;

/* ---------------------------------------------------------------------------------------- */
/* Pure helpers.                                                                                */

static inline double
rrl_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline uint64_t
rrl_mix(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001B3ULL;
    }
    return h;
}

static inline uint64_t
rrl_final(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xFF51AFD7ED558CCDULL;
    h ^= h >> 33;
    return h ? h : 1; /* 0 marks an empty slot */
}

/* The client's address with an IPv4-mapped IPv6 address reduced to IPv4 (rrl.py, cookies.py). */
static inline void
rrl_unmap(const unsigned char **client, size_t *clen)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (*clen == 16 && memcmp(*client, mapped, 12) == 0) {
        *client += 12;
        *clen = 4;
    }
}

/* rrl.prefix_key: the masked prefix bytes and a family tag; returns its length. */
static inline size_t
rrl_prefix(const unsigned char *client, size_t clen, int v4_bits, int v6_bits, unsigned char *out)
{
    rrl_unmap(&client, &clen);
    int bits = clen == 4 ? v4_bits : v6_bits;
    size_t whole = (size_t)bits / 8, rest = (size_t)bits % 8, n = whole;
    if (whole > clen)
        whole = n = clen;
    memcpy(out, client, whole);
    if (rest && whole < clen)
        out[n++] = (unsigned char)(client[whole] & ((0xFF << (8 - rest)) & 0xFF));
    out[n++] = clen == 4 ? 4 : 6;
    return n;
}

static inline int
rrl_in_nets(const unsigned char *client, size_t clen, const rrl_net *nets, size_t count)
{
    rrl_unmap(&client, &clen);
    for (size_t i = 0; i < count; i++) {
        const rrl_net *net = &nets[i];
        if ((clen == 4) != (net->v4 != 0))
            continue;
        int whole = net->bits / 8, rest = net->bits % 8;
        if (memcmp(client, net->addr, (size_t)whole) != 0)
            continue;
        if (rest && ((client[whole] ^ net->addr[whole]) & (0xFF << (8 - rest)) & 0xFF))
            continue;
        return 1;
    }
    return 0;
}

/* rrl.Buckets.take: spend one from the account's bucket; 0 when it is over its rate. */
static inline int
rrl_take(rrl_table *t, uint64_t key, long long rate, int window, double now)
{
    rrl_bucket *b = &t->slots[key % t->size];
    if (b->key != key) {
        b->key = key;
        b->stamp = now;
        b->credit = (double)rate - 1.0;
        return 1;
    }
    double credit = b->credit + (now - b->stamp) * (double)rate;
    b->stamp = now;
    if (credit > (double)rate)
        credit = (double)rate;
    if (credit >= 1.0) {
        b->credit = credit - 1.0;
        return 1;
    }
    if (window > 1) {
        credit -= 1.0;
        double floor = -(double)(rate * (window - 1));
        if (credit < floor)
            credit = floor;
    }
    b->credit = credit;
    return 0;
}

/* rrl._name: the owner name at `pos` (pointers followed, at most 128 steps) hashed lower-cased. */
static inline int
rrl_hash_name(const unsigned char *m, size_t n, size_t pos, uint64_t *h)
{
    for (int step = 0; step < 128; step++) {
        if (pos >= n)
            return -1;
        unsigned len = m[pos];
        if (len == 0) {
            unsigned char z = 0;
            *h = rrl_mix(*h, &z, 1);
            return 0;
        }
        if (len >= 0xC0) {
            if (pos + 1 >= n)
                return -1;
            pos = ((size_t)(len & 0x3F) << 8) | m[pos + 1];
            continue;
        }
        size_t end = pos + len + 1 < n ? pos + len + 1 : n; /* a slice: short at the end */
        for (size_t i = pos; i < end; i++) {
            unsigned char c = m[i];
            c = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
            *h = rrl_mix(*h, &c, 1);
        }
        pos += len + 1;
    }
    return -1;
}

static inline void
rrl_hash_lower(uint64_t *h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        c = (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
        *h = rrl_mix(*h, &c, 1);
    }
}

/* rrl.classify: the response's class, and its account name mixed into *h (after the prefix). */
static inline int
rrl_classify(const unsigned char *o, size_t n, uint64_t *h)
{
    uint64_t start = *h;
    if (n < 12)
        goto error;
    int rcode = o[3] & 0x0F;
    size_t qd = ((size_t)o[4] << 8) | o[5], pos = 12, qend = 12; /* qname: o[12..qend) */
    if (qd) {
        size_t end = pos;
        for (;;) {
            if (end >= n)
                goto error;
            if (!o[end])
                break;
            end += (size_t)o[end] + 1;
        }
        qend = end + 1 < n ? end + 1 : n;
        pos = end + 5;
    }
    if (rcode == 3 || rcode == 0) {
        size_t an = ((size_t)o[6] << 8) | o[7], ns = ((size_t)o[8] << 8) | o[9];
        if (rcode == 0 && (an || (o[2] & 0x02))) {
            rrl_hash_lower(h, o + 12, qend - 12);
            size_t a = pos - 4 < n ? pos - 4 : n, b = pos - 2 < n ? pos - 2 : n; /* the qtype slice */
            *h = rrl_mix(*h, o + a, b - a);
            return RRL_POSITIVE;
        }
        if (ns && pos < n) {
            if (rrl_hash_name(o, n, pos, h) < 0)
                goto error;
        } else {
            rrl_hash_lower(h, o + 12, qend - 12);
        }
        if (rcode == 3)
            return RRL_NXDOMAIN;
        if ((o[2] & 0x04) || !ns)
            return RRL_NODATA;
        return RRL_REFERRAL;
    }
error:
    *h = start;
    return RRL_ERROR;
}

/* rrl._truncated: the slip answer (header with TC, rcode cleared, no records; the question). */
static inline size_t
rrl_truncated(const unsigned char *o, size_t n, unsigned char *out)
{
    size_t pos = 12;
    if (((size_t)o[4] << 8 | o[5]) != 0) {
        while (pos < n && o[pos])
            pos += (size_t)o[pos] + 1;
        pos += 5;
    }
    if (pos > n)
        pos = n;
    unsigned flags = ((((unsigned)o[2] << 8) | o[3]) & 0xFFF0) | 0x0200;
    out[0] = o[0];
    out[1] = o[1];
    out[2] = (unsigned char)(flags >> 8);
    out[3] = (unsigned char)flags;
    out[4] = o[4];
    out[5] = o[5];
    memset(out + 6, 0, 6);
    memmove(out + 12, o + 12, pos - 12);
    return pos;
}

/* rrl.refused: REFUSED with the query's question; 0 when the packet is not a query. */
static inline size_t
rrl_refused(const unsigned char *q, size_t n, unsigned char *out)
{
    if (n < 12 || (q[2] & 0x80))
        return 0;
    size_t pos = 12;
    int qd = 0;
    if ((((size_t)q[4] << 8) | q[5]) == 1) {
        int bad = 0;
        for (;;) {
            if (pos >= n) {
                bad = 1;
                break;
            }
            if (!q[pos])
                break;
            if (q[pos] > 63) {
                bad = 1;
                break;
            }
            pos += (size_t)q[pos] + 1;
        }
        if (!bad) {
            pos += 5;
            if (pos <= n)
                qd = 1;
        }
    }
    if (!qd)
        pos = 12;
    unsigned flags = ((((unsigned)q[2] << 8) | q[3]) & 0x7910) | 0x8000 | 5;
    out[0] = q[0];
    out[1] = q[1];
    out[2] = (unsigned char)(flags >> 8);
    out[3] = (unsigned char)flags;
    out[4] = 0;
    out[5] = (unsigned char)qd;
    memset(out + 6, 0, 6);
    memmove(out + 12, q + 12, pos - 12);
    return pos;
}

/* cookies.find_option: the COOKIE option body of a plain query; its length, or -1. */
static inline long
rrl_find_cookie(const unsigned char *d, size_t n, const unsigned char **body)
{
    if (n < 17 || d[10] != 0 || d[11] != 1)
        return -1;
    size_t pos = 12;
    while (pos < n && d[pos]) {
        if (d[pos] > 63)
            return -1;
        pos += (size_t)d[pos] + 1;
    }
    pos += 5;
    if (pos + 11 > n || d[pos] != 0 || d[pos + 1] != 0 || d[pos + 2] != 41)
        return -1;
    size_t end = pos + 11 + (((size_t)d[pos + 9] << 8) | d[pos + 10]);
    pos += 11;
    while (pos + 4 <= end && end <= n) {
        unsigned code = ((unsigned)d[pos] << 8) | d[pos + 1];
        size_t length = ((size_t)d[pos + 2] << 8) | d[pos + 3];
        if (code == 10) {
            if (pos + 4 + length <= end && (length == 8 || (length >= 16 && length <= 40))) {
                *body = d + pos + 4;
                return (long)length;
            }
            return -1;
        }
        pos += 4 + length;
    }
    return -1;
}

static inline int
rrl_sip_equal(const unsigned char *key, const unsigned char *msg, size_t len, const unsigned char *mac)
{
    uint64_t v = siphash24(key, msg, len);
    for (int i = 0; i < 8; i++)
        if (mac[i] != (unsigned char)(v >> (8 * i)))
            return 0;
    return 1;
}

/* cookies.has_valid_cookie: the query carries one of our server cookies, within its window. */
static inline int
rrl_valid_cookie(const rrl_state *s, const unsigned char *q, size_t n, const unsigned char *client, size_t clen,
                 double wall)
{
    const unsigned char *opt;
    long len = rrl_find_cookie(q, n, &opt);
    if (len <= 8 || len - 8 != 16)
        return 0;
    const unsigned char *sc = opt + 8;
    if (sc[0] != 1 || sc[1] || sc[2] || sc[3])
        return 0;
    uint32_t ts = ((uint32_t)sc[4] << 24) | ((uint32_t)sc[5] << 16) | ((uint32_t)sc[6] << 8) | sc[7];
    long long age = (long long)(((uint64_t)(long long)wall - ts) & 0xFFFFFFFFULL);
    if (age >= 0x80000000LL)
        age -= 0x100000000LL;
    if (age > 3600 || age < -300)
        return 0;
    rrl_unmap(&client, &clen);
    unsigned char msg[8 + 8 + 16];
    memcpy(msg, opt, 8);
    memcpy(msg + 8, sc, 8);
    memcpy(msg + 16, client, clen);
    if (rrl_sip_equal(s->secret, msg, 16 + clen, sc + 8))
        return 1;
    return s->has_previous && wall < s->previous_until && rrl_sip_equal(s->previous, msg, 16 + clen, sc + 8);
}

/* ---------------------------------------------------------------------------------------- */
/* The two hooks.                                                                               */

/* Query limits before answering (rrl.QueryLimiter.over + guard): 1 when decided, with *outlen
 * the REFUSED answer written to `out`, or 0 for a drop. */
static inline int
rrl_gate_at(rrl_state *s, const unsigned char *q, size_t n, const unsigned char *client, size_t clen,
            unsigned char *out, size_t *outlen, double now)
{
    unsigned char p[18];
    size_t plen = rrl_prefix(client, clen, s->ql_v4, s->ql_v6, p);
    unsigned char zero = 0;
    uint64_t key = rrl_final(rrl_mix(rrl_mix(0xCBF29CE484222325ULL, &zero, 1), p, plen));
    pthread_mutex_lock(&s->mu);
    int over = !rrl_take(&s->ql_table, key, s->ql_rate, 1, now);
    if (over && rrl_in_nets(client, clen, s->ql_exempt, s->n_ql_exempt))
        over = 0;
    if (over) {
        if (s->ql_refuse)
            s->prefix_refused++;
        else
            s->prefix_dropped++;
    }
    pthread_mutex_unlock(&s->mu);
    if (!over)
        return 0;
    *outlen = s->ql_refuse ? rrl_refused(q, n, out) : 0;
    return 1;
}

static inline int
rrl_gate(rrl_state *s, const unsigned char *q, size_t n, const unsigned char *client, size_t clen,
         unsigned char *out, size_t *outlen)
{
    if (!s || !s->ql_on)
        return 0;
    return rrl_gate_at(s, q, n, client, clen, out, outlen, rrl_clock(CLOCK_MONOTONIC));
}

/* RRL before sending (rrl.Limiter.filter): RRL_PASS (send `r` as is), RRL_REPLACED (send the
 * *outlen bytes written to `out`, the slip answer) or RRL_DROP. */
static inline int
rrl_filter_at(rrl_state *s, const unsigned char *q, size_t qn, const unsigned char *client, size_t clen,
              const unsigned char *r, size_t rn, unsigned char *out, size_t *outlen, double now, double wall)
{
    unsigned char p[18];
    size_t plen = rrl_prefix(client, clen, s->v4, s->v6, p);
    uint64_t h = rrl_mix(0x84222325CBF29CE4ULL, p, plen);
    int cls = rrl_classify(r, rn, &h);
    unsigned char c = (unsigned char)cls;
    uint64_t key = rrl_final(rrl_mix(h, &c, 1));
    pthread_mutex_lock(&s->mu);
    int verdict = RRL_PASS;
    if (rrl_take(&s->table, key, s->rates[cls], s->window, now))
        goto done;
    if (s->n_exempt && rrl_in_nets(client, clen, s->exempt, s->n_exempt)) {
        s->exempted++;
        goto done;
    }
    if (s->cookies_on && qn > 11 && q[11] && rrl_valid_cookie(s, q, qn, client, clen, wall)) {
        s->cookie_passed++;
        goto done;
    }
    int v6 = p[plen - 1] == 6;
    s->limited[cls]++;
    s->limited6[cls] += v6;
    if (s->log_only) {
        s->would_limit[cls]++;
        s->would_limit6[cls] += v6;
        goto done;
    }
    if (s->slip) {
        if (++s->slip_count >= (unsigned long long)s->slip) {
            s->slip_count = 0;
            s->slipped[cls]++;
            s->slipped6[cls] += v6;
            verdict = RRL_REPLACED;
            goto done;
        }
    }
    s->dropped[cls]++;
    s->dropped6[cls] += v6;
    verdict = RRL_DROP;
done:
    pthread_mutex_unlock(&s->mu);
    if (verdict == RRL_REPLACED)
        *outlen = rn >= 12 ? rrl_truncated(r, rn, out) : 0;
    if (verdict == RRL_REPLACED && !*outlen)
        verdict = RRL_DROP;
    return verdict;
}

static inline int
rrl_filter(rrl_state *s, const unsigned char *q, size_t qn, const unsigned char *client, size_t clen,
           const unsigned char *r, size_t rn, unsigned char *out, size_t *outlen)
{
    if (!s || !s->rrl_on)
        return RRL_PASS;
    return rrl_filter_at(s, q, qn, client, clen, r, rn, out, outlen, rrl_clock(CLOCK_MONOTONIC),
                         s->cookies_on ? rrl_clock(CLOCK_REALTIME) : 0.0);
}

/* ---------------------------------------------------------------------------------------- */
/* Python side: configure, read the counters, and one decision at a time for the tests.        */

static int
rrl_get_long(PyObject *d, const char *k, long long lo, long long hi, long long *out)
{
    PyObject *v = PyDict_GetItemString(d, k);
    if (!v) {
        PyErr_Format(PyExc_KeyError, "limits config needs %s", k);
        return -1;
    }
    long long x = PyLong_AsLongLong(v);
    if (x == -1 && PyErr_Occurred())
        return -1;
    if (x < lo || x > hi) {
        PyErr_Format(PyExc_ValueError, "%s out of range", k);
        return -1;
    }
    *out = x;
    return 0;
}

static int
rrl_get_nets(PyObject *d, const char *k, rrl_net **nets, size_t *count)
{
    PyObject *v = PyDict_GetItemString(d, k);
    if (!v || !PyTuple_Check(v)) {
        PyErr_Format(PyExc_TypeError, "%s: a tuple of (address bytes, prefix length)", k);
        return -1;
    }
    Py_ssize_t m = PyTuple_GET_SIZE(v);
    *nets = m ? calloc((size_t)m, sizeof(rrl_net)) : NULL;
    *count = 0;
    if (m && !*nets) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        const char *a;
        Py_ssize_t alen;
        int bits;
        if (!PyArg_ParseTuple(PyTuple_GET_ITEM(v, i), "y#i", &a, &alen, &bits))
            return -1;
        if ((alen != 4 && alen != 16) || bits < 0 || bits > alen * 8) {
            PyErr_SetString(PyExc_ValueError, "bad exempt network");
            return -1;
        }
        memcpy((*nets)[i].addr, a, (size_t)alen);
        (*nets)[i].v4 = alen == 4;
        (*nets)[i].bits = bits;
        (*count)++;
    }
    return 0;
}

static int
rrl_get_secret(PyObject *d, const char *k, unsigned char *out, int *has)
{
    PyObject *v = PyDict_GetItemString(d, k);
    *has = 0;
    if (!v || v == Py_None)
        return 0;
    if (!PyBytes_Check(v) || PyBytes_GET_SIZE(v) != 16) {
        PyErr_Format(PyExc_ValueError, "%s: 16 bytes", k);
        return -1;
    }
    memcpy(out, PyBytes_AS_STRING(v), 16);
    *has = 1;
    return 0;
}

static void
rrl_release(rrl_state *s)
{
    free(s->table.slots);
    free(s->ql_table.slots);
    free(s->exempt);
    free(s->ql_exempt);
    s->table.slots = s->ql_table.slots = NULL;
    s->exempt = s->ql_exempt = NULL;
}

/* Read a config dict (abuse_config.native_limits) into `n` (tables allocated). */
static int
rrl_read(rrl_state *n, PyObject *cfg)
{
    long long v[12];
    static const char *keys[] = {"rrl", "log_only", "window", "slip", "ipv4_prefix", "ipv6_prefix", "table_size",
                                 "query_limits", "ql_refuse", "ql_ipv4_prefix", "ql_ipv6_prefix", "ql_rate"};
    static const long long lo[] = {0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0};
    static const long long hi[] = {1, 1, 3600, 1000, 32, 128, 1 << 24, 1, 1, 32, 128, 1LL << 40};
    for (int i = 0; i < 12; i++)
        if (rrl_get_long(cfg, keys[i], lo[i], hi[i], &v[i]) < 0)
            return -1;
    PyObject *rates = PyDict_GetItemString(cfg, "rates");
    if (!rates || !PyTuple_Check(rates) || PyTuple_GET_SIZE(rates) != RRL_CLASSES) {
        PyErr_SetString(PyExc_TypeError, "rates: a tuple of 5 ints");
        return -1;
    }
    for (int i = 0; i < RRL_CLASSES; i++) {
        n->rates[i] = PyLong_AsLongLong(PyTuple_GET_ITEM(rates, i));
        if (n->rates[i] < 1) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "rates are >= 1");
            return -1;
        }
    }
    n->rrl_on = (int)v[0];
    n->log_only = (int)v[1];
    n->window = (int)v[2];
    n->slip = (int)v[3];
    n->v4 = (int)v[4];
    n->v6 = (int)v[5];
    n->table.size = (size_t)v[6];
    n->ql_on = (int)v[7];
    n->ql_refuse = (int)v[8];
    n->ql_v4 = (int)v[9];
    n->ql_v6 = (int)v[10];
    n->ql_rate = v[11];
    n->ql_table.size = 16384;
    PyObject *qls = PyDict_GetItemString(cfg, "ql_table_size");
    if (qls && PyLong_Check(qls) && PyLong_AsLongLong(qls) >= 1)
        n->ql_table.size = (size_t)PyLong_AsLongLong(qls);
    if (n->ql_on && n->ql_rate < 1) {
        PyErr_SetString(PyExc_ValueError, "ql_rate >= 1 when query limits are on");
        return -1;
    }
    int has;
    if (rrl_get_secret(cfg, "secret", n->secret, &n->cookies_on) < 0
        || rrl_get_secret(cfg, "previous_secret", n->previous, &has) < 0)
        return -1;
    n->has_previous = has;
    PyObject *until = PyDict_GetItemString(cfg, "previous_valid_until");
    n->previous_until = until ? PyFloat_AsDouble(until) : 0.0;
    if (PyErr_Occurred())
        return -1;
    if (rrl_get_nets(cfg, "exempt", &n->exempt, &n->n_exempt) < 0
        || rrl_get_nets(cfg, "ql_exempt", &n->ql_exempt, &n->n_ql_exempt) < 0)
        return -1;
    n->table.slots = calloc(n->table.size, sizeof(rrl_bucket));
    n->ql_table.slots = calloc(n->ql_table.size, sizeof(rrl_bucket));
    if (!n->table.slots || !n->ql_table.slots) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* set_limits(cfg | None): (re)configure in place; the state lives as long as the engine. */
static PyObject *
rrl_py_set(rrl_state **slot, PyObject *cfg)
{
    if (cfg == Py_None) {
        if (*slot) {
            pthread_mutex_lock(&(*slot)->mu);
            (*slot)->rrl_on = (*slot)->ql_on = 0;
            pthread_mutex_unlock(&(*slot)->mu);
        }
        Py_RETURN_NONE;
    }
    if (!PyDict_Check(cfg)) {
        PyErr_SetString(PyExc_TypeError, "set_limits(dict | None)");
        return NULL;
    }
    rrl_state n;
    memset(&n, 0, sizeof(n));
    if (rrl_read(&n, cfg) < 0) {
        rrl_release(&n);
        return NULL;
    }
    if (!*slot) {
        *slot = calloc(1, sizeof(rrl_state));
        if (!*slot) {
            rrl_release(&n);
            return PyErr_NoMemory();
        }
        pthread_mutex_init(&(*slot)->mu, NULL);
    }
    rrl_state *s = *slot;
    size_t head = offsetof(rrl_state, rrl_on); /* everything after the mutex */
    pthread_mutex_lock(&s->mu);
    rrl_release(s);
    memcpy((char *)s + head, (char *)&n + head, sizeof(rrl_state) - head);
    pthread_mutex_unlock(&s->mu);
    Py_RETURN_NONE;
}

static void
rrl_free(rrl_state *s)
{
    if (!s)
        return;
    rrl_release(s);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static PyObject *
rrl_list(const unsigned long long *v)
{
    return Py_BuildValue("[KKKKK]", v[0], v[1], v[2], v[3], v[4]);
}

/* limit_stats(): the counters (rrl.Stats / QueryStats names), None when never configured. */
static PyObject *
rrl_py_stats(rrl_state *s)
{
    if (!s)
        Py_RETURN_NONE;
    pthread_mutex_lock(&s->mu);
    rrl_state c = *s;
    pthread_mutex_unlock(&s->mu);
    PyObject *r = Py_BuildValue("{sKsKsKsKsisi}", "exempt", c.exempted, "cookie_passed", c.cookie_passed,
                                "prefix_refused", c.prefix_refused, "prefix_dropped", c.prefix_dropped, "rrl",
                                c.rrl_on, "query_limits", c.ql_on);
    const char *names[8] = {"limited", "dropped", "slipped", "would_limit", "limited6", "dropped6", "slipped6",
                            "would_limit6"};
    const unsigned long long *lists[8] = {c.limited, c.dropped, c.slipped, c.would_limit, c.limited6, c.dropped6,
                                          c.slipped6, c.would_limit6};
    for (int i = 0; r && i < 8; i++) {
        PyObject *l = rrl_list(lists[i]);
        if (!l || PyDict_SetItemString(r, names[i], l) < 0)
            Py_CLEAR(r);
        Py_XDECREF(l);
    }
    return r;
}

/* limit_one(query, client, response | None, now, wall): one decision at given clock values:
 * response None asks the query gate (-> REFUSED bytes, b"" for drop, None: not limited), else the
 * RRL filter (-> the bytes to send, or None for a drop). For the differential tests. */
static PyObject *
rrl_py_one(rrl_state *s, PyObject *args)
{
    const char *q, *c;
    Py_ssize_t qn, cn;
    PyObject *resp;
    double now, wall;
    if (!PyArg_ParseTuple(args, "y#y#Odd", &q, &qn, &c, &cn, &resp, &now, &wall))
        return NULL;
    if (!s) {
        PyErr_SetString(PyExc_RuntimeError, "set_limits first");
        return NULL;
    }
    if (cn != 4 && cn != 16) {
        PyErr_SetString(PyExc_ValueError, "client: 4 or 16 bytes");
        return NULL;
    }
    unsigned char out[4096];
    size_t outlen = 0;
    if (resp == Py_None) {
        if (qn > 4096 || !s->ql_on || !rrl_gate_at(s, (const unsigned char *)q, (size_t)qn,
                                                  (const unsigned char *)c, (size_t)cn, out, &outlen, now))
            Py_RETURN_NONE;
        return PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)outlen);
    }
    if (!PyBytes_Check(resp) || PyBytes_GET_SIZE(resp) > 4096) {
        PyErr_SetString(PyExc_TypeError, "response: bytes (at most 4096)");
        return NULL;
    }
    if (!s->rrl_on) {
        Py_INCREF(resp);
        return resp;
    }
    int v = rrl_filter_at(s, (const unsigned char *)q, (size_t)qn, (const unsigned char *)c, (size_t)cn,
                          (const unsigned char *)PyBytes_AS_STRING(resp), (size_t)PyBytes_GET_SIZE(resp), out,
                          &outlen, now, wall);
    if (v == RRL_DROP)
        Py_RETURN_NONE;
    if (v == RRL_REPLACED)
        return PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)outlen);
    Py_INCREF(resp);
    return resp;
}

#endif
