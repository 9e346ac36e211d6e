/*
 * The UDP receive/answer/send loop with batched system calls.
 *
 * Python has no recvmmsg/sendmmsg. This loop receives up to BATCH datagrams per system call,
 * hands each to a Python callable `handler(query: bytes, client: bytes) -> bytes | None`
 * (client is the packed source address: 4 or 16 octets), and sends every reply of the batch
 * with one sendmmsg. The GIL is released while blocked in the kernel. Everything DNS stays in
 * Python (gslb/server/fastpath.py); this file only moves packets.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <string.h>
#include <sys/socket.h>

#include "udp_common.h"

#define BATCH 64
#define BUFSIZE 4096


static PyObject *
serve(PyObject *self, PyObject *args)
{
    int fd;
    PyObject *handler;
    int batch = BATCH;
    int pktinfo = 0; /* wildcard socket: answer from the address each query was sent to */
    if (!PyArg_ParseTuple(args, "iO|ii", &fd, &handler, &batch, &pktinfo))
        return NULL;
    if (!PyCallable_Check(handler)) {
        PyErr_SetString(PyExc_TypeError, "handler must be callable");
        return NULL;
    }
    if (batch < 1 || batch > BATCH)
        batch = BATCH;

    static __thread char bufs[BATCH][BUFSIZE];
    struct sockaddr_storage addrs[BATCH];
    struct iovec riov[BATCH], siov[BATCH];
    struct mmsghdr rmsg[BATCH], smsg[BATCH];
    PyObject *outs[BATCH];
    /* ancillary data: the query's destination address in, the reply's source address out */
    union cbuf {
        char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
        struct cmsghdr align;
    };
    union cbuf rctl[BATCH], sctl[BATCH];

    for (;;) {
        for (int i = 0; i < batch; i++) {
            riov[i].iov_base = bufs[i];
            riov[i].iov_len = BUFSIZE;
            memset(&rmsg[i].msg_hdr, 0, sizeof(struct msghdr));
            rmsg[i].msg_hdr.msg_name = &addrs[i];
            rmsg[i].msg_hdr.msg_namelen = sizeof(addrs[i]);
            rmsg[i].msg_hdr.msg_iov = &riov[i];
            rmsg[i].msg_hdr.msg_iovlen = 1;
            if (pktinfo) {
                rmsg[i].msg_hdr.msg_control = rctl[i].buf;
                rmsg[i].msg_hdr.msg_controllen = sizeof(rctl[i].buf);
            }
        }
        int n;
        Py_BEGIN_ALLOW_THREADS
        n = recvmmsg(fd, rmsg, (unsigned int)batch, MSG_WAITFORONE, NULL);
        Py_END_ALLOW_THREADS
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                if (PyErr_CheckSignals() < 0)
                    return NULL;
                continue;
            }
            if (errno == EBADF || errno == ENOTSOCK || errno == EINVAL)
                Py_RETURN_NONE; /* the socket was closed: stop serving */
            continue;          /* transient (ICMP errors surfacing as ECONNREFUSED, ENOMEM...) */
        }
        int nout = 0;
        for (int i = 0; i < n; i++) {
            const char *raw;
            Py_ssize_t rawlen;
            struct sockaddr *sa = (struct sockaddr *)&addrs[i];
            if (sa->sa_family == AF_INET) {
                raw = (const char *)&((struct sockaddr_in *)sa)->sin_addr;
                rawlen = 4;
            } else if (sa->sa_family == AF_INET6) {
                raw = (const char *)&((struct sockaddr_in6 *)sa)->sin6_addr;
                rawlen = 16;
            } else {
                continue;
            }
            PyObject *query = PyBytes_FromStringAndSize(bufs[i], rmsg[i].msg_len);
            PyObject *client = PyBytes_FromStringAndSize(raw, rawlen);
            PyObject *reply = NULL;
            long long t0 = now_ns();
            if (query && client)
                reply = PyObject_CallFunctionObjArgs(handler, query, client, NULL);
            observe_ns(now_ns() - t0);
            Py_XDECREF(query);
            Py_XDECREF(client);
            if (reply == NULL) {
                /* The handler never raises by design; if it does, say so and keep serving. */
                PyErr_WriteUnraisable(handler);
                continue;
            }
            if (!PyBytes_Check(reply)) {
                Py_DECREF(reply);
                continue;
            }
            outs[nout] = reply;
            siov[nout].iov_base = PyBytes_AS_STRING(reply);
            siov[nout].iov_len = (size_t)PyBytes_GET_SIZE(reply);
            memset(&smsg[nout].msg_hdr, 0, sizeof(struct msghdr));
            smsg[nout].msg_hdr.msg_name = &addrs[i];
            smsg[nout].msg_hdr.msg_namelen = rmsg[i].msg_hdr.msg_namelen;
            smsg[nout].msg_hdr.msg_iov = &siov[nout];
            smsg[nout].msg_hdr.msg_iovlen = 1;
            if (pktinfo)
                reply_source(&rmsg[i].msg_hdr, &smsg[nout].msg_hdr, sctl[nout].buf);
            nout++;
        }
        int done = 0;
        while (done < nout) {
            int sent;
            Py_BEGIN_ALLOW_THREADS
            sent = sendmmsg(fd, smsg + done, (unsigned int)(nout - done), 0);
            Py_END_ALLOW_THREADS
            if (sent < 0) {
                if (errno == EINTR)
                    continue;
                done++; /* drop the datagram the kernel refused and carry on with the rest */
                continue;
            }
            done += sent;
        }
        for (int i = 0; i < nout; i++)
            Py_DECREF(outs[i]);
    }
}

static PyMethodDef methods[] = {
    {"histogram", histogram_list, METH_NOARGS,
     "Handler time per query: counts below 1, 2, 4 ... 1024 microseconds, then everything slower."},
    {"histogram_sum_ns", histogram_sum_ns, METH_NOARGS, "The exact sum of the handler times, in nanoseconds."},
    {"serve", serve, METH_VARARGS,
     "serve(fd, handler, batch=64, pktinfo=0): receive, answer and send UDP datagrams until the socket "
     "closes; with pktinfo, each reply leaves from the address its query was sent to."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_udpbatch", NULL, -1, methods};

PyMODINIT_FUNC
PyInit__udpbatch(void)
{
    return PyModule_Create(&module);
}
