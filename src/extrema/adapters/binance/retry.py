"""One retry policy for Binance order requests, used by the REST client and by both order paths of the
execution client (REST and WebSocket API).

What may be sent again depends on what the failure says (errors.retry_class):

* RETRY - certainly not executed (never sent, 429 / 418, -1001 / -1008, USD-M 503 "Service Unavailable.",
  -1021): sent again after an exponential back-off with jitter, never sooner than the venue's Retry-After.
* QUERY - may have executed (timeout after sending, 5xx, -1006 / -1007, connection lost before the
  answer, reply never came): nothing is sent before the venue has been asked. A new order is looked up by
  its client order id (origClientOrderId); if the venue knows it, that is the outcome. If it does not,
  the lookup is repeated until the request can no longer arrive - Binance refuses a request whose
  timestamp is older than recvWindow when it reaches the matching engine
  (https://developers.binance.com/docs/binance-spot-api-docs/rest-api/endpoint-security-type,
  "Timing security") - and only then is the order sent again, under the same client order id, so even a
  request still in flight somewhere could not make a second order: the venue refuses a client id that is
  in use (-2010 "Duplicate order sent." / USD-M -4116). A cancel whose outcome is unknown is looked up
  the same way: an order the venue does not know, or no longer has open, needs no cancel.
* FINAL - the venue refused: raised to the caller.

    policy = RetryPolicy(attempts=4, base_delay=0.05, max_delay=2.0, jitter=0.5)
    how, data = await policy.place(send, query, now_ms=rest.now_ms, recv_window_ms=rest.recv_window_ms)
"""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Awaitable, Callable, Optional, Tuple

from .errors import (FINAL, QUERY, BinanceError, IPBannedError, OrderNotFoundError, OrderStatusUnknown,
                     RateLimitError, RetriesExhausted, retry_class)

__all__ = ["RetryPolicy", "SENT", "KNOWN", "GONE"]

log = logging.getLogger("extrema.adapters.binance.retry")

SENT = "sent"        # the request executed; `data` is the venue's answer
KNOWN = "known"      # the outcome was unknown and the venue's order query answered; `data` is that order
GONE = "gone"        # (cancel) the venue does not know the order or no longer has it open

_DONE_STATUSES = frozenset(("FILLED", "CANCELED", "REJECTED", "EXPIRED", "EXPIRED_IN_MATCH",
                            "FINISHED"))   # FINISHED: an algo order that triggered (USD-M algoStatus)


def order_is_done(order: dict) -> bool:
    """A REST order (or algo order) object in a final state."""
    return (order.get("status") or order.get("algoStatus")) in _DONE_STATUSES


