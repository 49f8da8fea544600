"""The compiled order table: the state machine's rules one by one, with the code each input gets."""
import inspect

import numpy as np
import pytest

import extrema
from extrema import OrderStatus as S
from extrema._core.orders import IllegalTransitionError, OrderEventCode as C, OrderTable
from extrema.execution.orders import ClientOrderIds
from order_records import fill, order_update

IID = 3
IDS = ClientOrderIds("test", clock=lambda: 1_800_000_000)


def new_table(**kw):
    return OrderTable(**kw)


def placed(t, owner=2, qty=1000, price=5000, side=0, submitted=True):
    coid = IDS.next(owner)
    t.register(coid, IID, side, qty, price, submitted=submitted, ts=1)
    return coid


def test_the_compiled_table_is_what_runs():
    assert OrderTable.__module__ == "extrema._core.orders"
    assert extrema._core.orders.__file__.endswith(".so")
    assert not inspect.isfunction(OrderTable.apply)


def test_lifecycle_with_exact_quantities_and_open_cells():
    t = new_table()
    coid = placed(t, submitted=False)
    assert t.status(coid) == S.INITIALIZED
    assert t.open_quantity(2, IID) == (1000, 0) and t.open_quantity(65, IID) == (1000, 0)
    assert t.open_count(2) == 1 and t.open_count() == 1
    assert t.submitted(coid) == C.OK and t.status(coid) == S.SUBMITTED
    assert t.apply(order_update(IID, coid, S.ACCEPTED, price=5000, quantity=1000, venue_order_id=99)) == [C.OK]
    assert t.apply(fill(IID, coid, 1, 5000, 300)) == [C.OK]
    assert t.status(coid) == S.PARTIALLY_FILLED and t.open_quantity(2, IID) == (700, 0)
    assert t.apply(fill(IID, coid, 2, 4990, 700)) == [C.OK]
    o = t.get(coid)
    assert o["status"] == S.FILLED and o["filled_raw"] == 1000 and o["remaining_raw"] == 0
    assert o["filled_notional_raw"] == 5000 * 300 + 4990 * 700
    assert o["avg_price_raw"] == (5000 * 300 + 4990 * 700) // 1000 and o["venue_order_id"] == 99
    assert t.open_quantity(2, IID) == (0, 0) and t.open_count() == 0
    # the FILLED report that follows the last fill is a duplicate of the state the fills reached
    assert t.apply(order_update(IID, coid, S.FILLED, price=5000, quantity=1000, cum_filled=1000)) == [C.DUPLICATE]


def test_illegal_transitions_are_reported_and_never_applied():
    t = new_table()
    coid = placed(t)
    t.apply(order_update(IID, coid, S.ACCEPTED, price=5000, quantity=1000))
    t.apply(order_update(IID, coid, S.CANCELLED, price=5000, quantity=1000))
    assert t.status(coid) == S.CANCELLED
    t.events()
    assert t.apply(order_update(IID, coid, S.FILLED, price=5000, quantity=1000, cum_filled=1000)) == [C.ILLEGAL]
    assert t.status(coid) == S.CANCELLED and t.get(coid)["venue_filled_raw"] == 0
    (ev,) = t.events()
    assert ev["code"] == C.ILLEGAL and ev["from_status"] == S.CANCELLED and ev["to_status"] == S.FILLED
    assert t.stats()["updates"]["illegal"] == 1
    # a rejection of an order the venue already accepted is illegal too
    other = placed(t)
    t.apply(order_update(IID, other, S.ACCEPTED, price=5000, quantity=1000))
    assert t.apply(order_update(IID, other, S.REJECTED, price=5000, quantity=1000)) == [C.ILLEGAL]
    assert t.status(other) == S.ACCEPTED
    # surfaced as an exception on request
    t.raise_on_illegal = True
    with pytest.raises(IllegalTransitionError) as err:
        t.apply(order_update(IID, coid, S.ACCEPTED, price=5000, quantity=1000))
    assert err.value.event["code"] == C.ILLEGAL and t.status(coid) == S.CANCELLED
    with pytest.raises(IllegalTransitionError):
        t.cancel(coid)


