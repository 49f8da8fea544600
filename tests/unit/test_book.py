"""OrderBook API: validation, integrity policies, batch semantics, copies. Differential coverage of every
read against the sortedcontainers reference is in tests/property/test_book_differential.py."""
import pickle

import numpy as np
import pytest

import extrema
from extrema import BookSide, CrossedBookError, OrderBook, RecordFlag, RecordKind, Side

BID, ASK = BookSide.BID, BookSide.ASK


def records(*rows, instrument_id=0):
    """rows of (kind, flags, sequence, price, quantity)."""
    arr = extrema.empty_records(len(rows))
    for i, (kind, flags, seq, price, qty) in enumerate(rows):
        arr[i] = (kind, flags, instrument_id, 0, 0, seq, price, qty, 0, 0)
    return arr


D, R = RecordKind.BOOK_DELTA, RecordKind.BOOK_RESET
A, S, L = RecordFlag.ASK, RecordFlag.SNAPSHOT, RecordFlag.LAST


@pytest.mark.parametrize("args, kw, match", [
    ((19, 2), {}, "precisions"),
    ((2, -1), {}, "precisions"),
    ((2, 2), {"tick": 0}, "tick"),
    ((2, 2), {"ladder_ticks": 100}, "power of two"),
    ((2, 2), {"ladder_ticks": 8192}, "power of two"),
    ((2, 2), {"crossed": "ignore"}, "crossed must be one of"),
])
def test_constructor_validates(args, kw, match):
    with pytest.raises(ValueError, match=match):
        OrderBook(*args, **kw)


def test_invalid_updates_are_rejected_clearly_and_change_nothing():
    book = OrderBook(2, 3, tick=5)
    book.apply_delta(BID, 100, 1)
    with pytest.raises(ValueError, match="negative size -1"):
        book.apply_delta(BID, 105, -1)
    with pytest.raises(ValueError, match="not a multiple of the tick 5"):
        book.apply_delta(ASK, 103, 1)
    with pytest.raises(ValueError, match="side must be"):
        book.apply_delta(2, 100, 1)
    with pytest.raises(ValueError, match="negative value"):
        book.update(BID, "1.00", "-0.5")
    with pytest.raises(ValueError, match="more decimals"):
        book.update(BID, 1.001, 1)
    with pytest.raises(ValueError, match="NaN"):
        book.update(BID, float("nan"), 1)
    assert book.levels(BID, raw=True).tolist() == [[100, 1]] and book.ask_count == 0


def test_deleting_an_absent_level_is_a_no_op():
    book = OrderBook(2, 0)
    book.apply_delta(ASK, 500, 0)
    book.apply_delta(BID, 400, 3)
    book.apply_delta(BID, 10, 0)         # far below, in no ladder window
    book.apply_delta(BID, 10**12, 0)     # far above
    assert len(book) == 1 and book.best_bid_raw == 400


def test_stale_updates_are_dropped_and_counted():
    book = OrderBook(2, 0)
    assert book.apply_delta(BID, 100, 1, update_id=10)
    assert book.apply_delta(BID, 101, 1, update_id=10)      # same message id is fine
    assert not book.apply_delta(BID, 102, 1, update_id=9)
    assert book.apply_delta(BID, 103, 1)                     # no id given: never stale
    assert book.stats["stale"] == 1 and book.last_update_id == 10 and book.best_bid_raw == 103


def test_crossed_flag_policy():
    book = OrderBook(2, 0)
    book.apply_delta(ASK, 100, 1)
    book.apply_delta(BID, 100, 1)
    assert book.is_crossed and book.stats["crossed"] == 1 and "CROSSED" in repr(book)
    book.apply_delta(ASK, 100, 0)
    assert not book.is_crossed


def test_crossed_raise_policy_keeps_the_message_applied():
    book = OrderBook(2, 0, crossed="raise")
    book.apply_delta(ASK, 100, 1)
    with pytest.raises(CrossedBookError, match="best bid 101 >= best ask 100"):
        book.apply_delta(BID, 101, 1)
    assert book.is_crossed and book.best_bid_raw == 101
    # Mid-message crossing is fine: only the message end is checked.
    book = OrderBook(2, 0, crossed="raise")
    book.apply_delta(ASK, 100, 1)
    book.apply_delta(BID, 101, 1, last=False)
    book.apply_delta(ASK, 100, 0, last=True)
    assert not book.is_crossed


