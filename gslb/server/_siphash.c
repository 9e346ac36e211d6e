/*
 * SipHash-2-4 (Aumasson and Bernstein) for DNS server cookies (RFC 9018): the same function as
 * gslb/server/siphash.py, which stays the reference and the fallback when this is not built.
 * siphash24(key: bytes[16], data: bytes) -> bytes[8], the reference implementation's byte order.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "siphash24.h"

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
