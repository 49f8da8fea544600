"""Order updates and fills reach the strategy that owns the order; client order ids carry the owner."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import extrema
from extrema import InstrumentRegistry, Market, RecordFlag, RecordKind, Strategy
from extrema._core.dispatch import Dispatcher, ORDER_OWNER_BITS
from extrema.execution.orders import (FOREIGN_ID_BASE, OWNER_BITS, ClientOrderIds, OrderStatus, OrderType,
                                      TimeInForce, owner_of)
from tests.models import order_ids_reference


def order_update(instrument_id, coid, *, status=OrderStatus.ACCEPTED, sell=False, price=100_00, qty=2_000,
                 filled=0, venue_id=77, word6=0):
    rec = extrema.empty_records(2)
    rec[0] = (RecordKind.ORDER_UPDATE, extrema.with_continuations(RecordFlag.ASK if sell else 0, 1),
              instrument_id, 1_700_000_000_000_000, 1_700_000_000_000_100, coid, price, qty, filled, venue_id)
    cont = rec[1:].view(extrema.CONTINUATION_DTYPE)
    cont["kind"] = RecordKind.CONTINUATION
    cont["flags"] = 1
    cont["instrument_id"] = instrument_id
    cont["payload"][0] = [status, OrderType.LIMIT, TimeInForce.GTC, 0, 0, qty - filled, word6]
    return rec


def fill(instrument_id, coid, *, trade_id=5, maker=True):
    rec = extrema.empty_records(2)
    rec[0] = (RecordKind.FILL, extrema.with_continuations(RecordFlag.MAKER if maker else 0, 1),
              instrument_id, 1, 2, trade_id, 100_00, 500, coid, 3)
    cont = rec[1:].view(extrema.CONTINUATION_DTYPE)
    cont["kind"] = RecordKind.CONTINUATION
    cont["flags"] = 1
    cont["instrument_id"] = instrument_id
    cont["payload"][0] = [77, 0, 500, 0, 0, 0, 0]
    return rec


class Orders(Strategy):
    def __init__(self, name):
        super().__init__(name)
        self.orders, self.fills = [], []

    def on_order(self, order):
        self.orders.append((order.client_order_id, order.status, order.side, order.price, order.quantity,
                            order.filled, order.remaining, order.venue_order_id, order.order_type,
                            order.time_in_force))

    def on_fill(self, f):
        self.fills.append((f.client_order_id, f.trade_id, f.price, f.quantity, f.maker, f.venue_order_id,
                           f.fee_raw))


@pytest.fixture
def setup():
    reg = InstrumentRegistry()
    inst = reg.register("BTC_USDT", Market.SIM, "0.01", "0.001")
    d = Dispatcher(reg)
    strategies = [Orders(f"s{i}") for i in range(3)]
    for s in strategies:
        d.add_strategy(s)
    return inst, d, strategies


def test_updates_and_fills_go_to_the_owner_only(setup):
    inst, d, (s0, s1, s2) = setup
    ids = ClientOrderIds("test")
    mine = ids.next(1)
    d.dispatch(np.concatenate([order_update(inst.id, mine, filled=500), fill(inst.id, mine)]))
    assert s0.orders == s2.orders == [] and s0.fills == s2.fills == []
    assert s1.orders == [(mine, OrderStatus.ACCEPTED, "buy", 100.0, 2.0, 0.5, 1.5, 77, OrderType.LIMIT,
                          TimeInForce.GTC)]
    assert s1.fills == [(mine, 5, 100.0, 0.5, True, 77, 3)]


def test_foreign_orders_reach_subscribers_and_unknown_owners_are_counted(setup):
    inst, d, (s0, s1, s2) = setup
    d.subscribe(2, inst.id, RecordKind.ORDER_UPDATE)
    foreign = FOREIGN_ID_BASE + 9
    d.dispatch(order_update(inst.id, foreign, sell=True))
    assert [o[0] for o in s2.orders] == [foreign] and s2.orders[0][2] == "sell"
    assert s0.orders == s1.orders == []
    # One of our ids naming a strategy index this engine does not have: counted, delivered to nobody.
    d.dispatch(order_update(inst.id, ClientOrderIds("test").next(40)))
    assert d.unowned_orders == 1 and d.stats()["unowned_orders"] == 1
    assert sum(len(s.orders) for s in (s0, s1, s2)) == 1


def test_a_copied_order_view_outlives_the_hook():
    reg = InstrumentRegistry()
    inst = reg.register("BTC_USDT", Market.SIM, "0.01", "0.001")
    kept = []

    class Keeper(Strategy):
        def on_order(self, order):
            kept.append((order, order.copy()))
    d = Dispatcher(reg)
    d.add_strategy(Keeper())
    oid = ClientOrderIds("test").next(0)
    d.dispatch(order_update(inst.id, oid, status=OrderStatus.FILLED, filled=2_000,
                            word6=int(extrema.OrderReason.INSUFFICIENT_BALANCE) | int(extrema.ExecType.TRADE) << 16))
    view, copy = kept[0]
    assert copy.reason == extrema.OrderReason.INSUFFICIENT_BALANCE and copy.exec_type == extrema.ExecType.TRADE
    with pytest.raises(extrema.ViewExpiredError):
        view.status
    assert copy.status == OrderStatus.FILLED and copy.remaining == 0.0 and copy.client_order_id == oid
    assert "FILLED" in repr(copy)


def test_venue_candles_reach_candle_subscribers():
    reg = InstrumentRegistry()
    inst = reg.register("BTC_USDT", Market.SIM, "0.01", "0.001")
    got = []

    class Bars(Strategy):
        def on_candle(self, c):
            got.append((c.open, c.close, c.volume))
    d = Dispatcher(reg)
    d.add_strategy(Bars())
    d.subscribe(0, inst.id, RecordKind.CANDLE)
    rec = extrema.empty_records(2)
    rec[0] = (RecordKind.CANDLE, extrema.with_continuations(0, 1), inst.id, 0, 0, 3, 100_00, 1_500, 101_00, 99_00)
    cont = rec[1:].view(extrema.CONTINUATION_DTYPE)
    cont["kind"] = RecordKind.CONTINUATION
    cont["payload"][0] = [100_50, 100_20, 1_000, 500, 60_000_000, 0, 0]
    d.dispatch(rec)
    assert got == [(100.0, 100.5, 1.5)]


def test_client_order_ids_encode_the_owner_and_round_trip_their_wire_text():
    ids = ClientOrderIds("ab12", clock=lambda: 1_763_000_000.0)
    assert OWNER_BITS == ORDER_OWNER_BITS
    seen = set()
    for owner in (0, 1, 63, 5):
        for _ in range(100):
            oid = ids.next(owner)
            assert owner_of(oid) == owner and 0 < oid < FOREIGN_ID_BASE
            text = ids.text(oid)
            assert len(text) <= 32 and text.isalnum() and ids.parse(text) == oid
            seen.add(oid)
    assert len(seen) == 400
    # Another engine's ids (other tag) and other clients' ids are not ours.
    assert ClientOrderIds("zz99").parse(ids.text(oid)) is None
    for text in ("web_123", "exab12", "exab12-5", "exab12" + "9" * 20, ""):
        assert ids.parse(text) is None
    with pytest.raises(ValueError):
        ids.next(64)
    with pytest.raises(ValueError):
        ClientOrderIds("AB-1")


def test_ids_of_a_restarted_engine_never_repeat_the_previous_run():
    now = [1_763_000_000.0]
    first = ClientOrderIds("ab12", clock=lambda: now[0])
    a = {first.next(0) for _ in range(1000)}
    now[0] += 1
    second = ClientOrderIds("ab12", clock=lambda: now[0])
    b = {second.next(0) for _ in range(1000)}
    assert not a & b and min(b) > max(a)


def test_counter_overflow_moves_to_a_later_start_second():
    ids = ClientOrderIds("ab12", clock=lambda: 1_763_000_000.0)
    ids._counter = (1 << 26) - 2
    a = ids.next(3)
    b = ids.next(3)
    c = ids.next(3)
    assert a < b < c and owner_of(c) == 3 and (c >> 32) == (a >> 32) + 1


@pytest.mark.parametrize("singles", range(0, 9))
def test_events_the_ring_wraps_reach_the_strategy_whole(setup, singles):
    """An order update (two slots) whose head is the ring's last slot and whose continuation is its first:
    the engine's pump puts it back together instead of reading past the slot array."""
    inst, d, (s0, s1, s2) = setup
    ring = extrema.Ring(8)
    consumer = ring.consumer()
    ids = ClientOrderIds("test")
    trade = extrema.empty_records(1)
    trade[0] = (RecordKind.TRADE, 0, inst.id, 1, 2, 9, 100_00, 1_000, 0, 0)
    want = []
    for k in range(12):                  # 0..8 single slots first shift where the two-slot events wrap
        if k < singles:
            ring.publish(trade)
        else:
            coid = ids.next(1)
            ring.publish(order_update(inst.id, coid, filled=k, price=100_00 + k))
            want.append((coid, 100.0 + k / 100, k / 1000))
        d.pump(consumer)
    got = [(o[0], o[3], o[5]) for o in s1.orders]
    assert got == want
    assert d.torn_dropped == 0
    assert d.rejoined == sum(1 for k in range(singles, 12) if (singles + 2 * (k - singles)) % 8 == 7)


