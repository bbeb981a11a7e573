# CPython C-API pieces Cython's own cpython/ declarations lack.
from cpython.ref cimport PyObject

cdef extern from "Python.h":
    int PyContext_Enter(object ctx) except -1
    int PyContext_Exit(object ctx) except -1
    object PyContext_CopyCurrent()
    object PyContext_New()
    # Only the field copy_current_context() reads (handles.pyx); the struct is
    # CPython's own (cpython/pystate.h), unchanged in this respect 3.7-3.14.
    ctypedef struct PyThreadState:
        PyObject *context
    PyThreadState *PyThreadState_Get()
    # contextvars.Context's type, for its len() slot (see handles.pyx).
    ctypedef Py_ssize_t (*lenfunc)(PyObject *) except -1
    ctypedef struct PyMappingMethods:
        lenfunc mp_length
    ctypedef struct PyTypeObject:
        PyMappingMethods *tp_as_mapping
    PyTypeObject PyContext_Type
    int PyErr_CheckSignals() except -1
