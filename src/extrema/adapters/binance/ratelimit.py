"""Binance rate limits: request-weight and order-count budgets per interval, 429 back-off and 418 bans.

https://developers.binance.com/docs/binance-spot-api-docs/rest-api/limits
https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info#limits

* exchangeInfo `rateLimits` lists the limiters: REQUEST_WEIGHT (per IP), ORDERS (per account), RAW_REQUESTS
  (per IP, spot), each `limit` per `intervalNum` x `interval`. Intervals are fixed windows on the server
  clock: "a 1 MINUTE interval starts every minute"; the count resets when the next one starts.
* Every response carries `X-MBX-USED-WEIGHT-(intervalNum)(intervalLetter)` (the IP's used weight in the
  current window) and order responses `X-MBX-ORDER-COUNT-(intervalNum)(intervalLetter)`.
* 429 (with `Retry-After` seconds) means back off; ignoring it leads to 418, an IP ban of `Retry-After`
  seconds. An order-count 429 comes without Retry-After: wait for the window to end.

The budget before a request is `confirmed + pending + cost <= limit`, where `confirmed` is the highest
count the server reported for this window (or what we counted when it reported nothing) and `pending` the
cost of requests sent and not yet answered. Near a window boundary a request is counted in both windows
it may land in (our server-clock estimate has an error margin). A request that would exceed a budget
waits for the next window instead of being sent; if that wait (or a 429 / 418 block) is longer than the
caller's deadline, the caller gets RateLimitError / IPBannedError at once, without a request being sent.
"""
from __future__ import annotations

import asyncio
import dataclasses
import re
import time
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple

from extrema._core.ratelimit import COST_ONE, COST_ORDERS, COST_WEIGHT, Budget, LimiterCore, Reservation, release

from .errors import IPBannedError, RateLimitError

__all__ = ["RateLimit", "RateLimiter", "Reservation", "parse_retry_after", "SPOT_DEFAULT_LIMITS",
           "USDM_DEFAULT_LIMITS", "REQUEST_WEIGHT", "ORDERS", "RAW_REQUESTS"]

REQUEST_WEIGHT = "REQUEST_WEIGHT"
ORDERS = "ORDERS"
RAW_REQUESTS = "RAW_REQUESTS"