@pytest.mark.parametrize("side_set, expect_bids, expect_asks", [
    (BID, [[105, 1], [99, 1]], [[106, 1]]),       # a new bid at 105 removes asks 100..105
    (ASK, [[90, 1]], [[95, 1], [100, 1], [103, 1], [106, 1]]),   # a new ask at 95 removes bids >= 95
])
def test_crossed_prune_policy_trusts_the_latest_level(side_set, expect_bids, expect_asks):
    book = OrderBook(2, 0, crossed="prune")
    book.apply_snapshot(bids=np.array([[99, 1], [90, 1]], dtype=np.int64),
                        asks=np.array([[100, 1], [103, 1], [106, 1]], dtype=np.int64))
    if side_set == BID:
        book.apply_delta(BID, 105, 1)
        book.apply_delta(BID, 90, 0)
    else:
        book.apply_delta(ASK, 95, 1)
    assert book.levels(BID, raw=True).tolist() == expect_bids
    assert book.levels(ASK, raw=True).tolist() == expect_asks
    assert not book.is_crossed and book.stats["crossed"] == 1


def test_apply_records_snapshot_deltas_reset_and_other_instruments():
    book = OrderBook(2, 0, instrument_id=7)
    arr = records(
        (D, S, 50, 100, 5), (D, S | A, 50, 110, 6), (D, S | L, 50, 99, 4),    # snapshot, id 50
        (D, 0, 49, 101, 1),                                                  # stale
        (D, A | L, 51, 110, 0),                                              # delete ask 110
        (RecordKind.TRADE, 0, 0, 100, 1),                                    # not a book record
        instrument_id=7)
    other = records((D, L, 52, 500, 1), instrument_id=8)
    assert book.apply_records(np.concatenate([arr, other])) == 4
    assert book.levels(BID, raw=True).tolist() == [[100, 5], [99, 4]] and book.ask_count == 0
    assert book.last_update_id == 51 and book.stats["stale"] == 1
    # A new snapshot replaces everything; a reset clears and forgets the update id.
    assert book.apply_records(records((D, S | A | L, 10, 200, 1), instrument_id=7)) == 1
    assert book.bid_count == 0 and book.best_ask_raw == 200 and book.last_update_id == 10
    assert book.apply_records(records((R, 0, 0, 0, 0), instrument_id=7)) == 1
    assert len(book) == 0 and book.last_update_id == 0


def test_apply_records_strict_and_lenient():
    bad = records((D, 0, 0, 100, 1), (D, 0, 0, 101, -5), (D, 0, 0, 102, 1))
    book = OrderBook(2, 0)
    with pytest.raises(ValueError, match="record 1: negative size -5"):
        book.apply_records(bad)
    assert book.best_bid_raw == 100                  # what came before the bad record stays applied
    book = OrderBook(2, 0)
    assert book.apply_records(bad, strict=False) == 2
    assert book.best_bid_raw == 102 and book.stats["rejected"] == 1
    with pytest.raises(TypeError, match="RECORD_DTYPE"):
        book.apply_records(np.zeros(3))
    assert book.apply_records(extrema.empty_records(0)) == 0


def test_apply_records_raise_policy_reports_the_record():
    book = OrderBook(2, 0, crossed="raise")
    arr = records((D, A | L, 0, 100, 1), (D, L, 0, 100, 1), (D, L, 0, 50, 1))
    with pytest.raises(CrossedBookError, match="record 1"):
        book.apply_records(arr)
    assert book.bid_count == 1                        # stopped right after the crossing message


def test_reads_on_an_empty_book():
    book = OrderBook(2, 3)
    assert np.isnan(book.best_bid) and np.isnan(book.mid) and np.isnan(book.microprice)
    assert book.best_bid_raw is None and book.best_bid_size == 0.0
    assert np.isnan(book.imbalance()) and np.isnan(book.vwap(Side.BUY, 1)) and book.depth(ASK) == 0
    assert book.top(2).shape == (2, 4) and np.isnan(book.top(2)).all()
    assert book.to_numpy().shape == (0,) and repr(book).endswith("[- | -] update_id=0>")


