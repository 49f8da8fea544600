from libc.stdint cimport int64_t, uint64_t, uint32_t
from extrema._core.types cimport Record, KIND_CONTINUATION

cdef extern from "ex_ring.h" nogil:
    ctypedef struct ex_ring_meta:
        uint64_t magic
        uint32_t layout_version
        uint32_t slot_size
        uint64_t capacity
        uint32_t max_consumers
        uint32_t header_size
        int64_t owner_pid
        int64_t created_us
    ctypedef struct ex_ring_producer:
        uint64_t write_seq
        uint64_t write_claim
        uint64_t closed
        uint64_t blocked_waits
    ctypedef struct ex_ring_consumer:
        uint64_t read_seq
        uint32_t state
        uint32_t policy
        int64_t pid
        uint64_t lost
    ctypedef struct ex_ring_header:
        ex_ring_meta meta
        ex_ring_producer prod
        ex_ring_consumer consumers[64]
    const uint64_t EX_RING_MAGIC
    const uint32_t EX_RING_LAYOUT_VERSION
    const uint32_t EX_RING_MAX_CONSUMERS
    const uint32_t EX_RING_HEADER_SIZE
    enum:
        EX_SLOT_FREE
        EX_SLOT_ACTIVE
        EX_SLOT_DEAD
    enum:
        EX_POLICY_BLOCK
        EX_POLICY_LOSSY
    Record *ex_ring_slots(ex_ring_header *h) noexcept
    void ex_ring_wake(ex_ring_header *h) noexcept
    void ex_ring_sleep(ex_ring_header *h, uint64_t cursor, int64_t timeout_ns) noexcept


# How a waiting side waits: spin `spin` times (cpu_relax), then sched_yield `yields` times, then sleep
# at most `sleep_ns` per round (a consumer sleeps on a futex the producer wakes at once; the producer,
# waiting for back-pressure consumers, naps). spin < 0 spins forever (a pinned, dedicated core).
cdef struct WaitPolicy:
    int64_t spin
    int64_t yields
    int64_t sleep_ns


# Results of the no-GIL calls (>= 0 is a count of records).
cdef enum RingStatus:
    RING_TIMEOUT = 0
    RING_CLOSED = -1
    RING_PRODUCER_GONE = -2
    RING_CONSUMER_CLOSED = -3


cdef class Ring:
    cdef ex_ring_header *_h
    cdef Record *_slots
    cdef uint64_t _mask
    cdef Py_ssize_t _map_size
    cdef readonly object name
    cdef readonly bint is_owner
    cdef bint _shm
    cdef bint _closed
    cdef uint64_t _min_read_cache
    cdef WaitPolicy _producer_wait
    cdef int64_t _pid

    cdef Py_ssize_t publish_ptr(self, const Record *recs, Py_ssize_t n, int64_t timeout_ns) noexcept nogil
    cdef bint _owner_alive(self) noexcept nogil
    cdef uint64_t _min_blocking_read(self) noexcept nogil
    cdef void _reclaim_dead_consumers(self) noexcept nogil
    cdef _setup_pointers(self)
    cdef _map_anonymous(self)
    cdef _create_shm(self, name)


cdef inline Py_ssize_t whole_events(const Record *recs, Py_ssize_t n) noexcept nogil:
    """How many of the n records (n > 0) form complete events: n, or the index of the last head whose
    continuation slots (flags >> 12 of them follow a multi-slot head) lie beyond the n records."""
    cdef Py_ssize_t h = n - 1
    while h > 0 and recs[h].kind == KIND_CONTINUATION:
        h -= 1
    if recs[h].kind != KIND_CONTINUATION and h + 1 + (recs[h].flags >> 12) > n:
        return h
    return n


cdef class RingConsumer:
    cdef Ring _ring
    cdef ex_ring_consumer *_c
    cdef readonly int index
    cdef readonly bint lossy
    cdef WaitPolicy _wait
    cdef uint64_t _cursor          # next record to hand out
    cdef uint64_t _pending_end     # blocking consumers: the batch handed out last, released on the next call
    cdef Record *_copy             # lossy consumers: private copy of the last batch
    cdef Py_ssize_t _copy_cap
    cdef bint _closed
    cdef Record _joined[16]        # an event the ring's end (or max_n) cut, put back together (_whole)
    cdef readonly int64_t rejoined       # events handed out whole from _joined
    cdef readonly int64_t torn_dropped   # events dropped: a lossy overrun took part of them (or their head)
    cdef Py_ssize_t _owed          # continuation slots still to come of an event larger than the ring

    cdef Py_ssize_t poll_ptr(self, Py_ssize_t max_n, const Record **out) noexcept nogil
    cdef Py_ssize_t wait_ptr(self, Py_ssize_t max_n, const Record **out, int64_t timeout_ns) noexcept nogil
    cdef void release(self) noexcept nogil
    cdef void _free_slot(self) noexcept
    cdef object _result(self, Py_ssize_t n, const Record *p)
    cdef Py_ssize_t _whole(self, Py_ssize_t n, const Record **out) noexcept nogil
    cdef void _give_back(self, Py_ssize_t k) noexcept nogil
    @staticmethod
    cdef RingConsumer _create(Ring ring, bint lossy, bint oldest, WaitPolicy wait, Py_ssize_t max_batch)
