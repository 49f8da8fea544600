"""One logical websocket stream that stays up: picows connection, reconnect, watchdog, send budget.

Every venue adapter keeps its streams open through `WsSession`; what differs per venue (URL, the
subscribe message, the decoder, the venue's limits) is passed in. What a session does:

* connects with picows (`ws_connect`), answers the server's pings (picows' auto-pong) and pings the
  server itself when the stream is idle, so a half-open TCP connection is noticed;
* hands every complete message to `on_message(payload, ts_local_us)` on the event loop thread, with
  the local receive time taken before anything else is done with the frame. Fragmented messages
  (FIN = 0 + CONTINUATION frames) are reassembled; the payload is a `memoryview` valid only during the
  call (the picows buffer is reused), so consumers decode it at once or copy it. `on_message` may also
  be a compiled consumer (extrema._core.wsframes.MessageSink), which gets the bytes without a Python
  call; frames go through the compiled FrameListener either way;
* reconnects after any disconnect with exponential backoff and full jitter
  (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/), resetting the backoff
  once a connection has stayed up for `stable_after` seconds, and calls `on_connect` again so the
  adapter resubscribes and resynchronises its books;
* closes and reopens a connection before the venue's maximum connection age (Binance cuts every
  connection at 24 h) — a planned reconnect, counted separately;
* drops a connection on which nothing has arrived for `stale_after` seconds (the stale-stream watchdog);
* paces outgoing messages through a token bucket (Binance: 5 incoming messages per second per
  connection on spot, 10 on USD-M; exceeding it gets the connection closed), so a burst of
  subscriptions is spread out instead of getting the session disconnected.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Optional

import picows

from extrema._core.clock import time_us
from extrema._core.wsframes import FrameListener, SessionStats

log = logging.getLogger("extrema.adapters.ws")


@dataclass
class Backoff:
    """Exponential backoff with full jitter: the n-th wait is uniform in [0, min(cap, base * 2**n)]."""
    base: float = 0.25
    cap: float = 30.0
    attempt: int = 0
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** self.attempt))
        self.attempt += 1
        return self.rng.uniform(0.0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; `acquire` waits for a token."""

    def __init__(self, rate: float, burst: Optional[float] = None):
        if rate <= 0:
            raise ValueError(f"rate must be > 0 tokens per second, got {rate}")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        self._tokens = self.burst
        self._stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def delay_for(self, tokens: float = 1.0) -> float:
        """Seconds until `tokens` are available (0 when they are now)."""
        self._refill()
        missing = tokens - self._tokens
        return 0.0 if missing <= 0 else missing / self.rate

    async def acquire(self, tokens: float = 1.0) -> None:
        while True:
            wait = self.delay_for(tokens)
            if wait <= 0:
                self._tokens -= tokens
                return
            await asyncio.sleep(wait)