def test_reads():
    book = OrderBook(2, 1)
    book.apply_snapshot(bids=[("99.5", "2"), ("99", "3")], asks=[("100", "1"), ("101", "4")], update_id=5)
    assert book.bbo() == (99.5, 2.0, 100.0, 1.0)
    assert book.spread == 0.5 and book.mid == 99.75
    assert book.microprice == pytest.approx((99.5 * 1 + 100 * 2) / 3)
    assert book.imbalance() == pytest.approx(1 / 3) and book.imbalance(2) == pytest.approx(0)
    assert book.vwap(Side.BUY, 3) == pytest.approx((100 * 1 + 101 * 2) / 3)
    assert book.slippage(Side.BUY, 3) == pytest.approx((100 * 1 + 101 * 2) / 3 - 100)
    assert book.vwap(Side.SELL, 5) == pytest.approx((99.5 * 2 + 99 * 3) / 5)
    assert np.isnan(book.vwap(Side.SELL, 5.1))
    assert book.size_at(ASK, "101") == 4.0 and book.size_at_raw(BID, 9950) == 20
    assert book.depth(BID) == 5.0 and book.depth(ASK, 1) == 1.0
    out = np.empty((3, 4))
    assert book.top(3, out=out) is out
    assert out[:2].tolist() == [[99.5, 2.0, 100.0, 1.0], [99.0, 3.0, 101.0, 4.0]] and np.isnan(out[2]).all()
    levels = book.to_numpy()
    assert levels["side"].tolist() == [0, 0, 1, 1] and levels["price"].tolist() == [99.5, 99, 100, 101]
    assert levels.dtype == extrema.BOOK_LEVEL_DTYPE
    assert repr(book) == "<OrderBook instrument_id=0 bids=2 asks=2 [99.50 x 2.0 | 100.00 x 1.0] update_id=5>"


def test_copy_and_pickle_are_independent_and_equal():
    book = OrderBook(4, 2, tick=5, instrument_id=3, ladder_ticks=64, crossed="prune")
    rng = np.random.default_rng(1)
    for p in rng.integers(0, 100_000, 500):
        book.apply_delta(BID if p < 50_000 else ASK, int(p) * 5, int(rng.integers(0, 9)), last=False)
    for clone in (book.copy(), pickle.loads(pickle.dumps(book))):
        assert clone == book and clone.crossed_policy == "prune" and clone.ladder_ticks == 64
        assert clone.last_update_id == book.last_update_id and clone.stats == book.stats | {"recenters": clone.stats["recenters"]}
        clone.apply_delta(BID, 5, 1)
        assert clone != book


def test_memory_follows_live_levels_not_the_price_range():
    """The touch wanders from 20,000.00 to 120,000.00 at a 0.01 tick (10 million ticks) while about
    200 levels stay live: memory stays bounded and the book matches a brute-force dict."""
    book = OrderBook(2, 0, ladder_ticks=4096)
    live = {BID: {}, ASK: {}}
    rng = np.random.default_rng(3)
    mid = 2_000_000
    start_bytes = None
    while mid < 12_000_000:
        mid += int(rng.integers(0, 2_000))
        for side, sign in ((BID, -1), (ASK, 1)):
            p = mid + sign * int(rng.integers(1, 50))
            book.apply_delta(side, p, 1, last=False)
            live[side][p] = 1
            while len(live[side]) > 100:     # forget the level furthest from the touch
                far = min(live[side]) if side == BID else max(live[side])
                book.apply_delta(side, far, 0, last=False)
                del live[side][far]
        # keep the book uncrossed, as a venue would
        for p in [p for p in live[ASK] if p <= max(live[BID])]:
            book.apply_delta(ASK, p, 0, last=False)
            del live[ASK][p]
        if start_bytes is None:
            start_bytes = book.nbytes
    assert book.levels(BID, raw=True)[:, 0].tolist() == sorted(live[BID], reverse=True)
    assert book.levels(ASK, raw=True)[:, 0].tolist() == sorted(live[ASK])
    assert book.nbytes <= start_bytes + 2 * 64 * 16 * 8      # overflow capacity may grow a little, no more
    assert book.stats["recenters"] > 0
