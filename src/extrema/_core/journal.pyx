# cython: language_level=3, boundscheck=False, wraparound=False
"""The journal's append step (extrema.storage.journal): copy records into a mapped segment, then publish.

Why compiled: a live recorder appends one frame's records (1..20) per call on the engine thread.
Through numpy the copy, the multi-slot check and the header store cost ~9 µs per call on the CI
machine (structured-dtype views and buffer exports are slow); here they cost well under 1 µs.
Bulk appends are bound by page faults either way.

SegmentMap holds a buffer export of the segment's mmap (release() before closing the map). append()
validates the whole batch (multi-slot events complete: a head with n continuation slots is followed by
exactly n CONTINUATION slots), copies as many whole events as fit, and only then stores the new
committed count with a release store, so a process killed at any instant - or a reader in another
process - never sees the count cover a record that is not completely in place.
"""
cimport cython
from libc.stdint cimport uint64_t, uint16_t
from libc.string cimport memcpy
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_WRITABLE
cimport numpy as cnp

from extrema._core.types cimport Record, KIND_CONTINUATION, CONT_SHIFT
from extrema._core.records cimport as_record_array, record_data
from extrema._core.ex_atomic cimport ex_store_release_u64, ex_load_acquire_u64

cnp.import_array()

cdef Py_ssize_t HEADER_SIZE = 64
cdef Py_ssize_t OFF_COMMITTED = 48


cdef Py_ssize_t check_events_c(const Record *r, Py_ssize_t n) noexcept nogil:
    """-1 when every multi-slot event of r[0:n] is complete, else the index of the first bad record
    (n when the batch ends inside an event)."""
    cdef Py_ssize_t i = 0, k, j
    while i < n:
        if r[i].kind == KIND_CONTINUATION:
            return i                      # a continuation without its head
        k = r[i].flags >> CONT_SHIFT
        for j in range(1, k + 1):
            if i + j >= n:
                return n
            if r[i + j].kind != KIND_CONTINUATION:
                return i
        i += k + 1
    return -1


cdef Py_ssize_t fit_events_c(const Record *r, Py_ssize_t n, Py_ssize_t room) noexcept nogil:
    """How many records of r[0:n] (complete events) fit in `room` slots without splitting an event."""
    cdef Py_ssize_t cut
    if n <= room:
        return n
    cut = room
    while cut > 0 and r[cut].kind == KIND_CONTINUATION:
        cut -= 1
    return cut


def check_events(records):
    """Raise ValueError unless every multi-slot event in `records` is complete; returns the array
    (1-d, contiguous RECORD_DTYPE)."""
    cdef cnp.ndarray arr = as_record_array(records, "check_events")
    cdef Py_ssize_t n = cnp.PyArray_DIM(arr, 0)
    cdef Py_ssize_t bad = check_events_c(record_data(arr), n)
    if bad >= 0:
        _raise_bad(bad, n)
    return arr


cdef int _raise_bad(Py_ssize_t bad, Py_ssize_t n) except -1:
    if bad == n:
        raise ValueError(f"the batch of {n} records ends inside a multi-slot event (its continuation slots "
                         f"are missing; records.pyx, multi-slot kinds)")
    raise ValueError(f"record {bad}: a multi-slot event whose continuation slots do not match its head's "
                     f"count, or a continuation slot without its head (records.pyx, multi-slot kinds)")


@cython.final
cdef class SegmentMap:
    """The writable view of one segment file's mapping: header at 0, records from byte 64."""
    cdef Py_buffer view
    cdef bint held
    cdef char *base
    cdef readonly Py_ssize_t capacity
    cdef readonly Py_ssize_t committed

    def __cinit__(self, mapping, Py_ssize_t capacity, Py_ssize_t committed):
        self.held = False
        PyObject_GetBuffer(mapping, &self.view, PyBUF_WRITABLE)
        self.held = True
        if self.view.len < HEADER_SIZE + capacity * <Py_ssize_t>sizeof(Record):
            PyBuffer_Release(&self.view)
            self.held = False
            raise ValueError(f"the mapping ({self.view.len} bytes) is smaller than {capacity} records")
        if not 0 <= committed <= capacity:
            PyBuffer_Release(&self.view)
            self.held = False
            raise ValueError(f"committed {committed} outside 0..{capacity}")
        self.base = <char *>self.view.buf
        self.capacity = capacity
        self.committed = committed

    def __dealloc__(self):
        if self.held:
            PyBuffer_Release(&self.view)

    def release(self):
        """Give the buffer export back (required before the mmap can be closed)."""
        if self.held:
            PyBuffer_Release(&self.view)
            self.held = False
            self.base = NULL

    @property
    def room(self):
        return self.capacity - self.committed

    def append(self, records, Py_ssize_t start=0):
        """Copy whole events of records[start:] that fit, publish them, return how many records were
        copied (0 when not even the first event fits: rotate). The whole array is validated first."""
        cdef cnp.ndarray arr = as_record_array(records, "JournalWriter.append")
        cdef Py_ssize_t n = cnp.PyArray_DIM(arr, 0)
        cdef const Record *r = record_data(arr)
        cdef Py_ssize_t bad, take
        if not self.held:
            raise ValueError("this segment is closed")
        if start == 0:
            bad = check_events_c(r, n)
            if bad >= 0:
                _raise_bad(bad, n)
        if not 0 <= start <= n:
            raise IndexError(f"start {start} outside 0..{n}")
        take = fit_events_c(r + start, n - start, self.capacity - self.committed)
        if take > 0:
            memcpy(self.base + HEADER_SIZE + self.committed * sizeof(Record), r + start, take * sizeof(Record))
            self.committed += take
            # the publish, after the records are in place
            ex_store_release_u64(<uint64_t *>(self.base + OFF_COMMITTED), <uint64_t>self.committed)
        return take
