"""The compiled per-request reservation of the Binance rate limiter (extrema._core.ratelimit, used by
RateLimiter.try_acquire on every WebSocket API order) against the plain-Python limiter it replaced
(tests/models/binance_ratelimit_reference.py): the same requests, answers, header reports and clock moves
must give the same decisions (sent / refused with the same wait) and the same counts in every window."""
import pytest
from hypothesis import given, settings, strategies as st

from extrema.adapters.binance.errors import RateLimitError
from extrema.adapters.binance.ratelimit import RateLimit, RateLimiter, SPOT_DEFAULT_LIMITS, USDM_DEFAULT_LIMITS
from extrema._core.ratelimit import Budget, Reservation, reserve_now
from tests.models import binance_ratelimit_reference as ref

# Small caps so that sequences of a few dozen requests reach them; intervals short enough that clock
# moves cross window boundaries (and the margin makes requests land in two windows).
SMALL_LIMITS = (RateLimit("REQUEST_WEIGHT", "SECOND", 1, 7), RateLimit("ORDERS", "SECOND", 10, 4),
                RateLimit("ORDERS", "MINUTE", 1, 9), RateLimit("RAW_REQUESTS", "SECOND", 2, 5))

op = st.one_of(
    st.tuples(st.just("tick"), st.integers(0, 4_000)),
    st.tuples(st.just("acquire"), st.integers(0, 5), st.integers(0, 2)),
    st.tuples(st.just("settle"), st.integers(0, 50), st.booleans(), st.none() | st.integers(0, 12)),
    st.tuples(st.just("headers"), st.integers(0, 12), st.integers(0, 12)),
)


def _state(lim):
    return [(b.limit, dict(b.confirmed), dict(b.pending)) for b in lim._budgets]


def _headers(weight, orders):
    return {"X-MBX-USED-WEIGHT-1S": str(weight), "x-mbx-order-count-10s": str(orders)}


@settings(max_examples=150, deadline=None)
@given(limits=st.sampled_from([SMALL_LIMITS, SPOT_DEFAULT_LIMITS, USDM_DEFAULT_LIMITS]),
       start=st.integers(-5_000, 2_000_000_000_000), margin=st.sampled_from([0, 1, 100, 700, 2_500]),
       ops=st.lists(op, max_size=60))
def test_compiled_limiter_matches_python_reference(limits, start, margin, ops):
    clock = {"ms": start}
    now = lambda: clock["ms"]                       # noqa: E731
    fast = RateLimiter(limits, now, window_margin_ms=margin)
    model = ref.RateLimiter(limits, now, window_margin_ms=margin)
    held = []                                       # (compiled reservation, model reservation)
    for o in ops:
        if o[0] == "tick":
            clock["ms"] += o[1]
        elif o[0] == "acquire":
            got = []
            for lim in (fast, model):
                try:
                    got.append(lim.try_acquire(o[1], o[2], endpoint="order.place"))
                except RateLimitError as exc:
                    got.append(("refused", exc.retry_after))
            a, b = got
            if isinstance(b, tuple):
                assert a == b
            else:
                assert not isinstance(a, tuple), (a, b)
                assert (a.weight, a.orders, a.windows, a.settled) == (b.weight, b.orders, b.windows, b.settled)
                held.append((a, b))
        elif o[0] == "settle" and held:
            a, b = held.pop(o[1] % len(held))
            headers = None if o[3] is None else _headers(o[3], o[3] // 2)
            fast.settle(a, headers, reached_server=o[2])
            model.settle(b, headers, reached_server=o[2])
        elif o[0] == "headers":
            fast.observe_headers(_headers(o[1], o[2]))
            model.observe_headers(_headers(o[1], o[2]))
        assert _state(fast) == _state(model)
        assert fast.in_flight == model.in_flight
        assert fast.usage() == model.usage()


def test_refusal_reserves_nothing_and_says_how_long():
    clock = {"ms": 60_000 * 1000 + 500}
    lim = RateLimiter([RateLimit("ORDERS", "SECOND", 10, 2)], lambda: clock["ms"], window_margin_ms=0)
    lim.try_acquire(1, 1, endpoint="order.place")
    lim.try_acquire(1, 1, endpoint="order.place")
    before = _state(lim)
    with pytest.raises(RateLimitError) as e:
        lim.try_acquire(1, 1, endpoint="order.place")
    assert e.value.retry_after == pytest.approx(9.5)
    assert _state(lim) == before and lim.in_flight == 2


def test_cost_above_the_whole_cap_goes_into_an_empty_window():
    lim = RateLimiter([RateLimit("REQUEST_WEIGHT", "MINUTE", 1, 10)], lambda: 120_000, window_margin_ms=0)
    res = lim.try_acquire(50, 0, endpoint="big")
    assert res.windows == {("REQUEST_WEIGHT", "1M"): (50, (2,))}
    with pytest.raises(RateLimitError):
        lim.try_acquire(1, 0, endpoint="next")


def test_reserve_now_rejects_bad_input():
    with pytest.raises(ValueError):
        Budget(None, 0, 10, 0, ("a", "1S"), ("b", "1S"))
    with pytest.raises(TypeError):
        reserve_now(["not a budget"], 1, 0, 0, 0)
    with pytest.raises(TypeError):
        Reservation()                   # made by the limiter only
