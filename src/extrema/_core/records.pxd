cimport numpy as cnp
from extrema._core.types cimport Record

# The one way compiled code takes a record array from Python: a 1-d C-contiguous RECORD_DTYPE
# ndarray (a copy is made only when the input is not contiguous), read through its data pointer.
cdef cnp.ndarray as_record_array(object records, str who)

cdef inline const Record *record_data(cnp.ndarray arr) noexcept:
    return <const Record *>cnp.PyArray_DATA(arr)