_INTERVAL_MS = {"SECOND": 1_000, "MINUTE": 60_000, "HOUR": 3_600_000, "DAY": 86_400_000}
_LETTER = {"SECOND": "S", "MINUTE": "M", "HOUR": "H", "DAY": "D"}
_HEADER = re.compile(r"^x-mbx-(used-weight|order-count)-(\d+)([smhd])$", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """One limiter: `limit` of `kind` per `interval_num` x `interval` (SECOND / MINUTE / HOUR / DAY)."""
    kind: str
    interval: str
    interval_num: int
    limit: int

    @property
    def key(self) -> str:
        """The header suffix for this interval: '1M', '10S', '1D'."""
        return f"{self.interval_num}{_LETTER[self.interval]}"

    @property
    def interval_ms(self) -> int:
        return self.interval_num * _INTERVAL_MS[self.interval]

    @classmethod
    def from_exchange_info(cls, entry: Mapping) -> "RateLimit":
        return cls(entry["rateLimitType"], entry["interval"], int(entry["intervalNum"]), int(entry["limit"]))


# Documented defaults, replaced by exchangeInfo's own rateLimits as soon as it is fetched.
SPOT_DEFAULT_LIMITS = (
    RateLimit(REQUEST_WEIGHT, "MINUTE", 1, 6000),
    RateLimit(ORDERS, "SECOND", 10, 100),
    RateLimit(ORDERS, "DAY", 1, 200000),
    RateLimit(RAW_REQUESTS, "MINUTE", 5, 61000),
)
USDM_DEFAULT_LIMITS = (
    RateLimit(REQUEST_WEIGHT, "MINUTE", 1, 2400),
    RateLimit(ORDERS, "MINUTE", 1, 1200),
    RateLimit(ORDERS, "SECOND", 10, 300),
)


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Retry-After as seconds (Binance sends an integer; a fraction is accepted), None if absent or bad."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def _Budget(limit: RateLimit) -> Budget:
    """One limiter's counts per window (extrema._core.ratelimit.Budget: the interval, cap and cost kind as
    C integers). A request is counted in every window it may land in: the windows of (now - margin) and
    (now + margin), `margin` being the error allowed in our estimate of the server clock - so near a
    boundary a request must fit both windows, and no window is overrun whichever side of the boundary the
    server puts it."""
    cost_of = COST_WEIGHT if limit.kind == REQUEST_WEIGHT else COST_ORDERS if limit.kind == ORDERS else COST_ONE
    return Budget(limit, limit.interval_ms, limit.limit, cost_of, (limit.kind, limit.key),
                  (_HEADER_KIND.get(limit.kind), limit.key))


_HEADER_KIND = {REQUEST_WEIGHT: "USED-WEIGHT", ORDERS: "ORDER-COUNT"}


class RateLimiter(LimiterCore):
    """Weight / order budgets for one client (one IP, one account). Windows follow the server clock
    (`now_ms`: local clock + measured offset) with `window_margin_ms` of allowed error; 429 / 418 blocks
    follow the loop's monotonic clock.

    The per-request work is compiled (extrema._core.ratelimit: the budgets' window tables, try_acquire,
    the reservation and its release); the plain-Python reference model in tests/models replaces those and
    shares everything else."""

    _new_budget = staticmethod(_Budget)

    def __init__(self, limits: Iterable[RateLimit], now_ms: Callable[[], int], *, window_margin_ms: int = 100):
        # LimiterCore's: _budgets, window_margin_ms, in_flight, the 429 / 418 block times (loop time), _now_ms
        self._now_ms = now_ms
        self.window_margin_ms = int(window_margin_ms)
        self._budgets = []
        self.used: Dict[str, int] = {}          # last header values: {'USED-WEIGHT-1M': 12, 'ORDER-COUNT-10S': 1}
        self._reported: Dict[Tuple[str, str], Tuple[int, int]] = {}   # (what, key) -> (count, server ms)
        self._changed: Optional[asyncio.Event] = None   # set when a settle may have freed budget
        self.set_limits(limits)

    # --- configuration ---------------------------------------------------------------------------------

    def set_limits(self, limits: Iterable[RateLimit]) -> None:
        """Replace the limiters (e.g. with exchangeInfo's rateLimits), keeping the counts of intervals
        that stay."""
        old = {(b.limit.kind, b.limit.key): b for b in self._budgets}
        budgets = []
        for lim in limits:
            b = self._new_budget(lim)
            prev = old.get((lim.kind, lim.key))
            if prev is not None and prev.limit.interval_ms == lim.interval_ms:
                b.adopt(prev)
            else:
                # A new limiter (e.g. from exchangeInfo, whose own answer reported this interval): start
                # from what the server last said for it, so the requests already made still count.
                seen = self._reported.get((_HEADER_KIND.get(lim.kind), lim.key))
                if seen is not None:
                    count, at_ms = seen
                    for w in b.windows(at_ms, self.window_margin_ms):
                        b.set_confirmed(w, count)
            budgets.append(b)
        self._budgets = budgets
        self._wake()

    def set_limits_from_exchange_info(self, exchange_info: Mapping) -> None:
        entries = exchange_info.get("rateLimits") or ()
        limits = [RateLimit.from_exchange_info(e) for e in entries]
        if limits:
            self.set_limits(limits)

    @property
    def limits(self) -> Tuple[RateLimit, ...]:
        return tuple(b.limit for b in self._budgets)

    def usage(self) -> Dict[str, Tuple[int, int]]:
        """{'REQUEST_WEIGHT 1M': (used incl. pending, limit), ...} in the current window."""
        now = self._now_ms()
        return {f"{b.limit.kind} {b.limit.key}": (b.used(now // b.limit.interval_ms), b.limit.limit)
                for b in self._budgets}

    # --- before a request ------------------------------------------------------------------------------

    @staticmethod
    def _cost(b: _Budget, weight: int, orders: int) -> int:
        # REQUEST_WEIGHT: the weight, ORDERS: the order count, RAW_REQUESTS: every request counts once.
        cost_of = b.cost_of
        return weight if cost_of == COST_WEIGHT else orders if cost_of == COST_ORDERS else 1

    def _wait_s(self, weight: int, orders: int, loop_now: float) -> Tuple[float, Optional[type]]:
        """(seconds to wait, the exception class when the wait is a venue block)."""
        if self._banned_until > loop_now:
            return self._banned_until - loop_now, IPBannedError
        if self._blocked_until > loop_now:
            return self._blocked_until - loop_now, RateLimitError
        if orders and self._order_blocked_until > loop_now:
            return self._order_blocked_until - loop_now, RateLimitError
        now, margin = self._now_ms(), self.window_margin_ms
        worst = 0
        for b in self._budgets:
            wait = b.wait_ms(now, margin, self._cost(b, weight, orders))
            if wait > worst:
                worst = wait
        return worst / 1000.0, None

    async def acquire(self, weight: int, orders: int, *, deadline: float, endpoint: str) -> Reservation:
        """Wait until the request fits every budget and no block is active, then reserve its costs.
        `deadline` is on the loop clock; a wait that would pass it raises RateLimitError (IPBannedError
        during a ban) at once, with `retry_after` = the wait in seconds."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            wait, blocked_by = self._wait_s(weight, orders, now)
            if wait <= 0:
                break
            if now + wait > deadline:
                raise self._refusal(blocked_by, wait, endpoint, "after the caller's deadline")
            if blocked_by is not None:
                await asyncio.sleep(wait)       # a venue block: nothing ends it early
                continue
            if self._changed is None:
                self._changed = asyncio.Event()
            try:
                await asyncio.wait_for(self._changed.wait(), timeout=wait)
            except asyncio.TimeoutError:
                pass
        return self._reserve(weight, orders)

    # try_acquire(weight, orders, *, endpoint, now_ms=None) is LimiterCore's: the same rule as acquire()
    # (every window the request may land in must have room) without waiting, compiled because it runs inside
    # every WebSocket API order. It calls _check_blocks only while a 429 / 418 block is set.

    def _check_blocks(self, weight: int, orders: int, endpoint: str) -> None:
        wait, blocked_by = self._wait_s(weight, orders, time_monotonic_loop())
        if wait > 0:
            raise self._refusal(blocked_by, wait, endpoint)

    @staticmethod
    def _refusal(blocked_by: Optional[type], wait: float, endpoint: str, when: str = "not sent") -> RateLimitError:
        cls = blocked_by or RateLimitError
        why = ("the IP is banned (HTTP 418)" if cls is IPBannedError else
               "backing off after HTTP 429" if blocked_by else
               "the request would exceed the rate-limit budget")
        return cls(f"{endpoint}: {why}; free again in {wait:.3f} s; {when}", retry_after=wait,
                   endpoint=endpoint, status=418 if cls is IPBannedError else None)

    # --- after a request -------------------------------------------------------------------------------

    def settle(self, res: Reservation, headers: Optional[Mapping[str, str]], *, reached_server: bool) -> None:
        """Release a reservation: adopt the counts the response reported, or count the costs ourselves
        when the request may have reached the server and the response said nothing."""
        if res.settled:
            return
        res.settled = True
        self.in_flight -= 1
        reported = self.observe_headers(headers) if headers is not None else {}
        release(self._budgets, res, reported, reached_server)
        self._wake()

    def _wake(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    def observe_headers(self, headers: Mapping[str, str]) -> Dict[Tuple[str, str], int]:
        """Take the X-MBX-USED-WEIGHT-* / X-MBX-ORDER-COUNT-* values of a response into the budgets."""
        reported = {}
        for name, value in headers.items():
            m = _HEADER.match(name)
            if m is None:
                continue
            try:
                count = int(value)
            except ValueError:
                continue
            what = m.group(1).upper()
            key = f"{m.group(2)}{m.group(3).upper()}"
            reported[(what, key)] = count
            self.used[f"{what}-{key}"] = count
        if reported:
            now, margin = self._now_ms(), self.window_margin_ms
            for k, count in reported.items():
                self._reported[k] = (count, now)
            for b in self._budgets:
                count = reported.get((_HEADER_KIND.get(b.limit.kind), b.limit.key))
                if count is None:
                    continue
                # The count is the server's for its current window; near a boundary we cannot tell which,
                # so it raises both candidates (never lowers: a smaller number is an older answer).
                for w in b.windows(now, margin):
                    b.raise_confirmed(w, count)
        return reported

    def observe_rate_limits(self, entries) -> Dict[str, str]:
        """Take a WebSocket API `rateLimits` array ({rateLimitType, interval, intervalNum, limit, count})
        into the limiter: a limit that differs from (or is missing in) the configured ones replaces it,
        and the counts come back as the equivalent X-MBX-USED-WEIGHT-* / X-MBX-ORDER-COUNT-* headers for
        `settle` (https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/rate-limits).
        Malformed entries are skipped."""
        headers: Dict[str, str] = {}
        seen: List[RateLimit] = []
        for e in entries or ():
            if not isinstance(e, Mapping):
                continue
            kind, interval, num, count, limit = (e.get("rateLimitType"), e.get("interval"), e.get("intervalNum"),
                                                 e.get("count"), e.get("limit"))
            what = _HEADER_KIND.get(kind)
            if what is None or interval not in _LETTER or not isinstance(num, int) or not isinstance(count, int):
                continue
            headers[f"X-MBX-{what}-{num}{_LETTER[interval]}"] = str(count)
            if isinstance(limit, int) and limit > 0:
                seen.append(RateLimit(kind, interval, num, limit))
        if seen:
            current = {(b.limit.kind, b.limit.key): b.limit for b in self._budgets}
            if any(current.get((lim.kind, lim.key)) != lim for lim in seen):
                for lim in seen:
                    current[(lim.kind, lim.key)] = lim
                self.set_limits(current.values())
        return headers

    def on_429(self, retry_after: Optional[float], *, order_request: bool) -> float:
        """Block after a 429. With Retry-After everything waits that long; without it (an order-count
        limit, per the docs) order requests wait for the end of the shortest exhausted order window.
        Returns the block length in seconds."""
        now = asyncio.get_running_loop().time()
        if retry_after is not None:
            self._blocked_until = max(self._blocked_until, now + retry_after)
            return retry_after
        kind = ORDERS if order_request else REQUEST_WEIGHT
        now_ms, margin = self._now_ms(), self.window_margin_ms
        waits = []
        for b in self._budgets:
            if b.limit.kind != kind:
                continue
            w = (now_ms + margin) // b.limit.interval_ms
            if b.confirmed_at(w) >= b.limit.limit:
                waits.append(((w + 1) * b.limit.interval_ms + margin - now_ms) / 1000.0)
        if not waits:                         # no header said which window: the shortest one is full
            candidates = [b for b in self._budgets if b.limit.kind == kind]
            if candidates:
                b = min(candidates, key=lambda x: x.limit.interval_ms)
                w = (now_ms + margin) // b.limit.interval_ms
                b.raise_confirmed(w, b.limit.limit)
                waits.append(((w + 1) * b.limit.interval_ms + margin - now_ms) / 1000.0)
            else:
                waits.append(1.0)
        wait = min(waits)
        if order_request:
            self._order_blocked_until = max(self._order_blocked_until, now + wait)
        else:
            self._blocked_until = max(self._blocked_until, now + wait)
        return wait

    def on_418(self, retry_after: Optional[float]) -> float:
        """An IP ban: every request waits (or fails fast) until it ends. Without Retry-After, 2 minutes
        (the shortest ban the docs name)."""
        wait = 120.0 if retry_after is None else retry_after
        now = asyncio.get_running_loop().time()
        self._banned_until = max(self._banned_until, now + wait)
        return wait

    @property
    def banned_for(self) -> float:
        """Seconds left of a 418 ban (0 when none)."""
        return max(0.0, self._banned_until - time_monotonic_loop())

    @property
    def blocked_for(self) -> float:
        """Seconds left of a 429 back-off (0 when none)."""
        return max(0.0, self._blocked_until - time_monotonic_loop())

    @property
    def orders_blocked_for(self) -> float:
        """Seconds left of an order-count 429 hold on order requests (0 when none)."""
        return max(0.0, self._order_blocked_until - time_monotonic_loop())


def time_monotonic_loop() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()