class RetryPolicy:
    """attempts        sends of one request at most, the first one included
    base_delay       the first back-off (s); each next one doubles, up to `max_delay`
    jitter           the share of each back-off drawn at random (0: none, 1: full jitter) - clients that
                     failed together do not come back together
    max_wait         the longest venue-imposed wait (Retry-After of a 429 / 418) worth waiting; a longer
                     one gives up at once (an IP ban lasts minutes to days)
    settle_margin_ms added to recvWindow before a request the venue does not know is taken as never
                     arriving (clock offset error, the venue's own queueing)
    max_queries      lookups of one unknown outcome before giving up (the order stays unresolved for the
                     reconciliation after the next reconnect)"""

    def __init__(self, attempts: int = 4, base_delay: float = 0.05, max_delay: float = 2.0, jitter: float = 0.5,
                 *, max_wait: float = 30.0, settle_margin_ms: int = 250, max_queries: int = 30,
                 rng: Optional[random.Random] = None):
        if attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {attempts}")
        if base_delay < 0 or max_delay < base_delay:
            raise ValueError(f"need 0 <= base_delay <= max_delay, got {base_delay}, {max_delay}")
        if not 0.0 <= jitter <= 1.0:
            raise ValueError(f"jitter must be within [0, 1], got {jitter}")
        if max_queries < 1:
            raise ValueError("max_queries must be >= 1")
        self.attempts = int(attempts)
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self.jitter = float(jitter)
        self.max_wait = float(max_wait)
        self.settle_margin_ms = int(settle_margin_ms)
        self.max_queries = int(max_queries)
        self.rng = rng or random.Random()
        self.counters = {"retries": 0, "queries": 0, "resolved_by_query": 0, "resent_after_query": 0,
                         "gave_up": 0}

    def __repr__(self):
        return (f"RetryPolicy(attempts={self.attempts}, base_delay={self.base_delay}, max_delay={self.max_delay}, "
                f"jitter={self.jitter}, max_wait={self.max_wait})")

    def delay(self, attempt: int, error: Optional[BaseException] = None) -> Optional[float]:
        """Seconds to wait before send `attempt` + 1: base * 2**(attempt-1) capped at max_delay, of which
        the `jitter` share is drawn uniformly; never less than the venue's Retry-After. None when the
        venue asks for more than `max_wait`."""
        cap = min(self.max_delay, self.base_delay * (2 ** max(0, attempt - 1)))
        wait = cap * (1.0 - self.jitter) + self.rng.uniform(0.0, cap * self.jitter)
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            if error.retry_after > self.max_wait:
                return None
            wait = max(wait, error.retry_after)
        elif isinstance(error, IPBannedError):
            return None                      # banned, and for how long is not known
        return wait

    def allows(self, attempt: int, error: BaseException) -> Optional[float]:
        """The wait before another send after failed send `attempt`, or None when the policy says stop."""
        if attempt >= self.attempts:
            return None
        return self.delay(attempt, error)

    # ---- order requests ---------------------------------------------------------------------------

    async def place(self, send: Callable[[], Awaitable[Any]], query: Callable[[], Awaitable[dict]], *,
                    now_ms: Callable[[], int], recv_window_ms: int,
                    error: Optional[BaseException] = None) -> Tuple[str, Any]:
        """Place one order: `send()` sends it (the same client order id every time) and returns the
        venue's answer; `query()` looks it up by that id. `error` is the failure of a first send already
        made by the caller (the WebSocket API path sends inside the strategy's hook).

        Returns (SENT, answer) or (KNOWN, order from the query). Raises the venue's refusal (FINAL),
        RetriesExhausted when no send executed, OrderStatusUnknown when the venue could not be asked."""
        async def after(error):
            kind = retry_class(error)
            if kind == FINAL:
                raise error
            if kind == QUERY:
                known = await self.settle(query, now_ms=now_ms, window_ms=recv_window_ms, error=error)
                if known is not None:
                    self.counters["resolved_by_query"] += 1
                    return KNOWN, known
                # The venue does not know it and it can no longer arrive: it never executed.
                self.counters["resent_after_query"] += 1
            return None
        return await self._sends(send, error, after, "order")

    async def cancel(self, send: Callable[[], Awaitable[Any]], query: Callable[[], Awaitable[dict]], *,
                     error: Optional[BaseException] = None) -> Tuple[str, Any]:
        """Cancel one order: `send()` sends the cancel, `query()` looks the order up.

        Returns (SENT, answer), (KNOWN, order) when a lookup found it finished, or (GONE, None) when the
        venue does not know the order or no longer has it open (-2011 / -2013: nothing left to cancel).
        Raises the venue's refusal (FINAL), RetriesExhausted, or OrderStatusUnknown."""
        async def after(error):
            if isinstance(error, OrderNotFoundError):
                return GONE, None
            kind = retry_class(error)
            if kind == FINAL:
                raise error
            if kind == QUERY:
                known = await self.settle(query, now_ms=None, window_ms=0, error=error)
                if known is None:
                    return GONE, None
                if order_is_done(known):
                    self.counters["resolved_by_query"] += 1
                    return KNOWN, known
                # Still open: the cancel did not (yet) execute. Sending it again is harmless - a cancel of
                # an order already cancelled is answered -2011, which ends here as GONE.
                self.counters["resent_after_query"] += 1
            return None
        return await self._sends(send, error, after, "cancel")

    async def _sends(self, send, error, after, what: str) -> Tuple[str, Any]:
        """Send until an answer: `after(error)` says what a failure means - an outcome to return, None to
        send again after the back-off - or raises."""
        attempt = 1
        while True:
            if error is None:
                try:
                    return SENT, await send()
                except BinanceError as exc:
                    error = exc
            outcome = await after(error)
            if outcome is not None:
                return outcome
            await self._back_off(attempt, error, what)
            attempt += 1
            error = None

    async def _back_off(self, attempt: int, error: BaseException, what: str) -> None:
        """Wait before send `attempt` + 1 of a request that did not execute, or raise RetriesExhausted."""
        wait = self.allows(attempt, error)
        if wait is None:
            self.counters["gave_up"] += 1
            raise RetriesExhausted(f"{what} not executed after {attempt} send(s): {error}", last=error) from error
        log.info("%s request: send %d failed (%s); again in %.3f s", what, attempt, error, wait)
        self.counters["retries"] += 1
        await asyncio.sleep(wait)

    async def settle(self, query: Callable[[], Awaitable[dict]], *, now_ms: Optional[Callable[[], int]],
                     window_ms: int, error: Optional[BaseException] = None) -> Optional[dict]:
        """The venue's record of an order whose request may have executed: `query()` until it answers.
        Not found: looked up again until `window_ms` (+ the margin) after now has passed on the venue's
        clock (`now_ms`) - a request cannot execute later than that - then None. Transient lookup
        failures are retried with the back-off; raises OrderStatusUnknown after `max_queries`."""
        give_up_ms = now_ms() + window_ms + self.settle_margin_ms if now_ms is not None else None
        last: Optional[BaseException] = error
        for n in range(1, self.max_queries + 1):
            self.counters["queries"] += 1
            try:
                return await query()
            except OrderNotFoundError as exc:
                last = exc
                left_ms = give_up_ms - now_ms() if give_up_ms is not None else 0
                if left_ms <= 0:
                    return None
                # Ask again soon, and once more right after the window has closed.
                wait = min(self.delay(n), left_ms / 1000.0 + 0.001)
            except BinanceError as exc:
                last = exc
                if retry_class(exc) == FINAL:
                    log.warning("order lookup refused (%s); asking again", exc)
                wait = self.delay(n, exc)
                if wait is None:
                    break
            await asyncio.sleep(wait)
        self.counters["gave_up"] += 1
        raise OrderStatusUnknown(f"outcome still unknown after {self.max_queries} lookups (last: {last})",
                                 client_order_id=getattr(error, "client_order_id", "") or "",
                                 operation=getattr(error, "operation", "") or "",
                                 symbol=getattr(error, "symbol", None))
