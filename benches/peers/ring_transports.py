"""Transports compared by the `ring` suite, driven the same way: one producer, N consumers, fan-out.

Every transport carries the same 64-byte `extrema.RECORD_DTYPE` records in the same batches (B records
per message / publish) and every consumer receives *every* record (fan-out, like the ring):

threads (one process)                      processes (multiprocessing "spawn" workers)
  ring       extrema.Ring, process memory    ring-shm     extrema.Ring(name=...), Ring.attach(name)
  queue      one queue.Queue per consumer    mp-queue     one multiprocessing.Queue per consumer
  zmq-push   pyzmq PUSH/PULL inproc, one     zmq-push-ipc pyzmq PUSH/PULL over ipc://, one PUSH
             PUSH socket per consumer                     socket per consumer
  zmq-pub    pyzmq PUB/SUB inproc, one PUB   zmq-pub-ipc  pyzmq PUB/SUB over ipc://, one PUB

PUSH/PULL load-balances, so fan-out needs one PUSH per consumer (the producer sends each message
N times, as with the queues); PUB/SUB and the ring fan out natively. PUB/SUB drops at its high-water
mark, so SNDHWM = RCVHWM = 0 (unbounded) here: the count check below would catch any drop.

Message formats: the ring copies records into its slots; queue.Queue carries the numpy slice itself
(zero copy, the cheapest thing a thread queue can do); multiprocessing.Queue carries `bytes` of the
slice (pickling bytes is cheaper than pickling an ndarray); zmq sends the slice's buffer. Consumers
turn bytes back into records with `np.frombuffer(msg, RECORD_DTYPE)` (no copy).

Consumer work, identical everywhere (`consume`): for each batch received, `batch["sequence"].sum()`
into a running checksum and `len(batch)` into a count; in latency mode also
`monotonic_time_ns() - batch["ts_local"]` (the producer stamps `ts_local` with
`extrema.monotonic_time_ns()`, CLOCK_MONOTONIC, the same clock in every process, right before the
send). A trial is valid only if every consumer counted exactly n records whose sequences sum to
n(n-1)/2 (and, for ring consumers, lost == 0); otherwise it reports an error instead of a number.

Handshake: a consumer opens its end (ring consumer slot / socket) and says "ready"; the producer starts
only when all are ready. PUB/SUB additionally syncs (the producer sends 1-byte sync messages until every
subscriber has seen one, so no subscription is still in flight: ZeroMQ's "slow joiner").
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import queue
import tempfile
import threading
import time
from multiprocessing.connection import wait as mp_wait

import numpy as np

try:
    import zmq
    ZMQ_VERSION = f"pyzmq {zmq.__version__} (libzmq {zmq.zmq_version()})"
    ZMQ_ERROR = None
except Exception as exc:  # noqa: BLE001 - reported by the suite
    zmq = None
    ZMQ_VERSION = None
    ZMQ_ERROR = f"{type(exc).__name__}: {exc}"

import extrema

THREAD_TRANSPORTS = ("ring", "queue", "zmq-push", "zmq-pub")
PROCESS_TRANSPORTS = ("ring-shm", "mp-queue", "zmq-push-ipc", "zmq-pub-ipc")
LABELS = {
    "ring": "extrema.Ring (process memory)",
    "queue": "queue.Queue per consumer",
    "zmq-push": "pyzmq PUSH/PULL inproc",
    "zmq-pub": "pyzmq PUB/SUB inproc",
    "ring-shm": "extrema.Ring (shared memory)",
    "mp-queue": "multiprocessing.Queue per consumer",
    "zmq-push-ipc": "pyzmq PUSH/PULL ipc",
    "zmq-pub-ipc": "pyzmq PUB/SUB ipc",
}
RING_CAPACITY = 1 << 16           # 4 MiB of slots: the Ring default
RECV_TIMEOUT_S = 1.0              # a consumer re-checks its deadline this often
TRIAL_TIMEOUT_S = 60.0            # a trial that has not finished by then is reported broken
SYNC = b"S"                       # PUB/SUB sync message (1 byte: never a record)

_ids = itertools.count()
mono = extrema.monotonic_time_ns


def needs_zmq(transport: str) -> bool:
    return transport.startswith("zmq")


def make_records(n: int) -> np.ndarray:
    """n TRADE records with sequence 0..n-1 (what consumers checksum)."""
    arr = extrema.empty_records(n)
    arr["kind"] = extrema.RecordKind.TRADE
    arr["instrument_id"] = 1
    arr["sequence"] = np.arange(n, dtype=np.int64)
    arr["price"] = 5_000_000 + (np.arange(n) % 100)
    arr["quantity"] = 1_000
    return arr


def expected_checksum(n: int, length: int | None = None) -> int:
    """Sum of the sequences of n records sent from an array of `length` records (wrapping around)."""
    if length is None or n <= length:
        return n * (n - 1) // 2
    full, rem = divmod(n, length)
    return full * (length * (length - 1) // 2) + rem * (rem - 1) // 2


# ------------------------------------------------------------------------------- consumer side

class _Endpoint:
    """A consumer's end of a transport: recv() -> RECORD_DTYPE array (empty on timeout)."""
    needs_sync = False
    ring_consumer = None

    def recv(self):
        raise NotImplementedError

    def wait_sync(self, deadline_ns):
        pass

    def close(self):
        pass


class _RingEnd(_Endpoint):
    def __init__(self, ring, wait, read_max=None):
        self.ring = ring
        self.ring_consumer = ring.consumer("block", **(wait or {}))
        read = self.ring_consumer.read
        self.recv = lambda: read(read_max, RECV_TIMEOUT_S)

    def close(self):
        self.ring_consumer.close()
        if not self.ring.is_owner:
            self.ring.close()


class _QueueEnd(_Endpoint):
    def __init__(self, q, to_records):
        get = q.get
        empty_exc = queue.Empty
        empty = extrema.empty_records(0)
        dtype = extrema.RECORD_DTYPE
        frombuffer = np.frombuffer

        if to_records:
            def recv():
                try:
                    return frombuffer(get(timeout=RECV_TIMEOUT_S), dtype)
                except empty_exc:
                    return empty
        else:
            def recv():
                try:
                    return get(timeout=RECV_TIMEOUT_S)
                except empty_exc:
                    return empty
        self.recv = recv


class _ZmqEnd(_Endpoint):
    def __init__(self, zctx, kind, address):
        self.owns_ctx = zctx is None
        self.zctx = zctx if zctx is not None else zmq.Context()
        self.sock = self.zctx.socket(zmq.PULL if kind == "push" else zmq.SUB)
        self.sock.setsockopt(zmq.RCVHWM, 0 if kind == "pub" else 1000)
        self.sock.setsockopt(zmq.RCVTIMEO, int(RECV_TIMEOUT_S * 1000))
        self.sock.setsockopt(zmq.LINGER, 0)
        if kind == "pub":
            self.sock.setsockopt(zmq.SUBSCRIBE, b"")
            self.needs_sync = True
        self.sock.connect(address)
        sock_recv = self.sock.recv
        again = zmq.Again
        empty = extrema.empty_records(0)
        dtype = extrema.RECORD_DTYPE
        frombuffer = np.frombuffer

        if kind == "pub":
            def recv():
                try:
                    msg = sock_recv()
                    while len(msg) == 1:          # a late sync message
                        msg = sock_recv()
                    return frombuffer(msg, dtype)
                except again:
                    return empty
        else:
            def recv():
                try:
                    return frombuffer(sock_recv(), dtype)
                except again:
                    return empty
        self.recv = recv

    def wait_sync(self, deadline_ns):
        while mono() < deadline_ns:
            try:
                if self.sock.recv() == SYNC:
                    return
            except zmq.Again:
                pass
        raise TimeoutError("no sync message from the publisher")

    def close(self):
        self.sock.close(0)
        if self.owns_ctx:
            self.zctx.term()


