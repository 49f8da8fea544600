"""Warm-up: the busy-poll loop takes the hot path through its steps between events, without effect.

Why: on a shared cloud machine (like the 2-vCPU machines extrema is benchmarked on) the host evicts a
core's caches within a millisecond or so even while the engine thread spins: a 19 KB working set that a
spinning thread reads at ~1 ns a line right after its last use costs several times that 1 ms later and
30-100x 3-10 ms later (`python benches/run.py machine`, a C pointer chase). A tick that arrives after a
quiet spell then runs its decode, conversions, order encoding and the kernel's socket write from memory,
several times slower than one that follows another by a few hundred µs. So while the loop has nothing to
do, it calls each part's warm():

- a market-data source decodes its last frame again (BinanceDecoder.rehearse: counters and `info` as they
  were);
- an execution client goes through its last order without sending it (readiness, clock, rate-limit
  windows, the request encoded and signed again into the same bytes: WsApiOrderSink.warm);
- each strategy context converts its last order's quantity and price again (ContextCore.warm);
- SocketPathWarmer writes a few hundred bytes through a private TCP connection on 127.0.0.1 (both ends
  are this engine's; nothing leaves the machine), so the kernel's TCP send and receive code stays cached.

A warm() changes nothing anyone can observe (tests/adapters/test_warm_up.py). The Python strategy's own code,
the dispatch and the venue socket itself are not rehearsed: they run only for real events.
"""
from __future__ import annotations

import logging
import socket
import time

log = logging.getLogger("extrema.engine")


class SocketPathWarmer:
    """Every `interval_us`, `size` bytes through a private loopback TCP connection, read back at once."""

    def __init__(self, interval_us: int = 50, size: int = 400):
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            self._out = socket.create_connection(listener.getsockname())
            self._in, _ = listener.accept()
        finally:
            listener.close()
        # as the venue connections are: no Nagle delay, never blocking
        self._out.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._out.setblocking(False)
        self._in.setblocking(False)
        self._payload = b"w" * size
        self._inbox = bytearray(65536)          # read into, so a turn allocates nothing
        self._interval_ns = interval_us * 1000
        self._next_ns = 0

    def __call__(self) -> None:
        now = time.perf_counter_ns()
        if now < self._next_ns:
            return
        self._next_ns = now + self._interval_ns
        try:
            self._out.send(self._payload)
            self._in.recv_into(self._inbox)
        except BlockingIOError:
            pass                     # the bytes are on their way; the next call reads them

    def close(self) -> None:
        self._out.close()
        self._in.close()


class WarmUp:
    """The warm-ups of an engine's parts, called from its busy-poll loop: the warm() of every source,
    execution client and strategy context that has one, and a SocketPathWarmer. A warm-up that raises is
    logged and left out from then on (the busy poll goes on)."""

    def __init__(self, parts, socket_path: bool = True):
        unique = {id(p): p for p in parts if p is not None}.values()
        self._warmers = [w for w in (getattr(p, "warm", None) for p in unique) if callable(w)]
        self._socket = SocketPathWarmer() if socket_path else None
        if self._socket is not None:
            self._warmers.append(self._socket)

    def __call__(self) -> None:
        for warm in self._warmers:
            try:
                warm()
            except Exception:
                log.exception("warm-up %r failed; it is left out from now on", warm)
                self._warmers = [w for w in self._warmers if w is not warm]
                return

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