class WsSession:
    """A websocket stream that reconnects until `stop()`; see the module doc.

    `url` is a string or a function returning one (called at every connect: the set of streams may
    have changed). `on_connect(session)` runs after each successful handshake (send subscriptions,
    start a book resync); `on_disconnect(session, reason)` after each loss.
    """

    def __init__(self, url, on_message: Callable[[memoryview, int], None], *,
                 on_connect: Optional[Callable[["WsSession"], Awaitable[None] | None]] = None,
                 on_disconnect: Optional[Callable[["WsSession", str], None]] = None,
                 name: str = "ws", max_age: float = 23.5 * 3600, stale_after: float = 30.0,
                 send_rate: float = 5.0, send_burst: Optional[float] = None,
                 backoff: Optional[Backoff] = None, stable_after: float = 10.0,
                 ping_idle: float = 10.0, ping_reply_timeout: float = 10.0,
                 max_message_size: int = 16 * 1024 * 1024, handshake_timeout: float = 10.0):
        self._url = url
        self.on_message = on_message
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.name = name
        self.max_age = max_age
        self.stale_after = stale_after
        self.send_budget = TokenBucket(send_rate, send_burst)
        self.backoff = backoff or Backoff()
        self.stable_after = stable_after
        self.ping_idle = ping_idle
        self.ping_reply_timeout = ping_reply_timeout
        self.max_message_size = max_message_size
        self.handshake_timeout = handshake_timeout
        self.stats = SessionStats()
        self.close_reason = ""
        self._listener: Optional[FrameListener] = None
        self._stopping = False
        self._connected = asyncio.Event()
        self._wake = asyncio.Event()     # set by stop() / reconnect() to cut a wait short
        self._reconnect_reason: Optional[str] = None

    # ---- state ----------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self._url() if callable(self._url) else self._url

    @property
    def listener(self) -> Optional[FrameListener]:
        """The live connection's listener (its transport and frame stamps), None between connections."""
        return self._listener

    @property
    def connected(self) -> bool:
        return self._listener is not None and self._listener.transport is not None

    async def wait_connected(self, timeout: Optional[float] = None) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    # ---- sending --------------------------------------------------------------------------------------

    async def send_text(self, text: str | bytes) -> None:
        """Send one text message, paced by the send budget. Raises ConnectionError when not connected."""
        await self.send_budget.acquire()
        listener = self._listener
        if listener is None or listener.transport is None:
            raise ConnectionError(f"{self.name}: not connected")
        data = text.encode() if isinstance(text, str) else text
        listener.transport.send(picows.WSMsgType.TEXT, data)
        self.stats.sent += 1

    def send_now(self, data: bytes) -> None:
        """Write one text message now, in the caller, without the send budget: for request/response APIs
        whose limits are counted per request by the venue (Binance WebSocket API), where a message that
        cannot go out at once must fail rather than wait. When this returns the frame is in the transport
        (handed to the kernel unless the socket's buffer was full). Raises ConnectionError when not connected."""
        listener = self._listener
        if listener is None or listener.transport is None:
            raise ConnectionError(f"{self.name}: not connected")
        listener.transport.send(picows.WSMsgType.TEXT, data)
        self.stats.sent += 1

    # ---- control --------------------------------------------------------------------------------------

    def reconnect(self, reason: str) -> None:
        """Drop the current connection now; `run` reconnects (after no backoff wait)."""
        self._reconnect_reason = reason
        self._disconnect()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self._disconnect()

    def _disconnect(self) -> None:
        listener = self._listener
        if listener is not None and listener.transport is not None:
            listener.transport.disconnect()

    # ---- frames ---------------------------------------------------------------------------------------

    # ---- the loop -------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the stream connected until stop(). Returns when stopped."""
        while not self._stopping:
            url = self.url
            try:
                transport, listener = await picows.ws_connect(
                    lambda: FrameListener(self), url,
                    websocket_handshake_timeout=self.handshake_timeout,
                    enable_auto_ping=True, auto_ping_idle_timeout=self.ping_idle,
                    auto_ping_reply_timeout=self.ping_reply_timeout,
                    max_frame_size=self.max_message_size,
                    logger_name=f"extrema.{self.name}")
            except asyncio.CancelledError:
                raise
            except Exception as exc:       # refused, reset, handshake timeout, HTTP error on upgrade
                self.stats.connect_failures += 1
                delay = self.backoff.next_delay()
                log.warning("%s: connect to %s failed (%s: %s); retrying in %.2f s",
                            self.name, url, type(exc).__name__, exc, delay)
                await self._sleep(delay)
                continue
            await self._serve(transport, listener)
            if self._stopping:
                break
            if self._reconnect_reason is not None:
                self._reconnect_reason = None       # asked for: reconnect at once
                continue
            await self._sleep(self.backoff.next_delay())

    async def _serve(self, transport, listener) -> None:
        self._listener = listener
        self.stats.connects += 1
        self.close_reason = ""
        started = time.monotonic()
        self.stats.last_message_us = time_us()
        self._connected.set()
        log.info("%s: connected to %s", self.name, transport.request.path if transport.request else "")
        reason = "closed by the server"
        try:
            if self.on_connect is not None:
                result = self.on_connect(self)
                if asyncio.iscoroutine(result):
                    await result
            reason = await self._watch(transport, started)
        except asyncio.CancelledError:
            transport.disconnect()
            raise
        except Exception as exc:
            reason = f"on_connect failed: {type(exc).__name__}: {exc}"
            log.exception("%s: %s", self.name, reason)
            transport.disconnect()
        finally:
            self._listener = None
            self._connected.clear()
            self.stats.disconnects += 1
        if time.monotonic() - started >= self.stable_after:
            self.backoff.reset()
        if self._reconnect_reason is not None:
            reason = self._reconnect_reason
        elif self.close_reason:
            reason = f"{reason}: {self.close_reason}"
        if not self._stopping:
            log.warning("%s: disconnected (%s)", self.name, reason)
        if self.on_disconnect is not None:
            self.on_disconnect(self, reason)

    async def _watch(self, transport, started: float) -> str:
        """Wait for the connection to end; end it ourselves when stale or too old. Returns why it ended."""
        check = max(0.05, min(1.0, self.stale_after / 4))
        # Silence is measured on the monotonic clock from the message counter, not from the messages'
        # wall-clock stamps: a wall-clock step (NTP, a VM resuming) backwards would blind the watchdog for
        # the step's length, and one forwards would drop a healthy stream.
        seen = self.stats.messages
        quiet_since = time.monotonic()
        while True:
            try:
                await asyncio.wait_for(asyncio.shield(transport.wait_disconnected()), check)
                return "stopped" if self._stopping else "closed by the server"
            except asyncio.TimeoutError:
                pass
            if self._stopping:
                transport.disconnect()
                return "stopped"
            if time.monotonic() - started >= self.max_age:
                self.stats.age_rotations += 1
                self._reconnect_reason = f"planned reconnect before the {self.max_age:.0f} s connection limit"
                transport.disconnect()
                return self._reconnect_reason
            now = time.monotonic()
            if self.stats.messages != seen:
                seen, quiet_since = self.stats.messages, now
            silent = now - quiet_since
            if silent >= self.stale_after:
                self.stats.stale_drops += 1
                self._reconnect_reason = f"stale: nothing received for {silent:.1f} s"
                transport.disconnect()
                return self._reconnect_reason

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass
