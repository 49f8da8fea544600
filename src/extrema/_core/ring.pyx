"""Single-producer, multi-consumer ring of 64-byte records: threads or processes, one API.

    ring = Ring(capacity=1 << 16)                 # process memory: consumers are threads
    ring = Ring(capacity=1 << 16, name="feed")    # POSIX shared memory: other processes attach
    ring = Ring.attach("feed")                    # ... like this (and then only consume)

    ring.publish(records)                         # RECORD_DTYPE array; the producer is one thread
    with ring.consumer(policy="block") as c:      # or policy="lossy"
        batch = c.read(timeout=1.0)               # numpy view of every record available, no copy

Consumer policies
-----------------
* "block": back-pressure. The producer never overwrites a record this consumer has not released, so
  a slow consumer slows the producer down. Batches are zero-copy views of the ring.
* "lossy": the producer never waits for it. When it falls more than `capacity` records behind, the
  records it missed are counted in `lost`, exactly. Batches are copied out of the ring and checked
  afterwards (a seqlock on the producer's claim counter, see ex_ring.h), so a record that the producer
  overwrote while it was being copied is counted as lost, never handed out torn.

A batch handed out by poll() / read() is valid until the next poll() / read() / release() on the same
consumer (the engine-owned-view rule): copy it (`batch.copy()`) to keep it.

Whole events
------------
poll() and read() never end a batch inside a multi-slot event (ORDER_UPDATE, FILL, CANDLE: a head whose
flags >> 12 continuation slots follow it). An event the ring's end cuts (head in the last slot,
continuations at the start) or that max_n would cut is handed out whole: alone in its batch, copied
(`rejoined` counts them), and may then hold more than max_n records; an event whose continuations are not
published yet is left for the next call. A lossy consumer whose overrun took part of an event (its
continuations, or its head: continuations first in a batch) drops what it has of it, counts the event in
`torn_dropped` and logs it - it never hands out half an event. An event larger than the ring cannot be
whole in it and is handed out in pieces. The compiled poll_ptr / wait_ptr hand out the raw slots
(Dispatcher.pump joins events itself).

Waiting
-------
A waiting consumer spins (cpu_relax) `spin` times, then yields the CPU `yields` times, then sleeps on
a futex in the ring's header until the producer publishes (the producer wakes sleepers only when there
are any, so a busy ring pays nothing for it), looking again at least every `sleep_us` (to notice a dead
producer). All of it without the GIL. spin=-1 spins forever: for a pinned, dedicated core. A producer
waiting for back-pressure consumers spins, yields, then naps `sleep_us` at a time.

Lifecycle
---------
close() on the owner marks the ring closed (consumers drain what was published, then get
RingClosedError) and removes the shared-memory name at once; the memory itself goes away when the last
process unmaps it. If the owner dies without closing (SIGKILL), the segment would stay in /dev/shm:
creating a ring of the same name removes it when its recorded owner is dead, and sweep_stale_rings()
removes every such segment. A consumer process that dies holding a back-pressure slot is detected by
the producer (its pid no longer exists) and its slot reclaimed, so it cannot stall the producer forever.
Consumers in other processes notice a dead owner and stop with ProducerGoneError.
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint32_t, INT64_MAX
from libc.string cimport memcpy, memset
from libc.stdlib cimport malloc, free
from libc.errno cimport errno, EEXIST, ENOENT, ESRCH, EINTR
from posix.mman cimport (mmap, munmap, shm_open, shm_unlink, PROT_READ, PROT_WRITE, MAP_SHARED,
                         MAP_PRIVATE, MAP_ANONYMOUS, MAP_FAILED)
from posix.fcntl cimport O_CREAT, O_EXCL, O_RDWR
from posix.unistd cimport ftruncate, close as c_close, getpid
from posix.stat cimport struct_stat, fstat
from posix.time cimport nanosleep, timespec
from cpython.ref cimport Py_INCREF

import logging
import os
import re

import numpy as np
cimport numpy as cnp

from extrema._core.types cimport Record
from extrema._core.ex_atomic cimport (
    ex_load_acquire_u64, ex_load_relaxed_u64, ex_store_release_u64, ex_store_relaxed_u64,
    ex_load_acquire_u32, ex_store_release_u32, ex_cas_u32, ex_fence_acquire, ex_fence_release, ex_cpu_relax)
from extrema._core.clock cimport monotonic_ns, now_us
from extrema._core.records cimport as_record_array, record_data
from extrema._core.records import RECORD_DTYPE

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    # Declared here with untyped pointers: Cython's numpy.pxd no longer exposes it.
    object PyArray_NewFromDescr(void *subtype, void *descr, int nd, cnp.npy_intp *dims,
                                cnp.npy_intp *strides, void *data, int flags, void *obj)

cdef extern from "sched.h" nogil:
    int sched_yield() noexcept

cdef extern from "signal.h" nogil:
    int kill(int pid, int sig) noexcept

cdef extern from *:
    """
    static inline void ex_fence_seq_cst(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
    """
    void ex_fence_seq_cst() noexcept nogil

cdef enum:
    SLOT_CLAIMING = 3           # a consumer is setting up the slot; not yet ACTIVE

log = logging.getLogger("extrema.ring")

SHM_PREFIX = "extrema."
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,200}\Z")
LAYOUT_VERSION = EX_RING_LAYOUT_VERSION


class RingClosedError(Exception):
    """The producer closed the ring and every published record has been read."""


class ProducerGoneError(Exception):
    """The process that owns the ring died without closing it."""


cdef bint _pid_alive(int64_t pid) noexcept nogil:
    if pid <= 0:
        return False
    if kill(<int>pid, 0) == 0:
        return True
    return errno != ESRCH


cdef void _wait_step(const WaitPolicy *p, int64_t *spins, int64_t *yields) noexcept nogil:
    """One step of spin -> yield -> sleep."""
    cdef timespec ts
    if p.spin < 0 or spins[0] < p.spin:
        ex_cpu_relax()
        spins[0] += 1
    elif yields[0] < p.yields:
        sched_yield()
        yields[0] += 1
    else:
        ts.tv_sec = p.sleep_ns // 1000000000
        ts.tv_nsec = p.sleep_ns % 1000000000
        nanosleep(&ts, NULL)


cdef bint _deadline_passed(int64_t deadline, int64_t step) noexcept nogil:
    # Reading the clock costs ~20 ns: while spinning, look only every 64 steps.
    return deadline >= 0 and (step & 63) == 0 and monotonic_ns() >= deadline


cdef WaitPolicy _policy(spin, yields, sleep_us) except *:
    cdef WaitPolicy p
    if sleep_us <= 0:
        raise ValueError(f"sleep_us must be > 0, got {sleep_us}")
    if yields < 0:
        raise ValueError(f"yields must be >= 0, got {yields}")
    p.spin = spin
    p.yields = yields
    p.sleep_ns = <int64_t>(sleep_us * 1000)
    return p


cdef int64_t _deadline(timeout) except? -2:
    if timeout is None:
        return -1
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout}")
    return monotonic_ns() + <int64_t>(timeout * 1e9)


def _shm_path(name):
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"ring name {name!r} must be 1-200 characters of letters, digits, '_', '.' or '-'")
    return ("/" + SHM_PREFIX + name).encode()


@cython.final
cdef class Ring:
    """A single-producer multi-consumer ring of RECORD_DTYPE records (see the module doc).

    Ring(capacity=65536, *, name=None, max_consumers=16, spin=1000, yields=100, sleep_us=50)

    capacity: slots, a power of two. name: create a shared-memory ring other processes can attach to.
    max_consumers: consumer slots (<= 64). spin / yields / sleep_us: how the producer waits for
    back-pressure consumers.
    """

    def __cinit__(self):
        self._h = NULL
        self._pid = getpid()

    def __init__(self, Py_ssize_t capacity=65536, *, name=None, int max_consumers=16,
                 spin=1000, yields=100, sleep_us=50):
        if capacity < 2 or capacity & (capacity - 1) or capacity > (1 << 32):
            raise ValueError(f"capacity must be a power of two between 2 and 2**32, got {capacity}")
        if not 1 <= max_consumers <= EX_RING_MAX_CONSUMERS:
            raise ValueError(f"max_consumers must be between 1 and {EX_RING_MAX_CONSUMERS}, got {max_consumers}")
        self._producer_wait = _policy(spin, yields, sleep_us)
        self.is_owner = True
        self.name = name
        cdef ex_ring_header *h
        self._map_size = EX_RING_HEADER_SIZE + capacity * sizeof(Record)
        if name is None:
            self._map_anonymous()
        else:
            self._create_shm(name)
        h = self._h
        h.meta.layout_version = EX_RING_LAYOUT_VERSION
        h.meta.slot_size = sizeof(Record)
        h.meta.capacity = capacity
        h.meta.max_consumers = max_consumers
        h.meta.header_size = EX_RING_HEADER_SIZE
        h.meta.owner_pid = self._pid
        h.meta.created_us = now_us()
        ex_store_release_u64(&h.meta.magic, EX_RING_MAGIC)   # last: attachers that see it see the rest
        self._setup_pointers()

    cdef _setup_pointers(self):
        self._slots = <Record *>(<char *>self._h + self._h.meta.header_size)
        self._mask = self._h.meta.capacity - 1
        self._min_read_cache = ex_load_acquire_u64(&self._h.prod.write_seq)

    cdef _map_anonymous(self):
        cdef void *p = mmap(NULL, self._map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        if p == MAP_FAILED:
            raise MemoryError(f"cannot map {self._map_size} bytes for the ring (errno {errno})")
        self._h = <ex_ring_header *>p
        self._shm = False

    cdef _create_shm(self, name):
        path = _shm_path(name)
        cdef int fd = shm_open(path, O_CREAT | O_EXCL | O_RDWR, 0o600)
        if fd < 0 and errno == EEXIST:
            owner = _segment_owner(path)
            if owner is not None and _pid_alive(owner):
                raise FileExistsError(f"a ring named {name!r} already exists, owned by live process {owner}")
            shm_unlink(path)          # left behind by a dead owner: recover it
            fd = shm_open(path, O_CREAT | O_EXCL | O_RDWR, 0o600)
        if fd < 0:
            raise OSError(errno, f"cannot create shared memory for ring {name!r}: {os.strerror(errno)}")
        if ftruncate(fd, self._map_size) != 0:
            err = errno
            c_close(fd)
            shm_unlink(path)
            raise OSError(err, f"cannot size shared memory for ring {name!r}: {os.strerror(err)}")
        cdef void *p = mmap(NULL, self._map_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        c_close(fd)
        if p == MAP_FAILED:
            shm_unlink(path)
            raise OSError(errno, f"cannot map shared memory for ring {name!r}")
        self._h = <ex_ring_header *>p
        self._shm = True

    @classmethod
    def attach(cls, name, *, capacity=None, timeout=1.0):
        """Attach to the shared-memory ring `name` created by another process. Attached rings consume
        only. `capacity`, if given, must match. Raises FileNotFoundError if there is no such ring and
        ValueError if its layout is not one this extrema understands."""
        cdef Ring self = Ring.__new__(Ring)
        cdef ex_ring_meta *m
        cdef struct_stat st
        cdef void *p
        path = _shm_path(name)
        cdef int fd = shm_open(path, O_RDWR, 0)
        if fd < 0:
            if errno == ENOENT:
                raise FileNotFoundError(f"no ring named {name!r} (no shared-memory segment /dev/shm/{SHM_PREFIX}{name})")
            raise OSError(errno, f"cannot open ring {name!r}: {os.strerror(errno)}")
        try:
            if fstat(fd, &st) != 0:
                raise OSError(errno, f"cannot stat ring {name!r}")
            if st.st_size < EX_RING_HEADER_SIZE:
                raise ValueError(f"ring {name!r} is not an extrema ring of this layout: its segment has "
                                 f"{st.st_size} bytes, smaller than the {EX_RING_HEADER_SIZE}-byte header")
            p = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
            if p == MAP_FAILED:
                raise OSError(errno, f"cannot map ring {name!r}")
        finally:
            c_close(fd)
        self._h = <ex_ring_header *>p
        self._map_size = st.st_size
        self._shm = True
        self.is_owner = False
        self.name = name
        self._producer_wait = _policy(1000, 100, 50)
        deadline = _deadline(timeout)
        while ex_load_acquire_u64(&self._h.meta.magic) != EX_RING_MAGIC:
            if deadline >= 0 and monotonic_ns() >= deadline:      # timeout=None: wait for the owner
                raise ValueError(f"ring {name!r} is not an extrema ring (bad magic number)")
            _sleep_briefly()
        m = &self._h.meta
        problems = []
        if m.layout_version != EX_RING_LAYOUT_VERSION:
            problems.append(f"layout version {m.layout_version}, this extrema reads {EX_RING_LAYOUT_VERSION}")
        if m.slot_size != sizeof(Record):
            problems.append(f"slot size {m.slot_size}, expected {sizeof(Record)}")
        if m.capacity < 2 or m.capacity & (m.capacity - 1):
            problems.append(f"capacity {m.capacity} is not a power of two")
        elif m.header_size + m.capacity * m.slot_size != <uint64_t>st.st_size:
            problems.append(f"segment size {st.st_size} does not match capacity {m.capacity}")
        if m.header_size != EX_RING_HEADER_SIZE or m.max_consumers > EX_RING_MAX_CONSUMERS:
            problems.append(f"header of {m.header_size} bytes / {m.max_consumers} consumers, "
                            f"expected {EX_RING_HEADER_SIZE} / <= {EX_RING_MAX_CONSUMERS}")
        if capacity is not None and capacity != m.capacity:
            problems.append(f"capacity {m.capacity}, the caller expected {capacity}")
        if problems:
            raise ValueError(f"cannot attach to ring {name!r}: " + "; ".join(problems))
        self._setup_pointers()
        return self

    def __dealloc__(self):
        if self._h != NULL:
            if self.is_owner and not self._closed:
                # Unlink only if close() did not: by now the name may belong to a newer ring.
                ex_store_release_u64(&self._h.prod.closed, 1)
                ex_ring_wake(self._h)
                if self._shm and self.name is not None:
                    shm_unlink(_shm_path(self.name))
            munmap(self._h, self._map_size)
            self._h = NULL

    def close(self):
        """Owner: mark the ring closed (consumers drain, then stop) and remove its shared-memory name.
        Attached: stop using it. The memory is unmapped when the last consumer object goes away."""
        if self._closed:
            return
        self._closed = True
        if self.is_owner:
            ex_store_release_u64(&self._h.prod.closed, 1)
            ex_ring_wake(self._h)
            if self._shm:
                shm_unlink(_shm_path(self.name))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- producer -----------------------------------------------------------------------------------

    cdef uint64_t _min_blocking_read(self) noexcept nogil:
        """Lowest read position of the live back-pressure consumers (write_seq when there are none)."""
        cdef ex_ring_header *h = self._h
        cdef uint64_t m, r
        cdef uint32_t i
        ex_fence_seq_cst()      # pairs with the consumer's fence after it turns ACTIVE (consumer())
        m = ex_load_relaxed_u64(&h.prod.write_seq)
        for i in range(h.meta.max_consumers):
            if ex_load_acquire_u32(&h.consumers[i].state) == EX_SLOT_ACTIVE and h.consumers[i].policy == EX_POLICY_BLOCK:
                r = ex_load_acquire_u64(&h.consumers[i].read_seq)
                if r < m:
                    m = r
        return m

    cdef bint _owner_alive(self) noexcept nogil:
        return self._h.meta.owner_pid == self._pid or _pid_alive(self._h.meta.owner_pid)

    cdef void _reclaim_dead_consumers(self) noexcept nogil:
        """A back-pressure consumer whose process died would stall the producer forever: free its slot."""
        cdef ex_ring_header *h = self._h
        cdef uint32_t i
        for i in range(h.meta.max_consumers):
            if (ex_load_acquire_u32(&h.consumers[i].state) == EX_SLOT_ACTIVE
                    and h.consumers[i].pid != self._pid and not _pid_alive(h.consumers[i].pid)):
                ex_cas_u32(&h.consumers[i].state, EX_SLOT_ACTIVE, EX_SLOT_DEAD)

    cdef Py_ssize_t publish_ptr(self, const Record *recs, Py_ssize_t n, int64_t timeout_ns) noexcept nogil:
        """Publish n records; returns how many were published before the deadline (timeout_ns < 0: none)."""
        cdef ex_ring_header *h = self._h
        cdef uint64_t cap = self._mask + 1
        cdef uint64_t w = ex_load_relaxed_u64(&h.prod.write_seq)
        cdef uint64_t k, space, idx, first
        cdef Py_ssize_t done = 0
        cdef int64_t spins = 0, yields = 0, step = 0
        cdef int64_t deadline = -1 if timeout_ns < 0 else monotonic_ns() + timeout_ns
        while done < n:
            space = cap - (w - self._min_read_cache)
            if space == 0 or <uint64_t>(n - done) > space:
                self._min_read_cache = self._min_blocking_read()
                space = cap - (w - self._min_read_cache)
                if space == 0:
                    if timeout_ns == 0:
                        return done
                    if step == 0:
                        h.prod.blocked_waits += 1
                    if yields >= self._producer_wait.yields and (step & 255) == 0:
                        self._reclaim_dead_consumers()
                    _wait_step(&self._producer_wait, &spins, &yields)
                    step += 1
                    if _deadline_passed(deadline, step):
                        return done
                    continue
            spins = yields = step = 0
            k = <uint64_t>(n - done)
            if k > space:
                k = space
            # Announce the slots about to be overwritten before touching them (lossy readers check it).
            ex_store_relaxed_u64(&h.prod.write_claim, w + k)
            ex_fence_release()
            idx = w & self._mask
            first = cap - idx if k > cap - idx else k
            memcpy(&self._slots[idx], &recs[done], first * sizeof(Record))
            if k > first:
                memcpy(&self._slots[0], &recs[done + first], (k - first) * sizeof(Record))
            w += k
            ex_store_release_u64(&h.prod.write_seq, w)
            ex_ring_wake(h)          # before any further wait: a sleeping consumer may be what we wait for
            done += k
        return done

    def publish(self, records, timeout=None):
        """Publish a RECORD_DTYPE array (or one record). Waits, without the GIL, while back-pressure
        consumers are a full ring behind; raises TimeoutError after `timeout` seconds saying how many
        records went out. Returns the number published."""
        if not self.is_owner:
            raise PermissionError(f"ring {self.name!r} is attached: only its owner publishes")
        if self._closed:
            raise RingClosedError("cannot publish to a closed ring")
        cdef cnp.ndarray arr = as_record_array(records, "publish")
        cdef Py_ssize_t n = cnp.PyArray_DIM(arr, 0), done
        cdef int64_t timeout_ns = -1 if timeout is None else <int64_t>(timeout * 1e9)
        cdef const Record *recs = record_data(arr)
        if n == 0:
            return 0
        # Holding the GIL for a copy that does not have to wait is cheaper than handing the GIL to a
        # consumer thread and taking it back; release it only to wait for back-pressure consumers.
        done = self.publish_ptr(recs, n, 0)
        if done < n and timeout_ns != 0:
            with nogil:
                done += self.publish_ptr(recs + done, n - done, timeout_ns)
        if done < n:
            raise TimeoutError(f"published {done} of {n} records in {timeout} s: a back-pressure consumer "
                               f"is a full ring behind")
        return n

    # ---- consumers ----------------------------------------------------------------------------------

    def consumer(self, policy="block", *, start="latest", spin=1000, yields=0, sleep_us=10_000,
                 Py_ssize_t max_batch=4096):
        """A new consumer, reading from the next published record ("latest") or from the oldest record
        still in the ring ("oldest"; lossy consumers only). See the module doc for the policies."""
        if policy not in ("block", "lossy"):
            raise ValueError(f"policy must be 'block' or 'lossy', got {policy!r}")
        if start not in ("latest", "oldest"):
            raise ValueError(f"start must be 'latest' or 'oldest', got {start!r}")
        if start == "oldest" and policy == "block":
            raise ValueError("a back-pressure consumer starts at 'latest': older records may already be overwritten")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if self._closed:
            raise RingClosedError("the ring is closed")
        return RingConsumer._create(self, policy == "lossy", start == "oldest",
                                    _policy(spin, yields, sleep_us), max_batch)

    # ---- introspection ------------------------------------------------------------------------------

    @property
    def capacity(self):
        return self._h.meta.capacity

    @property
    def published(self):
        """Records published so far (the write sequence)."""
        return ex_load_acquire_u64(&self._h.prod.write_seq)

    @property
    def closed(self):
        """True once the owner closed the ring."""
        return self._closed or ex_load_acquire_u64(&self._h.prod.closed) != 0

    @property
    def owner_pid(self):
        return self._h.meta.owner_pid

    def stats(self):
        """The ring's counters and every claimed consumer slot."""
        cdef ex_ring_header *h = self._h
        cdef uint32_t i
        consumers = []
        for i in range(h.meta.max_consumers):
            state = ex_load_acquire_u32(&h.consumers[i].state)
            if state != EX_SLOT_FREE:
                consumers.append({"index": i, "state": {1: "active", 2: "dead", 3: "claiming"}.get(state, "?"),
                                  "policy": "lossy" if h.consumers[i].policy == EX_POLICY_LOSSY else "block",
                                  "pid": h.consumers[i].pid, "read": ex_load_acquire_u64(&h.consumers[i].read_seq),
                                  "lost": h.consumers[i].lost})
        return {"name": self.name, "capacity": h.meta.capacity, "published": self.published,
                "closed": self.closed, "owner_pid": h.meta.owner_pid,
                "producer_blocked_waits": h.prod.blocked_waits, "consumers": consumers}

    def __repr__(self):
        where = f"shared memory {self.name!r}" if self._shm else "process memory"
        role = "owner" if self.is_owner else "attached"
        return (f"<Ring {where} {role} capacity={self.capacity} published={self.published}"
                f"{' closed' if self.closed else ''}>")


cdef void _sleep_briefly() noexcept nogil:
    cdef timespec ts
    ts.tv_sec = 0
    ts.tv_nsec = 1000000
    nanosleep(&ts, NULL)


def _segment_owner(bytes path):
    """The owner pid recorded in an existing segment, or None if it is not a readable ring."""
    cdef int fd = shm_open(path, O_RDWR, 0)
    cdef struct_stat st
    cdef void *p
    cdef int64_t owner
    if fd < 0:
        return None
    try:
        if fstat(fd, &st) != 0 or st.st_size < EX_RING_HEADER_SIZE:
            return None
        p = mmap(NULL, sizeof(ex_ring_meta), PROT_READ, MAP_SHARED, fd, 0)
        if p == MAP_FAILED:
            return None
        owner = (<ex_ring_meta *>p).owner_pid if (<ex_ring_meta *>p).magic == EX_RING_MAGIC else -1
        munmap(p, sizeof(ex_ring_meta))
        return owner if owner > 0 else None
    finally:
        c_close(fd)


def sweep_stale_rings():
    """Remove the shared-memory segments of rings whose owner process is dead. Returns their names."""
    removed = []
    try:
        entries = os.listdir("/dev/shm")
    except FileNotFoundError:
        return removed
    for entry in entries:
        if not entry.startswith(SHM_PREFIX):
            continue
        path = ("/" + entry).encode()
        owner = _segment_owner(path)
        if owner is None or not _pid_alive(owner):
            if shm_unlink(path) == 0:
                removed.append(entry[len(SHM_PREFIX):])
    return removed


cdef object _records_view(const Record *p, Py_ssize_t n, object base):
    """A read-only RECORD_DTYPE array over n records at p, keeping `base` alive."""
    cdef cnp.npy_intp dims[1]
    dims[0] = n
    Py_INCREF(RECORD_DTYPE)               # PyArray_NewFromDescr steals a reference to the dtype
    arr = PyArray_NewFromDescr(<void *>np.ndarray, <void *>RECORD_DTYPE, 1, dims, NULL, <void *>p, 0, NULL)
    Py_INCREF(base)                       # ... and PyArray_SetBaseObject one to the base
    cnp.PyArray_SetBaseObject(arr, base)
    return arr


_EMPTY = np.empty(0, dtype=RECORD_DTYPE)
_EMPTY.flags.writeable = False


cdef _log_torn(RingConsumer c, int64_t before):
    if c.torn_dropped != before:
        log.warning("ring consumer %d dropped %d event(s) that an overrun or an unfinished publish cut (%d so far, "
                    "%d records lost)", c.index, c.torn_dropped - before, c.torn_dropped, c.lost)


@cython.final
@cython.no_gc_clear
cdef class RingConsumer:
    """One consumer's cursor on a Ring. Made by Ring.consumer(); see the module doc."""

    def __cinit__(self):
        self._copy = NULL
        self._c = NULL

    def __init__(self):
        raise TypeError("use Ring.consumer() to create a consumer")

    @staticmethod
    cdef RingConsumer _create(Ring ring, bint lossy, bint oldest, WaitPolicy wait, Py_ssize_t max_batch):
        cdef RingConsumer self = RingConsumer.__new__(RingConsumer)
        cdef ex_ring_header *h = ring._h
        cdef uint32_t i
        cdef uint64_t w
        self._ring = ring
        self.lossy = lossy
        self._wait = wait
        self.index = -1
        for i in range(h.meta.max_consumers):
            if (ex_cas_u32(&h.consumers[i].state, EX_SLOT_FREE, SLOT_CLAIMING)
                    or ex_cas_u32(&h.consumers[i].state, EX_SLOT_DEAD, SLOT_CLAIMING)):
                self.index = i
                break
        if self.index < 0:
            raise RuntimeError(f"all {h.meta.max_consumers} consumer slots of the ring are taken")
        self._c = &h.consumers[self.index]
        self._c.policy = EX_POLICY_LOSSY if lossy else EX_POLICY_BLOCK
        self._c.pid = ring._pid
        self._c.lost = 0
        ex_store_release_u64(&self._c.read_seq, ex_load_acquire_u64(&h.prod.write_seq))
        ex_store_release_u32(&self._c.state, EX_SLOT_ACTIVE)
        # Dekker with the producer's _min_blocking_read: either it sees us ACTIVE, or we see every
        # write_seq it published before looking, so it never overwrites what we are about to read.
        ex_fence_seq_cst()
        w = ex_load_acquire_u64(&h.prod.write_seq)
        if oldest:
            w = w - ring._mask - 1 if w > ring._mask + 1 else 0
        ex_store_release_u64(&self._c.read_seq, w)
        self._cursor = w
        self._pending_end = w
        if lossy:
            self._copy_cap = min(max_batch, <Py_ssize_t>(ring._mask + 1))
            self._copy = <Record *>malloc(self._copy_cap * sizeof(Record))
            if self._copy == NULL:
                ex_store_release_u32(&self._c.state, EX_SLOT_FREE)
                raise MemoryError("cannot allocate the lossy consumer's batch buffer")
        else:
            self._copy_cap = max_batch
        return self

    def __dealloc__(self):
        self._free_slot()
        free(self._copy)
        self._copy = NULL

    cdef void _free_slot(self) noexcept:
        if self._c != NULL:
            ex_store_release_u32(&self._c.state, EX_SLOT_FREE)
            self._c = NULL

    def close(self):
        """Give the slot back; a back-pressure consumer stops holding the producer."""
        self._closed = True
        self._free_slot()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    cdef void release(self) noexcept nogil:
        """Hand the last batch back to the producer (a back-pressure consumer's batch stays valid until then)."""
        if not self.lossy and self._c != NULL and self._pending_end != ex_load_relaxed_u64(&self._c.read_seq):
            ex_store_release_u64(&self._c.read_seq, self._pending_end)

    cdef Py_ssize_t poll_ptr(self, Py_ssize_t max_n, const Record **out) noexcept nogil:
        """Up to max_n available records (contiguous) at *out, or 0. Releases the previous batch."""
        cdef ex_ring_header *h
        cdef uint64_t cap, w, avail, idx, claim, first_valid, drop
        cdef Py_ssize_t n
        if self._closed:
            return RING_CONSUMER_CLOSED
        h = self._ring._h
        cap = self._ring._mask + 1
        self.release()
        while True:
            w = ex_load_acquire_u64(&h.prod.write_seq)
            avail = w - self._cursor
            if avail == 0:
                return 0
            if self.lossy and avail > cap:
                self._c.lost += avail - cap
                self._cursor = w - cap
                avail = cap
            idx = self._cursor & self._ring._mask
            n = <Py_ssize_t>avail
            if n > max_n:
                n = max_n
            if n > self._copy_cap:
                n = self._copy_cap
            if <uint64_t>n > cap - idx:
                n = <Py_ssize_t>(cap - idx)
            if not self.lossy:
                out[0] = &self._ring._slots[idx]
                self._cursor += n
                self._pending_end = self._cursor
                return n
            memcpy(self._copy, &self._ring._slots[idx], n * sizeof(Record))
            ex_fence_acquire()
            claim = ex_load_relaxed_u64(&h.prod.write_claim)
            first_valid = claim - cap if claim > cap else 0
            drop = 0
            if self._cursor < first_valid:
                drop = first_valid - self._cursor
                if drop > <uint64_t>n:
                    drop = n
                self._c.lost += drop
            self._cursor += n
            ex_store_relaxed_u64(&self._c.read_seq, self._cursor)
            if <uint64_t>n > drop:
                out[0] = self._copy + drop
                return n - <Py_ssize_t>drop
            # Everything copied was overwritten meanwhile: look again from further on.

    cdef Py_ssize_t wait_ptr(self, Py_ssize_t max_n, const Record **out, int64_t timeout_ns) noexcept nogil:
        """Like poll_ptr, but waits (spin -> yield -> sleep) until records arrive. Returns the count, 0 on
        timeout (timeout_ns < 0: never), RING_CLOSED once closed and drained, RING_PRODUCER_GONE."""
        cdef int64_t spins = 0, yields = 0, step = 0, nap
        cdef int64_t deadline = -1 if timeout_ns < 0 else monotonic_ns() + timeout_ns
        cdef Py_ssize_t n
        while True:
            n = self.poll_ptr(max_n, out)
            if n != 0:
                return n
            if ex_load_acquire_u64(&self._ring._h.prod.closed):
                n = self.poll_ptr(max_n, out)     # closed is set after the last publish: drain it
                return n if n != 0 else RING_CLOSED
            if self._wait.spin < 0 or spins < self._wait.spin:
                ex_cpu_relax()
                spins += 1
            elif yields < self._wait.yields:
                sched_yield()
                yields += 1
            else:
                if not self._ring._owner_alive():
                    return RING_PRODUCER_GONE
                nap = self._wait.sleep_ns
                if deadline >= 0:
                    nap = min(nap, deadline - monotonic_ns())
                    if nap <= 0:
                        return RING_TIMEOUT
                ex_ring_sleep(self._ring._h, self._cursor, nap)
            step += 1
            if _deadline_passed(deadline, step):
                return RING_TIMEOUT

    cdef object _result(self, Py_ssize_t n, const Record *p):
        if n > 0:
            return _records_view(p, n, self)
        if n == RING_CONSUMER_CLOSED:
            raise ValueError("this consumer is closed")
        if n == RING_CLOSED:
            raise RingClosedError("the ring was closed and every record has been read")
        if n == RING_PRODUCER_GONE:
            raise ProducerGoneError(f"the owner of ring {self._ring.name!r} (pid {self._ring.owner_pid}) died")
        return _EMPTY

    cdef void _give_back(self, Py_ssize_t k) noexcept nogil:
        """Hand the last k records of the batch just taken back to the ring: the next poll starts with them
        (a back-pressure consumer has not released them yet: _pending_end moves back with the cursor)."""
        self._cursor -= <uint64_t>k
        if self.lossy:
            ex_store_relaxed_u64(&self._c.read_seq, self._cursor)
        else:
            self._pending_end = self._cursor

    cdef Py_ssize_t _whole(self, Py_ssize_t n, const Record **out) noexcept nogil:
        """The batch poll_ptr / wait_ptr just handed out (n > 0 records at *out) cut to whole events, or the
        event at its start put back together in _joined (see the module doc). Returns the count, 0 when
        nothing whole can be handed out now: the event is not all published yet (it stays for the next
        call), or it was torn (counted in torn_dropped; the caller polls again)."""
        cdef const Record *b = out[0]
        cdef const Record *more
        cdef Py_ssize_t lead = 0, whole, have, need, m, j
        cdef uint64_t start
        cdef ex_ring_header *h = self._ring._h
        if self._owed:
            # the continuations of an event larger than the ring, handed out in pieces as they come
            m = self._owed if self._owed < n else n
            self._owed -= m
            self._give_back(n - m)
            return m
        while lead < n and b[lead].kind == KIND_CONTINUATION:
            lead += 1                   # continuations whose head this consumer never saw (a lossy overrun)
        if lead:
            self.torn_dropped += 1
            if lead == n:
                return 0
            b += lead
            n -= lead
            out[0] = b
        whole = whole_events(b, n)
        if whole == n:
            return n
        if whole > 0:
            self._give_back(n - whole)
            return whole
        # The batch is the start of one event whose continuations lie beyond it.
        need = 1 + (b[0].flags >> 12) - n
        if 1 + (b[0].flags >> 12) > <Py_ssize_t>(self._ring._mask + 1):
            self._owed = need           # larger than the ring: it cannot be whole in it
            return n
        if ex_load_acquire_u64(&h.prod.write_seq) - self._cursor < <uint64_t>need:
            if not ex_load_acquire_u64(&h.prod.closed):
                self._give_back(n)      # its continuations are being published: next time
                return 0
            self.torn_dropped += 1      # closed before they were: they never will be
            return 0
        memcpy(self._joined, b, n * sizeof(Record))
        have = n
        while need > 0:
            start = self._cursor
            m = self.poll_ptr(need, &more)
            if m <= 0:
                break
            if self._cursor - <uint64_t>m != start:
                self._give_back(m)      # an overrun skipped what came next: these are the stream after it
                break
            j = 0
            while j < m and more[j].kind == KIND_CONTINUATION:
                j += 1
            memcpy(self._joined + have, more, j * sizeof(Record))
            have += j
            need -= j
            if j < m:
                self._give_back(m - j)  # a head: the producer never finished the event we hold
                break
        if need:
            self.torn_dropped += 1
            return 0
        self.rejoined += 1
        out[0] = self._joined
        return have

    def poll(self, max_n=None):
        """Every record available now (up to max_n; more only to finish the one event a batch holds), as a
        read-only RECORD_DTYPE array of whole events; empty if none. Valid until the next poll / read /
        release on this consumer."""
        cdef const Record *p = NULL
        cdef Py_ssize_t n = self._copy_cap if max_n is None else max_n
        cdef Py_ssize_t limit = n
        cdef int64_t torn = self.torn_dropped, before
        if n < 1:
            raise ValueError(f"max_n must be >= 1, got {max_n}")
        while True:
            n = self.poll_ptr(limit, &p)
            if n <= 0:
                break
            before = self.torn_dropped
            n = self._whole(n, &p)
            if n > 0 or self.torn_dropped == before:
                break
        _log_torn(self, torn)
        if n == 0 and not self._closed and ex_load_acquire_u64(&self._ring._h.prod.closed) and self.lag == 0:
            n = RING_CLOSED
        return self._result(n, p)

    def read(self, max_n=None, timeout=None):
        """Wait (without the GIL) for records and return them like poll(); an empty array on timeout.
        Raises RingClosedError once the ring is closed and drained, ProducerGoneError if the owner died."""
        cdef const Record *p = NULL
        cdef Py_ssize_t n = self._copy_cap if max_n is None else max_n
        cdef int64_t timeout_ns = -1 if timeout is None else <int64_t>(timeout * 1e9)
        cdef int64_t deadline, left, torn = self.torn_dropped, before
        if n < 1:
            raise ValueError(f"max_n must be >= 1, got {max_n}")
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be >= 0 seconds or None, got {timeout}")
        deadline = -1 if timeout_ns < 0 else monotonic_ns() + timeout_ns
        cdef Py_ssize_t limit = n
        while True:
            n = self.poll_ptr(limit, &p)            # records waiting already: no GIL round trip
            if n == 0:
                left = -1 if deadline < 0 else max(deadline - monotonic_ns(), 0)
                with nogil:
                    n = self.wait_ptr(limit, &p, left)
            if n <= 0:
                break
            before = self.torn_dropped
            n = self._whole(n, &p)
            if n > 0:
                break
            if self.torn_dropped == before:
                # an event whose continuations the producer is publishing right now
                if deadline >= 0 and monotonic_ns() >= deadline:
                    break
                with nogil:
                    sched_yield()
        _log_torn(self, torn)
        return self._result(n, p)

    def release_batch(self):
        """Hand the last batch back to the producer now (otherwise it happens on the next poll / read)."""
        self.release()

    def __iter__(self):
        """Batches until the ring is closed and drained."""
        while True:
            try:
                yield self.read()
            except RingClosedError:
                return

    @property
    def lost(self):
        """Records this (lossy) consumer missed because the producer lapped it."""
        return 0 if self._c == NULL else self._c.lost

    @property
    def position(self):
        """Sequence number of the next record this consumer will be handed."""
        return self._cursor

    @property
    def lag(self):
        """Published records not yet handed to this consumer."""
        return ex_load_acquire_u64(&self._ring._h.prod.write_seq) - self._cursor

    @property
    def closed(self):
        return self._closed

    def __repr__(self):
        return (f"<RingConsumer {self.index} {'lossy' if self.lossy else 'block'} position={self._cursor} "
                f"lost={self.lost}{' closed' if self._closed else ''}>")
