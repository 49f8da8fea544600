"""Reference model (plain Python) of what extrema._core.ratelimit compiles: the per-window budgets (over
dicts), the per-request reservation and its release, as they were before they moved into compiled code.
The rest of the limiter (configuration, header reports, 429 / 418 blocks, waiting) is the production
RateLimiter's own, shared by subclassing; tests/adapters/test_binance_ratelimit_compiled.py drives both with the same
requests, answers and clocks and compares them.
(The rules and their sources: the production module's docstring, extrema/adapters/binance/ratelimit.py.)
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from extrema.adapters.binance import ratelimit as production
from extrema.adapters.binance.ratelimit import (  # noqa: F401  (the model's public names, as production's)
    ORDERS, RAW_REQUESTS, REQUEST_WEIGHT, SPOT_DEFAULT_LIMITS, USDM_DEFAULT_LIMITS, RateLimit, parse_retry_after,
    time_monotonic_loop)

_COST_WEIGHT, _COST_ORDERS, _COST_ONE = 0, 1, 2
_HEADER_KIND = {REQUEST_WEIGHT: "USED-WEIGHT", ORDERS: "ORDER-COUNT"}


class _Budget:
    """One limiter's counts per window. A request is counted in every window it may land in: the windows
    of (now - margin) and (now + margin), `margin` being the error allowed in our estimate of the server
    clock - so near a boundary a request must fit both windows, and no window is overrun whichever side
    of the boundary the server puts it."""
    # The limit's fields are copied into slots: this runs on every request, and the WebSocket API order
    # path (ws_api.py) counts every microsecond of it.
    __slots__ = ("limit", "confirmed", "pending", "step", "cap", "cost_of", "ident", "header_ident", "pruned")

    def __init__(self, limit: RateLimit):
        self.limit = limit
        self.step = limit.interval_ms
        self.cap = limit.limit
        self.cost_of = _COST_WEIGHT if limit.kind == REQUEST_WEIGHT else _COST_ORDERS if limit.kind == ORDERS \
            else _COST_ONE
        self.ident = (limit.kind, limit.key)
        self.header_ident = (_HEADER_KIND.get(limit.kind), limit.key)
        self.pruned = None                      # the oldest live window at the last prune
        self.confirmed: Dict[int, int] = {}     # window -> highest count the server reported / we counted
        self.pending: Dict[int, int] = {}       # window -> cost of requests sent and not answered

    def windows(self, now_ms: int, margin_ms: int) -> Tuple[int, ...]:
        step = self.step
        first, last = (now_ms - margin_ms) // step, (now_ms + margin_ms) // step
        return (first,) if first == last else (first, last)

    def prune(self, now_ms: int, margin_ms: int) -> None:
        oldest = (now_ms - margin_ms) // self.step
        if oldest == self.pruned:
            return                              # nothing has aged out since the last prune
        self.pruned = oldest
        for d in (self.confirmed, self.pending):
            for w in [w for w in d if w < oldest]:
                if d is self.pending and d[w] > 0:
                    continue                    # still in flight: kept until settled
                del d[w]

    def used(self, window: int) -> int:
        return self.confirmed.get(window, 0) + self.pending.get(window, 0)

    def confirmed_at(self, window: int) -> int:
        return self.confirmed.get(window, 0)

    def set_confirmed(self, window: int, count: int) -> None:
        self.confirmed[window] = count

    def raise_confirmed(self, window: int, count: int) -> None:
        self.confirmed[window] = max(self.confirmed.get(window, 0), count)

    def adopt(self, other: "_Budget") -> None:
        self.confirmed, self.pending = dict(other.confirmed), dict(other.pending)

    def wait_ms(self, now_ms: int, margin_ms: int, cost: int) -> int:
        """How long until `cost` fits (0 = now). A cost above the whole limit is let through into an
        empty window rather than held forever."""
        if cost <= 0:
            return 0
        self.prune(now_ms, margin_ms)
        wait = 0
        step, cap, confirmed, pending = self.step, self.cap, self.confirmed, self.pending
        first, last = (now_ms - margin_ms) // step, (now_ms + margin_ms) // step
        for w in ((first,) if first == last else (first, last)):
            used = confirmed.get(w, 0) + pending.get(w, 0)
            if used + cost <= cap or (used == 0 and cost > cap):
                continue
            # Window w stops mattering once (now - margin) is past its end; a settle may free it sooner.
            wait = max(wait, (w + 1) * step + margin_ms - now_ms)
        return wait


class Reservation:
    """Costs taken from the budgets for one request; released by RateLimiter.settle. (A slotted class, not
    a dataclass: one is made per order on the WebSocket API order path, where a dataclass with a
    default_factory costs about a microsecond.)"""
    __slots__ = ("weight", "orders", "windows", "settled")

    def __init__(self, weight: int, orders: int, windows=None, settled: bool = False):
        self.weight = weight
        self.orders = orders
        self.windows: Dict[Tuple[str, str], Tuple[int, Tuple[int, ...]]] = {} if windows is None else windows
        self.settled = settled

    def __repr__(self):
        return (f"Reservation(weight={self.weight}, orders={self.orders}, windows={self.windows}, "
                f"settled={self.settled})")


class RateLimiter(production.RateLimiter):
    """The production limiter with the Python budgets and reservation above."""

    _new_budget = staticmethod(_Budget)

    def try_acquire(self, weight: int, orders: int, *, endpoint: str, now_ms: Optional[int] = None) -> Reservation:
        """Reserve the costs now, without waiting: for callers that must send at once or not at all (the
        WebSocket API order path). Raises RateLimitError (IPBannedError during a ban) with `retry_after`
        when the request does not fit a budget now or a 429 / 418 block is active.

        The same rule as acquire() (every window the request may land in must have room), written as one
        pass over the budgets because it runs inside the order path. `now_ms`: the server
        clock estimate when the caller already has it (the request's timestamp)."""
        if self._banned_until or self._blocked_until or (orders and self._order_blocked_until):
            wait, blocked_by = self._wait_s(weight, orders, time_monotonic_loop())
            if wait > 0:
                raise self._refusal(blocked_by, wait, endpoint)
        now = self._now_ms() if now_ms is None else now_ms
        margin = self.window_margin_ms
        lo, hi = now - margin, now + margin
        plan = []
        worst = 0
        for b in self._budgets:
            cost_of = b.cost_of
            cost = weight if cost_of == _COST_WEIGHT else orders if cost_of == _COST_ORDERS else 1
            if cost <= 0:
                continue
            step = b.step
            first = lo // step
            if first != b.pruned:
                b.prune(now, margin)
            windows = (first,) if first == hi // step else (first, hi // step)
            for w in windows:
                used = b.confirmed.get(w, 0) + b.pending.get(w, 0)
                # over the cap, unless the window is empty (a cost above the whole limit is let through)
                if used + cost > b.cap and used:
                    wait = (w + 1) * step + margin - now
                    if wait > worst:
                        worst = wait
            plan.append((b, cost, windows))
        if worst > 0:
            raise self._refusal(None, worst / 1000.0, endpoint)
        reserved = {}
        res = Reservation(weight, orders, reserved)
        self.in_flight += 1
        for b, cost, windows in plan:
            pending = b.pending
            for w in windows:
                pending[w] = pending.get(w, 0) + cost
            reserved[b.ident] = (cost, windows)
        return res

    def _reserve(self, weight: int, orders: int) -> Reservation:
        res = Reservation(weight, orders)
        self.in_flight += 1
        now, margin = self._now_ms(), self.window_margin_ms
        for b in self._budgets:
            cost = self._cost(b, weight, orders)
            if cost:
                windows = b.windows(now, margin)
                pending = b.pending
                for w in windows:
                    pending[w] = pending.get(w, 0) + cost
                res.windows[b.ident] = (cost, windows)
        return res

    def settle(self, res: Reservation, headers, *, reached_server: bool) -> None:
        if res.settled:
            return
        res.settled = True
        self.in_flight -= 1
        reported = self.observe_headers(headers) if headers is not None else {}
        for b in self._budgets:
            entry = res.windows.get(b.ident)
            if entry is None:
                continue
            cost, windows = entry
            for w in windows:
                left = b.pending.get(w, 0) - cost
                if left > 0:
                    b.pending[w] = left
                else:
                    b.pending.pop(w, None)
                if reached_server and b.header_ident not in reported:
                    b.confirmed[w] = b.confirmed.get(w, 0) + cost
        self._wake()