def test_duplicate_fills_are_ignored_and_counted():
    t = new_table()
    coid = placed(t)
    f = fill(IID, coid, 77, 5000, 400)
    assert t.apply(f) == [C.OK]
    assert t.apply(f) == [C.DUPLICATE]                    # reconnect replay
    assert t.apply(fill(IID, coid, 77, 5000, 400)) == [C.DUPLICATE]
    assert t.get(coid)["filled_raw"] == 400
    assert t.stats()["fills"] == {"ok": 1, "duplicate": 1 + 1}
    assert t.knows_trade(IID, 77, "buy") and not t.knows_trade(IID, 77, "sell")


def test_both_halves_of_a_self_trade_count():
    t = new_table()
    buy, sell = placed(t, side=0), placed(t, side=1)
    assert t.apply(np.concatenate([fill(IID, buy, 5, 5000, 100), fill(IID, sell, 5, 5000, 100, side=1)])) == [C.OK, C.OK]


def test_a_fill_without_trade_id_is_applied_and_counted():
    t = new_table()
    coid = placed(t)
    assert t.apply(fill(IID, coid, 0, 5000, 100)) == [C.OK]
    assert t.stats()["fills_without_trade_id"] == 1


def test_fill_before_the_acknowledgement():
    t = new_table()
    coid = placed(t)
    assert t.apply(fill(IID, coid, 1, 5000, 100)) == [C.OK]
    assert t.status(coid) == S.PARTIALLY_FILLED
    # the ACCEPTED that was overtaken by the fill is stale now
    assert t.apply(order_update(IID, coid, S.ACCEPTED, price=5000, quantity=1000)) == [C.STALE]
    assert t.status(coid) == S.PARTIALLY_FILLED


def test_updates_older_than_the_last_applied_are_stale():
    t = new_table()
    coid = placed(t)
    assert t.apply(order_update(IID, coid, S.ACCEPTED, price=5000, quantity=1000, ts_exchange=200)) == [C.OK]
    # an amend at the venue, then the REST answer of an earlier state
    assert t.apply(order_update(IID, coid, S.ACCEPTED, price=5100, quantity=1000, ts_exchange=300)) == [C.OK]
    assert t.apply(order_update(IID, coid, S.ACCEPTED, price=5000, quantity=1000, ts_exchange=250)) == [C.STALE]
    assert t.get(coid)["price_raw"] == 5100


def test_cancel_flow_with_a_fill_while_pending_and_a_failed_cancel():
    t = new_table()
    coid = placed(t)
    t.apply(order_update(IID, coid, S.ACCEPTED, price=5000, quantity=1000))
    assert t.cancel(coid) == C.OK and t.status(coid) == S.PENDING_CANCEL
    assert t.cancel(coid) == C.DUPLICATE
    assert t.apply(fill(IID, coid, 9, 5000, 100)) == [C.OK]
    o = t.get(coid)
    assert o["status"] == S.PENDING_CANCEL and o["base_status"] == S.PARTIALLY_FILLED
    # the venue refuses the cancel (reason code): the order is live again, with its fill
    assert t.apply(order_update(IID, coid, S.PARTIALLY_FILLED, price=5000, quantity=1000, cum_filled=100,
                                reason=-2011)) == [C.OK]
    assert t.status(coid) == S.PARTIALLY_FILLED and t.get(coid)["reason"] == -2011
    t.cancel(coid)
    assert t.apply(order_update(IID, coid, S.CANCELLED, price=5000, quantity=1000, cum_filled=100)) == [C.OK]
    assert t.status(coid) == S.CANCELLED and t.open_count() == 0


def test_cancel_before_the_order_is_acknowledged_stays_pending():
    t = new_table()
    coid = placed(t)
    t.cancel(coid)
    # the acknowledgement of the order itself arrives after the cancel was sent: still pending
    assert t.apply(order_update(IID, coid, S.ACCEPTED, price=5000, quantity=1000)) == [C.OK]
    o = t.get(coid)
    assert o["status"] == S.PENDING_CANCEL and o["base_status"] == S.ACCEPTED


def test_cancel_of_an_order_never_sent_closes_it_at_once():
    t = new_table()
    coid = placed(t, submitted=False)
    assert t.cancel(coid) == C.OK and t.status(coid) == S.CANCELLED


