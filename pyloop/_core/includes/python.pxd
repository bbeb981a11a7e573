# CPython C-API pieces Cython's own cpython/ declarations lack.
cdef extern from "Python.h":
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1
    object PyContext_CopyCurrent()
    int PyErr_CheckSignals() except -1
