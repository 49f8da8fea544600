"""Engine-side stops: loss, take-profit and trailing triggers over trades, quotes and the book."""
import numpy as np
import pytest

from extrema import InstrumentRegistry, Market, OrderBook
from extrema._core.execution import ExecutionCore
from extrema._core.stops import StopManager
from order_records import quote, trade


def ids(fired):
    return [f["stop_id"] for f in fired]


def test_loss_and_take_profit_in_both_directions():
    s = StopManager()
    s.add(1, 0, 7, "sell", 100, kind="loss", trigger_raw=9_500)          # protects a long
    s.add(2, 0, 7, "buy", 100, kind="loss", trigger_raw=10_500)          # protects a short
    s.add(3, 0, 7, "sell", 100, kind="take_profit", trigger_raw=10_400)
    s.add(4, 0, 7, "buy", 100, kind="take_profit", trigger_raw=9_600, limit_price_raw=9_601)
    assert s.trade(7, 10_000) == 0 and s.pending == 0
    assert s.trade(7, 10_400) == 1 and ids(s.drain()) == [3]            # at the trigger fires
    assert s.trade(7, 9_600) == 1
    f = s.drain()
    assert ids(f) == [4] and f[0]["limit_price_raw"] == 9_601 and f[0]["fired_price_raw"] == 9_600
    assert s.trade(7, 9_499) == 1 and ids(s.drain()) == [1]
    assert s.trade(7, 10_500) == 1 and ids(s.drain()) == [2]
    assert len(s) == 0 and s.active() == []


def test_trailing_stop_follows_the_best_price():
    s = StopManager()
    s.add(1, 3, 7, "sell", 50, kind="trailing", trail_offset_raw=100)
    for px in (10_000, 10_050, 10_200, 10_150):
        assert s.trade(7, px) == 0
    assert s.get(1)["trigger_raw"] == 10_100 and s.get(1)["extreme_raw"] == 10_200
    assert s.trade(7, 10_100) == 1
    f = s.drain()[0]
    assert f["owner"] == 3 and f["side"] == "sell" and f["quantity_raw"] == 50 and f["fired_price_raw"] == 10_100


def test_trailing_buy_stop_in_basis_points_with_activation():
    s = StopManager()
    s.add(9, 0, 7, "buy", 10, kind="trailing", trail_bps=100, activation_raw=9_000)
    assert s.trade(7, 9_500) == 0 and not s.get(9)["armed"]
    assert s.trade(7, 9_000) == 0 and s.get(9)["armed"]           # armed: trails min + 1 %
    assert s.trade(7, 8_000) == 0 and s.get(9)["trigger_raw"] == 8_080
    assert s.trade(7, 8_079) == 0
    assert s.trade(7, 8_080) == 1


def test_bid_ask_source_uses_the_executable_side():
    s = StopManager()
    s.add(1, 0, 7, "sell", 1, kind="loss", trigger_raw=9_900, source="bidask")
    s.add(2, 0, 7, "buy", 1, kind="loss", trigger_raw=10_100, source="bidask")
    assert s.trade(7, 9_000) == 0                                  # trades are not its source
    assert s.quote(7, 9_950, 10_100) == 1 and ids(s.drain()) == [2]
    book = OrderBook(0, 0, instrument_id=7)
    book.apply_snapshot([(9_900, 1)], [(9_950, 1)])
    assert s.book(7, book) == 1 and ids(s.drain()) == [1]


def test_records_feed_and_bookkeeping():
    s = StopManager()
    s.add(1, 0, 7, "sell", 1, trigger_raw=100)
    s.add(2, 0, 8, "sell", 1, trigger_raw=100)
    assert s.cancel(2) and not s.cancel(2) and s.active() == [1]
    recs = np.concatenate([trade(8, 50, 1), quote(7, 120, 1, 121, 1), trade(7, 99, 1)])
    assert s.process(recs) == 1 and s.pending == 1
    with pytest.raises(ValueError):
        s.add(1, 0, 7, "sell", 1, trigger_raw=100)                 # fired, not drained: id still taken
    s.drain()
    s.add(1, 0, 7, "sell", 1, trigger_raw=100)                     # free again
    with pytest.raises(ValueError, match="trailing"):
        s.add(5, 0, 7, "sell", 1, kind="trailing")
    with pytest.raises(ValueError, match="trigger"):
        s.add(5, 0, 7, "sell", 1, kind="loss")
    with pytest.raises(ValueError, match="kind"):
        s.add(5, 0, 7, "sell", 1, kind="oco", trigger_raw=1)
    for k in range(100, 400):
        s.add(k, 0, 9, "buy", 1, trigger_raw=1_000 + k)
    assert s.trade(9, 1_200) == 101 and len(s.drain()) == 101 and len(s.active(9)) == 199


def test_execution_core_feeds_stops_from_trades_quotes_and_books():
    reg = InstrumentRegistry()
    btc = reg.register("BTC_USDT", Market.SIM, "0.01", "0.001")
    core = ExecutionCore(reg)
    core.stops.add(1, 0, btc.id, "sell", 1, trigger_raw=99_00)
    core.stops.add(2, 0, btc.id, "buy", 1, trigger_raw=101_00, source="bidask")
    core.process(trade(btc.id, 98_00, 1))
    assert ids(core.stops.drain()) == [1]
    book = OrderBook(2, 3, instrument_id=btc.id)
    core.portfolio.set_book(btc.id, book)
    import extrema
    delta = extrema.empty_records(1)
    delta[0] = (extrema.RecordKind.BOOK_DELTA, extrema.RecordFlag.ASK | extrema.RecordFlag.LAST, btc.id, 0, 0, 1,
                101_00, 5, 0, 0)
    core.process(delta)                  # the dispatcher applies it to the book ...
    book.apply_records(delta)
    assert core.stops.pending == 0
    assert core.after_dispatch() == 1    # ... then the book-sourced stops look at it
    assert ids(core.stops.drain()) == [2]
