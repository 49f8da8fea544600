"""Order requests under transient faults, end to end over real sockets (engine <-> simulator), on both order
paths (REST and WebSocket API): a 5xx (with and without the request executed), a reply that never comes
(dropped), a reply later than the client's timeout, a 429. Under each, the order reaches the simulator's
matching engine exactly once, the strategy hears exactly one outcome, and a 429 is waited out. An order of the
compiled fast path sent while the WebSocket API is down is sent again under the policy, once.

Plus the retry policy itself: which errors allow what, and its back-off."""
import random

import pytest

from extrema import OrderStatus
from extrema.adapters.binance.errors import (FINAL, QUERY, RETRY, BinanceConnectionError, ExecutionStatusUnknown,
                                             FilterError, IPBannedError, OrderStatusUnknown, RateLimitError,
                                             ServerBusyError, UnknownOrderError, error_from_response, retry_class)
from extrema.adapters.binance.retry import RetryPolicy
from extrema.sim import BinanceSimulator, Faults, GeneratedMarket

from test_binance_e2e import start_engine, tradable
from waiting import wait_for

TERMINAL = {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
TIMEOUT_S = 1.0          # the client's request timeout (REST and WebSocket API)
RECV_WINDOW_MS = 1000    # how long an unknown request might still arrive


@pytest.fixture(params=["spot", "usdm"])
def sim(request):
    s = BinanceSimulator(market=request.param, source=GeneratedMarket(seed=11, symbols=["BTCUSDT"], speed=5.0),
                         faults=Faults())
    s.start_in_thread()
    yield s
    s.stop_thread()


def order_path(sim):
    return "/api/v3/order" if sim.market == "spot" else "/fapi/v1/order"


def start(sim, entry):
    engine, venue, watcher, inst = start_engine(sim, {
        "order_entry": entry, "rest_options": {"request_timeout": TIMEOUT_S, "recv_window_ms": RECV_WINDOW_MS}})
    ex = venue.execution
    wait_for(lambda: watcher.book_updates >= 3 and ex.ready, what="the book and the order path")
    return engine, ex, watcher, inst


def arm(sim, fault, endpoint, executes=False):
    def go():
        sim.faults.fault_endpoints = (endpoint,)
        sim.faults.http_5xx_executes = executes
        sim.faults.slow_reply_ms = 1500.0          # beyond the client's timeout
        sim.faults.inject(fault)
    sim.call(go)


def venue_orders(sim, text):
    """Every order the matching engine ever took under this client order id."""
    return sim.call(lambda: [o for o in sim.engine.orders.values() if o.client_id == text])


def outcomes(watcher, coid):
    with watcher.lock:
        return [s for c, s, _ in watcher.orders if c == coid and s in TERMINAL]


FAULTS = [("http_5xx", False), ("http_5xx", True), ("drop_reply", False), ("slow_reply", False)]


@pytest.mark.parametrize("entry", ["rest", "ws_api"])
@pytest.mark.parametrize("fault,executes", FAULTS, ids=["5xx-not-served", "5xx-served", "dropped", "late"])
def test_new_order_under_fault_reaches_the_venue_once(sim, entry, fault, executes):
    engine, ex, watcher, inst = start(sim, entry)
    ids = []
    try:
        arm(sim, fault, f"POST {order_path(sim)}", executes)
        watcher.do(lambda ctx, book: ids.append(ctx.submit(inst, "buy", *tradable(inst, book.book.best_ask * 1.02))))
        wait_for(lambda: ids and engine.orders.status(ids[0]) in TERMINAL, what="the order's outcome",
                 detail=lambda: f": {ex.counters} {ex.retry.counters} {ex.rejections}")
        wait_for(lambda: outcomes(watcher, ids[0]), what="the strategy to hear it")
        # The venue did not have it: looked up, then sent again once; it had it: found by the lookup.
        settled = "resent_after_query" if fault == "http_5xx" and not executes else "resolved_by_query"
        wait_for(lambda: ex.retry.counters[settled] >= 1, what=f"the unknown outcome settled ({settled})",
                 detail=lambda: f": {ex.retry.counters}")
        text = ex.order_ids.text(ids[0])
        assert sim.faults.counters[fault] == 1
    finally:
        engine.stop()
    orders = venue_orders(sim, text)
    assert len(orders) == 1, orders                     # never a second order
    assert orders[0].status == "FILLED"
    assert outcomes(watcher, ids[0]) == [OrderStatus.FILLED]
    assert engine.orders.status(ids[0]) == OrderStatus.FILLED
    assert ex.counters["unknown_outcomes"] == 1 and ex.counters["unresolved"] == 0
    assert ex.retry.counters["resent_after_query"] + ex.retry.counters["resolved_by_query"] == 1


@pytest.mark.parametrize("entry", ["rest", "ws_api"])
@pytest.mark.parametrize("fault,executes", [("http_5xx", False), ("drop_reply", False)], ids=["5xx-not-served", "dropped"])
def test_cancel_under_fault_cancels_once(sim, entry, fault, executes):
    engine, ex, watcher, inst = start(sim, entry)
    ids = []
    try:
        watcher.do(lambda ctx, book: ids.append(ctx.submit(inst, "buy", *tradable(inst, book.book.best_bid * 0.97))))
        wait_for(lambda: ids and engine.orders.status(ids[0]) == OrderStatus.ACCEPTED, what="the resting order")
        arm(sim, fault, f"DELETE {order_path(sim)}", executes)
        watcher.do(lambda ctx, book: ctx.cancel(ids[0]))
        wait_for(lambda: engine.orders.status(ids[0]) in TERMINAL, what="the cancel",
                 detail=lambda: f": {ex.counters} {ex.retry.counters}")
        wait_for(lambda: outcomes(watcher, ids[0]), what="the strategy to hear it")
        wait_for(lambda: ex.counters["unknown_outcomes"] >= 1 and ex.retry.counters["queries"] >= 1,
                 what="the cancel's unknown outcome looked up")
        text = ex.order_ids.text(ids[0])
        assert sim.faults.counters[fault] == 1
    finally:
        engine.stop()
    orders = venue_orders(sim, text)
    assert len(orders) == 1 and orders[0].status == "CANCELED"
    assert outcomes(watcher, ids[0]) == [OrderStatus.CANCELLED]
    assert ex.counters["unresolved"] == 0


@pytest.mark.parametrize("entry", ["rest", "ws_api"])
def test_a_429_is_waited_out_then_the_order_goes_once(sim, entry):
    engine, ex, watcher, inst = start(sim, entry)
    ids = []
    try:
        arm(sim, "http_429", f"POST {order_path(sim)}")
        watcher.do(lambda ctx, book: ids.append(ctx.submit(inst, "buy", *tradable(inst, book.book.best_ask * 1.02))))
        wait_for(lambda: ids and engine.orders.status(ids[0]) in TERMINAL, what="the order's outcome",
                 detail=lambda: f": {ex.counters} {ex.retry.counters} {ex.rejections}")
        text = ex.order_ids.text(ids[0])
    finally:
        engine.stop()
    (refused_at, fault, _), = list(sim.faults.request_log)
    orders = venue_orders(sim, text)
    assert fault == "http_429" and len(orders) == 1 and orders[0].status == "FILLED"
    # Retry-After (1 s) passed between the 429 and the order the venue took.
    assert orders[0].time / 1000.0 - refused_at >= sim.faults.retry_after_s - 0.01
    assert outcomes(watcher, ids[0]) == [OrderStatus.FILLED]


def test_fast_path_order_sent_while_the_ws_api_is_down_is_retried_and_reaches_the_venue_once(sim):
    """An order of the compiled fast path (Context.submit -> the WebSocket API's compiled order sink) that cannot be sent - the
    WebSocket API connection is down - is not rejected: it is "not sent" (RETRY), so the retry policy builds
    its request from the raw numbers and sends it again on the Python path, under the same client id, once
    the connection is back. The venue takes it exactly once; the strategy hears one outcome."""
    policy = RetryPolicy(attempts=60, base_delay=0.05, max_delay=0.25, rng=random.Random(5))
    engine, venue, watcher, inst = start_engine(sim, {"order_entry": "ws_api", "execution_options": {"retry": policy}})
    ex = venue.execution
    wait_for(lambda: watcher.book_updates >= 3 and ex.ready, what="the book and the order path")
    assert ex.compiled_orders
    seen = []

    def drop_ws_api():
        # Only the WebSocket API connection goes, and cannot come back while refuse_connections holds; the
        # market data connection stays up, so the strategy's hooks keep running.
        sim.faults.refuse_connections = True
        for conn in list(sim.conns):
            if conn.ws_api is not None:
                sim._spawn(conn.close(1001, "going away"))

    def order(ctx, book):
        ready = ex.ws_api.ready
        coid = ctx.submit(inst, "buy", *tradable(inst, book.book.best_ask * 1.02))
        seen.extend(((ready, ctx.order_sinks.get(inst.market)), coid))      # the writer it used
    try:
        sim.call(drop_ws_api)
        wait_for(lambda: not ex.ws_api.ready, what="the client to notice the WebSocket API is down")
        watcher.do(order)
        wait_for(lambda: len(seen) == 2, what="the strategy's submit")
        # The outage lasts until the order has been sent again while disconnected and the client's reconnect
        # has been refused at least once.
        wait_for(lambda: policy.counters["retries"] >= 2 and sim.faults.counters["refused_connection"] >= 1,
                 what="sends again while still disconnected",
                 detail=lambda: f": {policy.counters} {ex.counters} {ex.rejections} {sim.faults.counters}")
        sim.call(lambda: setattr(sim.faults, "refuse_connections", False))
        (ready_at_submit, submitter), coid = seen
        wait_for(lambda: engine.orders.status(coid) in TERMINAL, what="the order's outcome",
                 detail=lambda: f": {policy.counters} {ex.counters} {ex.rejections}")
        wait_for(lambda: outcomes(watcher, coid), what="the strategy to hear it")
        text = ex.order_ids.text(coid)
    finally:
        engine.stop()
    assert ready_at_submit is False
    assert submitter is ex.ws_api.order_sink          # the fast path took the order
    orders = venue_orders(sim, text)
    assert len(orders) == 1 and orders[0].status == "FILLED", orders          # once, under the same client id
    assert outcomes(watcher, coid) == [OrderStatus.FILLED]
    assert engine.orders.status(coid) == OrderStatus.FILLED
    assert ex.counters["rejected"] == 0 and coid not in ex.rejections
    assert ex.counters["submitted"] == 1 and policy.counters["gave_up"] == 0


# ---- the policy -------------------------------------------------------------------------------------

def test_errors_say_what_a_retry_may_do():
    spot = lambda status, code, msg="": error_from_response("spot", status, code, msg, "POST /api/v3/order")  # noqa
    usdm = lambda status, code, msg="": error_from_response("usdm", status, code, msg, "POST /fapi/v1/order")  # noqa
    assert retry_class(spot(429, -1003, "Too many requests")) == RETRY
    assert retry_class(spot(418, -1003, "banned")) == RETRY
    assert retry_class(spot(503, -1008, "Server is currently overloaded")) == RETRY
    assert retry_class(usdm(503, None, "Service Unavailable.")) == RETRY
    assert retry_class(spot(400, -1021, "Timestamp outside recvWindow")) == RETRY
    assert retry_class(BinanceConnectionError("refused")) == RETRY
    assert retry_class(spot(500, -1006, "Execution status unknown.")) == QUERY
    assert retry_class(spot(503, -1007, "Timeout waiting for response")) == QUERY
    assert retry_class(spot(502, None, "<html>Bad Gateway</html>")) == QUERY
    assert retry_class(OrderStatusUnknown("lost", client_order_id="x", operation="new")) == QUERY
    assert retry_class(spot(400, -1013, "Filter failure: LOT_SIZE")) == FINAL
    assert retry_class(spot(400, -2011, "Unknown order sent.")) == FINAL
    assert isinstance(spot(400, -2011, "Unknown order sent."), UnknownOrderError)
    assert isinstance(spot(400, -1013, "x"), FilterError) and isinstance(spot(500, -1006, "x"), ExecutionStatusUnknown)
    assert isinstance(usdm(503, None, "Service Unavailable."), ServerBusyError)


def test_backoff_grows_with_jitter_and_honours_retry_after():
    policy = RetryPolicy(attempts=6, base_delay=0.1, max_delay=1.0, jitter=0.5, max_wait=5.0, rng=random.Random(3))
    for attempt in range(1, 8):
        cap = min(1.0, 0.1 * 2 ** (attempt - 1))
        draws = [policy.delay(attempt) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in draws)
        assert max(draws) - min(draws) > cap / 4              # jittered, not a constant
    assert policy.allows(6, RateLimitError("x")) is None     # attempts used up
    assert policy.delay(1, RateLimitError("429", retry_after=2.5)) >= 2.5
    assert policy.delay(1, RateLimitError("429", retry_after=60)) is None     # longer than max_wait: give up
    assert policy.delay(1, IPBannedError("418")) is None
    with pytest.raises(ValueError):
        RetryPolicy(jitter=1.5)


def test_the_policy_gives_up_on_what_never_executed_and_raises_refusals():
    import asyncio
    from extrema.adapters.binance.errors import RetriesExhausted
    from extrema.adapters.binance.retry import GONE, SENT

    policy = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.002, rng=random.Random(1))
    sends = []

    async def busy():
        sends.append(1)
        raise ServerBusyError("-1008", code=-1008)

    async def refused():
        sends.append(1)
        raise FilterError("-1013", code=-1013)

    async def unknown_order():
        raise UnknownOrderError("-2011", code=-2011)

    async def never_asked():
        raise AssertionError("a refusal needs no lookup")

    async def main():
        with pytest.raises(RetriesExhausted) as e:
            await policy.place(busy, never_asked, now_ms=lambda: 0, recv_window_ms=0)
        assert isinstance(e.value.last, ServerBusyError) and len(sends) == 3       # `attempts` sends
        sends.clear()
        with pytest.raises(FilterError):
            await policy.place(refused, never_asked, now_ms=lambda: 0, recv_window_ms=0)
        assert len(sends) == 1
        assert await policy.cancel(unknown_order, never_asked) == (GONE, None)

        async def ok():
            return {"status": "NEW"}
        assert await policy.place(ok, never_asked, now_ms=lambda: 0, recv_window_ms=0) == (SENT, {"status": "NEW"})
    asyncio.run(main())
