/*
 * SipHash-2-4 (Aumasson and Bernstein) for DNS server cookies (RFC 9018): the same function as
 * gslb/server/siphash.py, which stays the reference and the fallback when this is not built.
 * siphash24(key: bytes[16], data: bytes) -> bytes[8], the reference implementation's byte order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define ROUND                                                                                      \
    do {                                                                                           \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                                  \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                                     \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                                     \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                                  \
    } while (0)

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t siphash24(const unsigned char *key, const unsigned char *in, size_t len)
{
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL, v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL, v3 = k1 ^ 0x7465646279746573ULL;
    size_t end = len - (len % 8);
    for (size_t i = 0; i < end; i += 8) {
        uint64_t m = le64(in + i);
        v3 ^= m;
        ROUND;
        ROUND;
        v0 ^= m;
    }
    uint64_t b = ((uint64_t)len) << 56;
    for (size_t i = 0; i < len % 8; i++)
        b |= ((uint64_t)in[end + i]) << (8 * i);
    v3 ^= b;
    ROUND;
    ROUND;
    v0 ^= b;
    v2 ^= 0xff;
    ROUND;
    ROUND;
    ROUND;
    ROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static PyObject *py_siphash24(PyObject *self, PyObject *args)
{
    Py_buffer key, data;
    if (!PyArg_ParseTuple(args, "y*y*", &key, &data))
        return NULL;
    if (key.len != 16) {
        PyBuffer_Release(&key);
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "SipHash needs a 16-octet key");
        return NULL;
    }
    uint64_t h = siphash24(key.buf, data.buf, (size_t)data.len);
    PyBuffer_Release(&key);
    PyBuffer_Release(&data);
    unsigned char out[8];
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(h >> (8 * i));
    return PyBytes_FromStringAndSize((const char *)out, 8);
    (void)self;
}

static PyMethodDef methods[] = {
    {"siphash24", py_siphash24, METH_VARARGS, "SipHash-2-4 of data under a 16-octet key (8 octets)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_siphash", .m_doc = NULL, .m_size = -1, .m_methods = methods,
};

PyMODINIT_FUNC PyInit__siphash(void) { return PyModule_Create(&module); }