def open_endpoint(spec: dict, local: dict) -> _Endpoint:
    t = spec["transport"]
    if t == "ring":
        return _RingEnd(local["ring"], spec.get("wait"), spec.get("read_max"))
    if t == "ring-shm":
        return _RingEnd(extrema.Ring.attach(spec["address"]), spec.get("wait"), spec.get("read_max"))
    if t == "queue":
        return _QueueEnd(local["queue"], to_records=False)
    if t == "mp-queue":
        return _QueueEnd(local["mpq"], to_records=True)
    if t in ("zmq-push", "zmq-pub"):
        return _ZmqEnd(local["zctx"], t[4:], spec["address"])
    if t in ("zmq-push-ipc", "zmq-pub-ipc"):
        return _ZmqEnd(None, "push" if "push" in t else "pub", spec["address"])
    raise ValueError(f"unknown transport {t!r}")


def consume(recv, n: int, latency: bool, deadline_ns: int) -> dict:
    """The consumer's work, the same for every transport: checksum + count (+ latency) per batch."""
    count = 0
    checksum = 0
    batches = 0
    lats = []
    lat_append = lats.append
    now = mono
    cpu0 = time.thread_time()
    t0 = now()
    while count < n:
        batch = recv()
        if latency:
            t = now()
            lat_append(t - batch["ts_local"])
        k = len(batch)
        if k:
            checksum += int(batch["sequence"].sum())
            count += k
            batches += 1
        elif now() > deadline_ns:
            break
    t_last = now()
    out = {"count": count, "checksum": checksum, "batches": batches, "t_last": t_last,
           "cpu_share": (time.thread_time() - cpu0) / max((t_last - t0) * 1e-9, 1e-9)}  # this thread's CPU / wall
    if latency:
        out["lat"] = np.concatenate(lats) if lats else np.empty(0, np.int64)
    return out


def consumer_trial(conn, spec: dict, local: dict) -> None:
    """One consumer's side of one trial (a thread, or a call in a worker process)."""
    ep = None
    try:
        ep = open_endpoint(spec, local)
        conn.send(("ready", None))
        deadline = mono() + int(TRIAL_TIMEOUT_S * 1e9)
        if ep.needs_sync:
            ep.wait_sync(deadline)
            conn.send(("synced", None))
        res = consume(ep.recv, spec["n"], spec["latency"], deadline)
        if ep.ring_consumer is not None:
            res["lost"] = ep.ring_consumer.lost
        conn.send(("done", res))
    except BaseException as exc:  # noqa: BLE001 - reported to the producer, which reports the trial broken
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        if ep is not None:
            try:
                ep.close()
            except Exception:  # noqa: BLE001
                pass


def worker_main(conn, mpq) -> None:
    """A consumer process: runs trials on command until told to stop."""
    conn.send(("hello", os.getpid()))
    while True:
        cmd, spec = conn.recv()
        if cmd == "stop":
            break
        consumer_trial(conn, spec, {"mpq": mpq})


# ------------------------------------------------------------------------------- producer side

class WorkerPool:
    """N persistent consumer processes (spawn context), each with its own multiprocessing.Queue."""

    def __init__(self, n: int):
        ctx = mp.get_context("spawn")
        self.conns = []
        self.queues = []
        self.procs = []
        for _ in range(n):
            parent, child = ctx.Pipe()
            q = ctx.Queue()
            p = ctx.Process(target=worker_main, args=(child, q), daemon=True)
            p.start()
            self.conns.append(parent)
            self.queues.append(q)
            self.procs.append(p)
        self.pids = []
        for c in self.conns:
            if not c.poll(120):
                raise RuntimeError("a consumer process did not start within 120 s")
            self.pids.append(c.recv()[1])

    def close(self):
        for c in self.conns:
            try:
                c.send(("stop", None))
            except OSError:
                pass
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
        for q in self.queues:
            q.close()


