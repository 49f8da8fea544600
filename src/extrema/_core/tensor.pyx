"""extrema.Tensor (the seeds' AltTensor) and the feature-vector builder that fills one.

A Tensor is float32 data in row-major order plus a shape, nothing more: it never reshapes behind your
back (an operation that needs another shape raises), so what a model receives is what you built. Its
numpy() view shares the memory.

A FeatureVector reads chosen outputs of several feature kernels into a preallocated Tensor: fill()
copies one double per feature into the tensor's floats, with no allocation and no Python per feature
(fill_c from Cython runs without the GIL).
"""
cimport cython
from libc.stdlib cimport calloc, free
from libc.math cimport isnan

import numpy as np
cimport numpy as cnp

from extrema._core.features cimport (Kernel, Macd, BollingerBands, RollingOls, LinearRegression)

cnp.import_array()


def _as_shape(shape):
    if isinstance(shape, int):
        shape = (shape,)
    shape = tuple(int(d) for d in shape)
    if not shape or any(d < 0 for d in shape):
        raise ValueError(f"a tensor shape is one or more non-negative sizes, got {shape!r}")
    return shape


@cython.final
cdef class Tensor:
    """float32 row-major data plus a shape. Tensor(shape) is zero-filled; Tensor.from_numpy copies."""

    def __cinit__(self):
        self.data = NULL

    def __init__(self, shape):
        self.shape = _as_shape(shape)
        self.size = 1
        for d in self.shape:
            self.size *= d
        self.data = <float *>calloc(max(self.size, 1), sizeof(float))
        if self.data == NULL:
            raise MemoryError(f"cannot allocate a tensor of shape {self.shape}")

    def __dealloc__(self):
        if self._owner is None:
            free(self.data)

    @staticmethod
    def from_numpy(array):
        """A copy of a numpy array as a Tensor of the same shape (values converted to float32)."""
        arr = np.ascontiguousarray(array, dtype=np.float32)
        cdef Tensor t = Tensor(arr.shape if arr.ndim else (1,))
        t.numpy()[...] = arr.reshape(t.shape)
        return t

    def numpy(self):
        """A float32 numpy view of the data (shared: writes go to the tensor)."""
        cdef cnp.npy_intp dims[32]
        cdef int i
        if len(self.shape) > 32:
            raise ValueError("numpy views support up to 32 dimensions")
        for i, d in enumerate(self.shape):
            dims[i] = d
        arr = cnp.PyArray_SimpleNewFromData(len(self.shape), dims, cnp.NPY_FLOAT32, <void *>self.data)
        cnp.set_array_base(arr, self)
        return arr

    def reshape(self, shape):
        """The same data under another shape (a new Tensor sharing memory). Sizes must match exactly."""
        new = _as_shape(shape)
        size = 1
        for d in new:
            size *= d
        if size != self.size:
            raise ValueError(f"cannot view a tensor of shape {self.shape} ({self.size} values) as {new} "
                             f"({size} values)")
        cdef Tensor t = Tensor.__new__(Tensor)
        t.data = self.data
        t.size = self.size
        t.shape = new
        t._owner = self if self._owner is None else self._owner
        return t

    def copy_from(self, array):
        """Copy values in; the array's shape must equal the tensor's (no implicit reshape)."""
        arr = np.asarray(array)
        if arr.shape != self.shape:
            raise ValueError(f"shape {arr.shape} does not match the tensor's {self.shape}")
        self.numpy()[...] = arr

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return f"Tensor(shape={self.shape}, {self.numpy()!r})"

    def __eq__(self, other):
        if not isinstance(other, Tensor):
            return NotImplemented
        return self.shape == (<Tensor>other).shape and bool((self.numpy() == other.numpy()).all())


cdef const double *_output_ptr(Kernel kernel, str output) except NULL:
    """Address of one output of a kernel's state: "value" for every kernel, and the named extras of
    the multi-output ones."""
    if output == "value":
        return &kernel._head.value
    if isinstance(kernel, Macd):
        if output == "signal":
            return &(<Macd>kernel).st.signal_value
        if output == "histogram":
            return &(<Macd>kernel).st.histogram
    elif isinstance(kernel, BollingerBands):
        if output == "upper":
            return &(<BollingerBands>kernel).st.upper
        if output == "lower":
            return &(<BollingerBands>kernel).st.lower
        if output == "middle":
            return &kernel._head.value
    elif isinstance(kernel, RollingOls):
        if output == "intercept":
            return &(<RollingOls>kernel).st.intercept
        if output == "r2":
            return &(<RollingOls>kernel).st.r2
    elif isinstance(kernel, LinearRegression):
        if output == "intercept":
            return &(<LinearRegression>kernel).st.intercept
        if output == "r2":
            return &(<LinearRegression>kernel).st.r2
    raise ValueError(f"{type(kernel).__name__} has no output {output!r}")


@cython.final
cdef class FeatureVector:
    """Fills a preallocated Tensor from several kernels' outputs.

    FeatureVector([ema, (macd, "histogram"), rsi], tensor=None, names=None)

    Each feature is a kernel (its main value) or (kernel, output name). The tensor defaults to a new
    one of shape (n,); pass one of shape (n,) or (1, n) to fill a model's input in place.
    """

    def __cinit__(self):
        self._sources = NULL

    def __init__(self, features, Tensor tensor=None, names=None):
        features = list(features)
        self._n = len(features)
        if self._n == 0:
            raise ValueError("a feature vector needs at least one feature")
        if tensor is None:
            tensor = Tensor((self._n,))
        if tensor.size != self._n:
            raise ValueError(f"the tensor holds {tensor.size} values for {self._n} features "
                             f"(shape {tensor.shape})")
        self.tensor = tensor
        self._sources = <const double **>calloc(self._n, sizeof(double *))
        if self._sources == NULL:
            raise MemoryError()
        self._kernels = []
        labels = []
        for i, feature in enumerate(features):
            kernel, output = feature if isinstance(feature, tuple) else (feature, "value")
            if not isinstance(kernel, Kernel):
                raise TypeError(f"feature {i} is not an extrema feature kernel: {kernel!r}")
            self._sources[i] = _output_ptr(kernel, output)
            self._kernels.append(kernel)
            labels.append(f"{type(kernel).__name__}.{output}" if output != "value" else type(kernel).__name__)
        self.names = tuple(names) if names is not None else tuple(labels)
        if len(self.names) != self._n:
            raise ValueError(f"{len(self.names)} names for {self._n} features")

    def __dealloc__(self):
        free(self._sources)

    cdef void fill_c(self) noexcept nogil:
        cdef Py_ssize_t i
        for i in range(self._n):
            self.tensor.data[i] = <float>self._sources[i][0]

    def fill(self):
        """Copy every feature's current value into the tensor (NaN while a kernel warms up); returns it."""
        self.fill_c()
        return self.tensor

    @property
    def is_ready(self):
        """True when no feature is NaN (every kernel warmed up)."""
        cdef Py_ssize_t i
        for i in range(self._n):
            if isnan(self._sources[i][0]):
                return False
        return True

    def __len__(self):
        return self._n

    def __repr__(self):
        return f"FeatureVector({', '.join(self.names)})"