@settings(max_examples=200, deadline=None)
@given(start=st.floats(0, 2_900_000_000), counter=st.sampled_from([0, 5, (1 << 26) - 3]),
       steps=st.lists(st.tuples(st.integers(-2, 70), st.floats(-5, 40)), max_size=40))
def test_compiled_id_allocator_matches_the_python_reference(start, counter, steps):
    # the same clock, the same owners, counters near the 26-bit end (the start second moves on there):
    # the same ids, or the same error
    clock = {"t": start}
    made = []
    for cls in (ClientOrderIds, order_ids_reference.OrderIdAllocator):
        clock["t"] = start
        try:
            ids = cls("ab12", clock=lambda: clock["t"]) if cls is ClientOrderIds else cls(lambda: clock["t"])
        except OverflowError:
            made.append("overflow")
            continue
        ids._counter = counter
        out = []
        for owner, dt in steps:
            clock["t"] += dt
            try:
                out.append(ids.next(owner))
            except (ValueError, OverflowError) as exc:
                out.append(type(exc).__name__)
        made.append(out)
    assert made[0] == made[1]


def test_ids_restart_on_another_clock_only_before_the_first():
    ids = ClientOrderIds("ab12", clock=lambda: 1_763_000_000.0)
    ids.restart(lambda: 0.0)                       # a backtest's data clock before its first record
    first = ids.next(3)
    assert first >> 32 == 1 and owner_of(first) == 3
    with pytest.raises(RuntimeError, match="issued already"):
        ids.restart(lambda: 1_763_000_000.0)