class Trial:
    """One producer and n consumers on one transport, set up and handshaken (not yet started).

    run_throughput(arr, batch) / run_paced(arr, k, interval_ns) send, then collect() waits for every
    consumer and verifies it; `error` is set (and no figure may be posted) if anything is off."""

    def __init__(self, transport: str, n_consumers: int, n_records: int, *, latency: bool = False,
                 pool: WorkerPool | None = None, zctx=None, wait: dict | None = None,
                 read_max: int | None = None):
        self.transport = transport
        self.n = n_records
        self.k = n_consumers
        self.error = None
        self.results = []
        self.threads = []
        self.conns = []
        self._closers = []
        processes = transport in PROCESS_TRANSPORTS
        spec = {"transport": transport, "n": n_records, "latency": latency, "wait": wait, "read_max": read_max}
        local_per = [{} for _ in range(n_consumers)]
        uid = f"xbench-{os.getpid()}-{next(_ids)}"

        if transport in ("ring", "ring-shm"):
            self.ring = extrema.Ring(RING_CAPACITY, name=uid if processes else None)
            self._closers.append(self.ring.close)
            spec["address"] = uid
            for lp in local_per:
                lp["ring"] = self.ring
            self._sends = [self.ring.publish]
        elif transport == "queue":
            qs = [queue.Queue() for _ in range(n_consumers)]
            for lp, q in zip(local_per, qs):
                lp["queue"] = q
            self._sends = [q.put for q in qs]
        elif transport == "mp-queue":
            self._sends = [q.put for q in pool.queues[:n_consumers]]
        elif needs_zmq(transport):
            ipc = transport.endswith("-ipc")
            self.zctx = zctx if zctx is not None else zmq.Context()
            kind = "push" if "push" in transport else "pub"
            socks = []
            for i in range(n_consumers if kind == "push" else 1):
                s = self.zctx.socket(zmq.PUSH if kind == "push" else zmq.PUB)
                s.setsockopt(zmq.SNDHWM, 1000 if kind == "push" else 0)
                s.setsockopt(zmq.LINGER, 0)
                s.setsockopt(zmq.SNDTIMEO, int(TRIAL_TIMEOUT_S * 1000))
                addr = (f"ipc://{tempfile.gettempdir()}/{uid}-{i}.ipc" if ipc else f"inproc://{uid}-{i}")
                s.bind(addr)
                socks.append((s, addr))
                self._closers.append(lambda s=s: s.close(0))
            self._sends = [s.send for s, _ in socks]
            self._pub = socks[0][0] if kind == "pub" else None
            for i, lp in enumerate(local_per):
                lp["zctx"] = self.zctx
            addresses = [a for _, a in socks]
        else:
            raise ValueError(f"unknown transport {transport!r}")

        # Start the consumers and wait until each has opened its end.
        for i in range(n_consumers):
            s = dict(spec)
            if needs_zmq(transport):
                s["address"] = addresses[i] if "push" in transport else addresses[0]
            if processes:
                conn = pool.conns[i]
                conn.send(("trial", s))
            else:
                conn, child = mp.Pipe()
                th = threading.Thread(target=consumer_trial, args=(child, s, local_per[i]), daemon=True)
                th.start()
                self.threads.append(th)
            self.conns.append(conn)
        self._expect(len(self.conns), "ready")
        if self.error is None and transport.startswith("zmq-pub"):
            self._sync()

    # -- handshake

    def _expect(self, count, what, conns=None):
        conns = list(conns if conns is not None else self.conns)
        got = 0
        deadline = time.monotonic() + TRIAL_TIMEOUT_S
        while got < count:
            left = deadline - time.monotonic()
            ready = mp_wait(conns, timeout=max(left, 0))
            if not ready:
                self.error = f"{self.transport}: consumers did not say {what!r} in {TRIAL_TIMEOUT_S} s"
                return
            for c in ready:
                conns.remove(c)           # each consumer says each thing once (and may then hang up)
                got += 1
                try:
                    kind, payload = c.recv()
                except EOFError:
                    self.error = f"{self.transport}: a consumer hung up while the producer waited for {what!r}"
                    continue
                if kind == "error":
                    self.error = f"{self.transport}: consumer error: {payload}"
                elif kind == what:
                    if what == "done":
                        self.results.append(payload)
                else:
                    self.error = f"{self.transport}: unexpected {kind!r} while waiting for {what!r}"

    def _sync(self):
        pending = list(self.conns)
        deadline = time.monotonic() + TRIAL_TIMEOUT_S
        while pending and time.monotonic() < deadline:
            self._pub.send(SYNC)
            for c in mp_wait(pending, timeout=0.001):
                kind, payload = c.recv()
                if kind != "synced":
                    self.error = f"{self.transport}: sync failed: {kind} {payload}"
                    return
                pending.remove(c)
        if pending:
            self.error = f"{self.transport}: {len(pending)} subscribers never synced"

    # -- sending

    def run_throughput(self, arr: np.ndarray, batch: int) -> None:
        """Send n records in messages of `batch` records to every consumer, as fast as the transport
        takes them, cycling through `arr` (its length a power of two that batch divides)."""
        n = self.n
        length = len(arr)
        if length & (length - 1) or length % batch or n % batch:
            raise ValueError("the record array's length must be a power of two, and batch must divide it and n")
        self._length = length
        mask = length - 1
        sends = self._sends
        if self.transport == "mp-queue":
            if len(sends) == 1:
                put = sends[0]
                for i in range(0, n, batch):
                    j = i & mask
                    put(arr[j:j + batch].tobytes())
            else:
                for i in range(0, n, batch):
                    j = i & mask
                    b = arr[j:j + batch].tobytes()
                    for put in sends:
                        put(b)
        elif len(sends) == 1:
            send = sends[0]
            for i in range(0, n, batch):
                j = i & mask
                send(arr[j:j + batch])
        else:
            for i in range(0, n, batch):
                j = i & mask
                m = arr[j:j + batch]
                for send in sends:
                    send(m)

    def run_paced(self, arr: np.ndarray, interval_ns: int) -> None:
        """One record per message every interval_ns (never bursting to catch up), stamped right before
        the send with monotonic_time_ns() in ts_local."""
        if self.n > len(arr):
            raise ValueError("paced runs send each record of arr once: it needs n records")
        sends = self._sends
        to_bytes = self.transport == "mp-queue"
        sleep = time.sleep
        nxt = mono()
        for i in range(self.n):
            nxt += interval_ns
            rem = nxt - mono()
            if rem > 0:
                sleep(rem * 1e-9)
            else:
                nxt = mono()
            m = arr[i:i + 1]
            m["ts_local"] = mono()
            if to_bytes:
                m = m.tobytes()
            for send in sends:
                send(m)

    def collect(self) -> None:
        """Wait for every consumer's result and verify it (sets self.error on any mismatch)."""
        self._expect(len(self.conns), "done")
        want = expected_checksum(self.n, getattr(self, "_length", None))
        for i, r in enumerate(self.results):
            if r["count"] != self.n or r["checksum"] != want or r.get("lost", 0):
                self.error = (f"{self.transport}: consumer {i} got {r['count']:,} of {self.n:,} records "
                              f"(checksum {'ok' if r['checksum'] == want else 'WRONG'}, lost {r.get('lost', 0)})")
        if len(self.results) != self.k and self.error is None:
            self.error = f"{self.transport}: {len(self.results)} of {self.k} consumers reported"

    def close(self) -> None:
        for th in self.threads:
            th.join(5)
        for f in self._closers:
            try:
                f()
            except Exception:  # noqa: BLE001
                pass
        for c in self.conns:
            if self.transport not in PROCESS_TRANSPORTS:
                c.close()