def test_replace_flow():
    t = new_table()
    coid = placed(t)
    t.apply(order_update(IID, coid, S.ACCEPTED, price=5000, quantity=1000))
    assert t.replace(coid, price_raw=5050, quantity_raw=2000) == C.OK
    o = t.get(coid)
    assert o["status"] == S.PENDING_REPLACE and (o["pending_price_raw"], o["pending_quantity_raw"]) == (5050, 2000)
    assert t.open_quantity(2, IID) == (2000, 0)          # the larger of old and new size counts while pending
    assert t.replace(coid, price_raw=5060) == C.ILLEGAL   # one change at a time
    # an update still carrying the old values does not confirm the replace
    assert t.apply(order_update(IID, coid, S.ACCEPTED, price=5000, quantity=1000)) == [C.DUPLICATE]
    assert t.apply(order_update(IID, coid, S.ACCEPTED, price=5050, quantity=2000)) == [C.OK]
    o = t.get(coid)
    assert o["status"] == S.ACCEPTED and (o["price_raw"], o["quantity_raw"]) == (5050, 2000)
    # a refused replace goes back to the live order unchanged
    t.replace(coid, price_raw=5100)
    assert t.apply(order_update(IID, coid, S.ACCEPTED, price=5050, quantity=2000, reason=-2021)) == [C.OK]
    o = t.get(coid)
    assert o["status"] == S.ACCEPTED and o["price_raw"] == 5050 and o["pending_price_raw"] == 0
    assert t.replace(coid, quantity_raw=0, price_raw=-1) == C.INVALID


def test_fills_while_a_larger_replacement_is_pending_fit_the_larger_size():
    t = new_table()
    coid = placed(t, qty=100)
    t.replace(coid, quantity_raw=300)
    # the venue may already work the new size: a fill past the old size is not an overfill
    assert t.apply(fill(IID, coid, 1, 5000, 150)) == [C.OK]
    o = t.get(coid)
    assert o["status"] == S.PENDING_REPLACE and o["base_status"] == S.PARTIALLY_FILLED
    assert t.apply(fill(IID, coid, 2, 5000, 151)) == [C.OVERFILL]
    assert t.apply(order_update(IID, coid, S.PARTIALLY_FILLED, price=5000, quantity=300, cum_filled=150)) == [C.OK]
    assert t.status(coid) == S.PARTIALLY_FILLED and t.get(coid)["quantity_raw"] == 300


def test_unknown_orders_are_adopted_and_foreign_ones_belong_to_external():
    t = new_table()
    coid = IDS.next(5)
    assert t.apply(order_update(IID, coid, S.PARTIALLY_FILLED, price=5000, quantity=1000, cum_filled=300)) == [C.ADOPTED]
    o = t.get(coid)
    assert o["owner"] == 5 and o["venue_filled_raw"] == 300 and o["filled_raw"] == 0
    foreign = (1 << 62) + 12345
    assert t.apply(order_update(IID, foreign, S.ACCEPTED, side=1, price=5000, quantity=10)) == [C.ADOPTED]
    assert t.get(foreign)["owner"] == 64 and t.open_quantity(64, IID) == (0, 10)
    # remaining = size - fills seen: the 300 the venue reports are not in the positions yet either, so
    # position + open size stays the worst case until their fills arrive (reconciliation fetches them)
    assert t.open_quantity(65, IID) == (1000, 10)


def test_fill_of_an_unknown_order_is_remembered_and_reported():
    t = new_table()
    f = fill(IID, IDS.next(4), 31, 5000, 100)
    assert t.apply(f) == [C.UNKNOWN_ORDER]
    assert t.apply(f) == [C.DUPLICATE]


def test_overfill_and_late_fills_on_closed_orders():
    t = new_table()
    coid = placed(t)
    assert t.apply(fill(IID, coid, 1, 5000, 1001)) == [C.OVERFILL]
    assert t.get(coid)["filled_raw"] == 0
    # the venue reports the cancel with 300 filled, the fill arrives later: it is applied
    t.apply(order_update(IID, coid, S.CANCELLED, price=5000, quantity=1000, cum_filled=300))
    assert t.apply(fill(IID, coid, 2, 5000, 300)) == [C.OK]
    assert t.status(coid) == S.CANCELLED and t.get(coid)["filled_raw"] == 300
    assert t.apply(fill(IID, coid, 3, 5000, 1)) == [C.ILLEGAL]      # nothing more was confirmed
    rejected = placed(t)
    t.apply(order_update(IID, rejected, S.REJECTED, price=5000, quantity=1000))
    assert t.apply(fill(IID, rejected, 4, 5000, 1)) == [C.ILLEGAL]
    # FILLED: the last fill completes it; one more is an overfill
    done = placed(t, qty=10)
    t.apply(fill(IID, done, 5, 5000, 10))
    assert t.apply(fill(IID, done, 6, 5000, 1)) == [C.OVERFILL]


