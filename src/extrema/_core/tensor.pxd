from extrema._core.features cimport Kernel

cdef class Tensor:
    cdef float *data
    cdef Py_ssize_t size
    cdef readonly tuple shape
    cdef object _owner              # keeps the memory alive when the data belongs to someone else

cdef class FeatureVector:
    cdef readonly Tensor tensor
    cdef const double **_sources    # one pointer per feature: a kernel output's double
    cdef Py_ssize_t _n
    cdef list _kernels              # keeps the kernels (and so their state) alive
    cdef readonly tuple names
    cdef void fill_c(self) noexcept nogil