def test_invalid_inputs():
    t = new_table()
    coid = placed(t)
    bad_status = order_update(IID, coid, 12, price=5000, quantity=1000)
    assert t.apply(bad_status) == [C.INVALID]
    assert t.apply(order_update(IID, coid, S.ACCEPTED, side=1, price=5000, quantity=1000)) == [C.INVALID]
    assert t.apply(order_update(IID + 1, coid, S.ACCEPTED, price=5000, quantity=1000)) == [C.INVALID]
    assert t.apply(order_update(IID, coid, S.INITIALIZED, price=5000, quantity=1000)) == [C.INVALID]
    assert t.apply(order_update(IID, coid, S.ACCEPTED, price=5000, quantity=10, cum_filled=11)) == [C.INVALID]
    assert t.apply(fill(IID, coid, 1, 5000, 0)) == [C.INVALID]
    assert t.apply(fill(IID, coid, 1, 5000, 10, side=1)) == [C.INVALID]
    assert t.status(coid) == S.SUBMITTED and t.get(coid)["filled_raw"] == 0
    with pytest.raises(ValueError, match="continuation"):
        t.apply(order_update(IID, coid, S.ACCEPTED)[:1])
    with pytest.raises(ValueError, match="already in the table"):
        t.register(coid, IID, "buy", 10, 5000)
    with pytest.raises(ValueError, match="invalid order"):
        t.register(IDS.next(1), IID, "buy", 0, 5000)


def test_local_rejection():
    t = new_table()
    coid = placed(t, submitted=False)
    assert t.reject(coid, reason=1007) == C.OK
    o = t.get(coid)
    assert o["status"] == S.REJECTED and o["reason"] == 1007 and t.open_count() == 0
    live = placed(t)
    t.apply(order_update(IID, live, S.ACCEPTED, price=5000, quantity=1000))
    assert t.reject(live) == C.ILLEGAL


def test_terminal_orders_and_trades_are_retained_up_to_their_limits():
    t = new_table(keep_terminal=2, keep_trades=2)
    ids = [placed(t) for _ in range(3)]
    for k, coid in enumerate(ids):
        t.apply(fill(IID, coid, 100 + k, 5000, 1000))
    assert ids[0] not in t and ids[1] in t and ids[2] in t
    assert t.stats()["evicted_orders"] == 1 and t.stats()["evicted_trades"] == 1
    assert not t.knows_trade(IID, 100, 0) and t.knows_trade(IID, 101, 0) and t.knows_trade(IID, 102, 0)
    # the table keeps working across evictions (slots are reused)
    more = [placed(t) for _ in range(50)]
    assert all(c in t for c in more) and t.open_count() == 50


def test_record_of_an_order_reads_back_through_the_order_view():
    t = new_table()
    coid = placed(t, owner=0)
    t.apply(np.concatenate([order_update(IID, coid, S.ACCEPTED, price=5000, quantity=1000, venue_order_id=8),
                            fill(IID, coid, 1, 5000, 250)]))
    rec = t.record(coid)
    reg = extrema.InstrumentRegistry()
    for k in range(IID):
        reg.register(f"C{k}_USDT", extrema.Market.SIM, "0.01", "0.001")
    seen = []

    class Watch(extrema.Strategy):
        def on_order(self, order):
            seen.append((order.client_order_id, order.status, order.filled, order.remaining, order.average_price,
                         order.venue_order_id))

    d = extrema.Dispatcher(reg)
    d.add_strategy(Watch("w"))
    d.dispatch(rec)
    assert seen == [(coid, S.PARTIALLY_FILLED, 0.25, 0.75, 50.0, 8)]


def test_many_orders_grow_the_index_and_find_each():
    t = new_table()
    ids = [placed(t, qty=k + 1) for k in range(5000)]
    assert len(t) == 5000 and all(t.get(c)["quantity_raw"] == k + 1 for k, c in enumerate(ids))
    assert t.open_quantity(2, IID)[0] == sum(range(1, 5001))
    arr = t.to_numpy()
    assert len(arr) == 5000 and set(arr["client_order_id"]) == set(ids)
