"""Hand-computed checks of the reference book (tests/models/reference_book.py), so the oracle the
compiled book is compared with is itself checked against arithmetic done by hand."""

import math
from fractions import Fraction

import numpy as np
import pytest

from models.reference_book import (ASK, BID, BUY, FLAG_ASK, FLAG_LAST, FLAG_SNAPSHOT, KIND_BOOK_DELTA,
                                   KIND_BOOK_RESET, SELL, CrossedBookError, ReferenceBook, to_raw)

# The record layout of the SPEC, written out here so these tests need nothing compiled.
RECORD_DTYPE = np.dtype([("kind", "<u2"), ("flags", "<u2"), ("instrument_id", "<u4"), ("ts_exchange", "<i8"),
                         ("ts_local", "<i8"), ("sequence", "<i8"), ("price", "<i8"), ("quantity", "<i8"),
                         ("aux0", "<i8"), ("aux1", "<i8")])
KIND_TRADE = 2


def make_book(crossed="flag"):
    """price precision 2, size precision 3, tick 0.05:
        bids 100.00 x 1.500, 99.95 x 2.000, 99.50 x 0.250
        asks 100.10 x 0.500, 100.25 x 1.000, 101.00 x 3.000"""
    book = ReferenceBook(2, 3, tick=5, crossed=crossed)
    book.apply_snapshot([(10000, 1500), (9995, 2000), (9950, 250)],
                        [(10010, 500), (10025, 1000), (10100, 3000)], update_id=100)
    return book


def records(*rows):
    out = np.zeros(len(rows), dtype=RECORD_DTYPE)
    for i, (kind, flags, instrument, seq, price, qty) in enumerate(rows):
        out[i] = (kind, flags, instrument, 0, 0, seq, price, qty, 0, 0)
    return out


def test_record_dtype_is_one_64_byte_slot():
    assert RECORD_DTYPE.itemsize == 64


def test_reads_by_hand():
    book = make_book()
    assert book.levels(BID) == [(10000, 1500), (9995, 2000), (9950, 250)]
    assert book.levels(ASK, 2) == [(10010, 500), (10025, 1000)]
    assert (book.best_bid_raw, book.best_ask_raw) == (10000, 10010)
    assert book.bbo() == (100.0, 1.5, 100.1, 0.5)
    assert (book.bid_count, book.ask_count, book.last_update_id) == (3, 3, 100)
    assert book.spread == pytest.approx(0.10, rel=1e-15)
    assert book.mid == 100.05
    # (100.00 * 0.5 + 100.10 * 1.5) / 2.0 = 200.15 / 2
    assert book.microprice == 100.075
    assert book.imbalance(1) == 0.5               # (1.5 - 0.5) / 2.0
    assert book.imbalance(2) == 0.4               # (3.5 - 1.5) / 5.0
    assert book.imbalance(3) == -1 / 11           # (3.75 - 4.5) / 8.25
    assert book.depth(BID) == 3.75
    assert book.depth(ASK, 2) == 1.5
    assert book.depth(ASK, 0) == 0.0
    assert book.size_at_raw(BID, 9995) == 2000
    assert book.size_at_raw(BID, 9990) == 0
    assert book.size_at(ASK, "101") == 3.0
    assert book.top(4)[0] == (100.0, 1.5, 100.1, 0.5)
    assert book.top(4)[2] == (99.5, 0.25, 101.0, 3.0)
    assert all(math.isnan(x) for x in book.top(4)[3])


def test_vwap_and_slippage_by_hand():
    book = make_book()
    # BUY 1.0 takes 0.5 @ 100.10 and 0.5 @ 100.25
    assert book.vwap(BUY, 1.0) == 100.175
    assert book.slippage(BUY, 1.0) == 0.075                            # 100.175 - 100.10
    # SELL 3.6 takes 1.5 @ 100.00, 2.0 @ 99.95 and 0.1 @ 99.50: 359.85 / 3.6 = 7197 / 72 exactly
    assert book.vwap(SELL, 3.6) == float(Fraction(7197, 72))
    assert book.vwap(SELL, "3.6") == book.vwap(SELL, 3.6)
    assert book.slippage(SELL, 3.6) == float(Fraction(3, 72))       # 100 - 7197 / 72
    # exactly the whole ask side: (50.05 + 100.25 + 303.00) / 4.5 = 453.3 / 4.5 = 1511 / 15
    assert book.vwap(BUY, 4.5) == float(Fraction(1511, 15))
    # one lot more than the book holds
    assert math.isnan(book.vwap(SELL, 3.751))
    assert math.isnan(book.slippage(BUY, 4.501))
    # inside the best level there is no slippage
    assert book.vwap(SELL, 1.5) == 100.0 and book.slippage(SELL, 1.5) == 0.0
    with pytest.raises(ValueError):
        book.vwap(BUY, 0.0001)  # finer than the size precision (3)
    with pytest.raises(ValueError):
        book.vwap(BUY, -1)
    assert math.isnan(book.vwap(BUY, 0)) and math.isnan(book.slippage(SELL, 0))


def test_empty_book_reads():
    book = ReferenceBook(2, 3)
    assert book.best_bid_raw is None and book.best_ask_raw is None
    assert math.isnan(book.best_bid) and math.isnan(book.best_ask)
    assert book.best_bid_size == 0.0 and book.best_ask_size == 0.0
    assert all(math.isnan(x) for x in (book.spread, book.mid, book.microprice, book.imbalance(1)))
    assert math.isnan(book.vwap(BUY, 1))
    book.apply_delta(BID, 100, 5)
    assert book.imbalance(1) == 1.0           # only bids
    assert math.isnan(book.mid) and math.isnan(book.microprice)


def test_delta_semantics():
    book = make_book()
    assert book.apply_delta(BID, 9990, 700, update_id=101)        # insert
    assert book.apply_delta(BID, 10000, 0, update_id=101)         # delete in the same message id
    assert book.apply_delta(ASK, 10005, 0, update_id=102)         # deleting an absent level is a no-op
    assert book.levels(BID) == [(9995, 2000), (9990, 700), (9950, 250)]
    assert book.last_update_id == 102
    assert book.apply_delta(ASK, 10010, 0, update_id=101) is False  # stale: dropped, counted
    assert book.stats["stale"] == 1 and book.size_at_raw(ASK, 10010) == 500
    assert book.last_update_id == 102
    with pytest.raises(ValueError, match="tick"):
        book.apply_delta(BID, 9991, 1, update_id=103)               # 99.91 is not a multiple of 0.05
    with pytest.raises(ValueError, match="negative"):
        book.apply_delta(BID, 9990, -1, update_id=103)
    assert book.levels(BID)[1] == (9990, 700) and book.last_update_id == 102
    book.update(ASK, "100.05", "0.25")                               # user values, exact, no update id
    assert book.levels(ASK, 1) == [(10005, 250)]
    with pytest.raises(ValueError):
        book.update(ASK, "100.051", "1")


def test_snapshot_replaces_all_or_nothing():
    book = make_book()
    book.apply_snapshot([(5000, 1)], [], update_id=7)                   # an older id is accepted: it replaces
    assert book.levels(BID) == [(5000, 1)] and book.levels(ASK) == [] and book.last_update_id == 7
    for bids, asks in [([(10000, 1)], [(10011, 1)]), ([(10000, 1), (9995, -1)], [])]:
        book = make_book()
        with pytest.raises(ValueError):
            book.apply_snapshot(bids, asks, update_id=200)              # off the 0.05 tick / negative size
        assert book == make_book() and book.last_update_id == 100
    book = make_book()
    with pytest.raises(ValueError):
        book.apply_snapshot_values([("100.00", "1"), ("99.951", "1")], [], update_id=200)  # too precise
    assert book == make_book() and book.last_update_id == 100


def test_update_id_zero_means_none():
    book = make_book()                                                  # last_update_id 100
    assert book.apply_delta(BID, 9000, 1)                               # id 0: not stale ...
    assert book.last_update_id == 100                                   # ... and the id is kept
    assert book.apply_delta(BID, 9000, 2, update_id=100)
    assert book.apply_delta(BID, 9000, 3, update_id=99) is False


def test_stale_is_dropped_before_validation():
    book = make_book()
    assert book.apply_delta(BID, 9991, -1, update_id=99) is False      # stale: its content is not looked at
    assert book.stats["stale"] == 1


def test_clear():
    book = make_book()
    book.clear()
    assert book.levels(BID) == book.levels(ASK) == [] and book.last_update_id == 0 and not book.is_crossed
    assert book.apply_delta(BID, 10000, 1, update_id=1)


def test_crossed_flag_only_at_message_end():
    book = make_book("flag")
    book.apply_delta(BID, 10010, 100, update_id=101, last=False)    # locks the book mid-message
    assert not book.is_crossed and book.stats["crossed"] == 0
    book.apply_delta(BID, 9900, 100, update_id=101, last=True)
    assert book.is_crossed and book.stats["crossed"] == 1
    assert book.levels(ASK, 1) == [(10010, 500)]                      # flag keeps both sides
    book.apply_delta(BID, 10010, 0, update_id=102)
    assert not book.is_crossed and book.stats["crossed"] == 1


def test_crossed_raise_keeps_the_levels():
    book = make_book("raise")
    with pytest.raises(CrossedBookError):
        book.apply_delta(ASK, 9995, 100, update_id=101)
    assert book.is_crossed and book.stats["crossed"] == 1
    assert book.levels(ASK, 1) == [(9995, 100)] and book.levels(BID, 1) == [(10000, 1500)]


def test_crossed_prune_single_level():
    book = make_book("prune")
    book.apply_delta(BID, 10025, 1000, update_id=101)                 # crosses 100.10 and locks 100.25
    assert book.levels(ASK) == [(10100, 3000)]
    assert book.levels(BID, 2) == [(10025, 1000), (10000, 1500)]
    assert not book.is_crossed and book.stats["crossed"] == 1


def test_crossed_prune_the_side_set_last_wins():
    book = make_book("prune")
    book.apply_delta(ASK, 9995, 100, update_id=101, last=False)       # would take out bids 100.00, 99.95
    book.apply_delta(BID, 10050, 100, update_id=101, last=True)       # set last: asks <= 100.50 go
    assert book.levels(ASK) == [(10100, 3000)]
    assert book.levels(BID) == [(10050, 100), (10000, 1500), (9995, 2000), (9950, 250)]
    assert not book.is_crossed
    book = make_book("prune")
    book.apply_delta(BID, 10050, 100, update_id=101, last=False)      # crosses asks 100.10, 100.25
    book.apply_delta(ASK, 10075, 100, update_id=101, last=True)       # set last, although it crosses nothing:
    assert book.levels(BID, 1) == [(10000, 1500)]                      # the asks win, bids >= 100.10 go
    assert book.levels(ASK) == [(10010, 500), (10025, 1000), (10075, 100), (10100, 3000)]
    assert not book.is_crossed and book.stats["crossed"] == 1


def test_to_raw():
    assert to_raw("0.35130000", 8) == 35130000
    assert to_raw(b"7.6110", 4) == 76110
    assert to_raw("1.5e-3", 4) == 15
    assert to_raw(0.1, 1) == 1
    assert to_raw(2, 3) == 2000
    for bad in ("0.15", float("nan"), "abc", float("inf")):
        with pytest.raises(ValueError):
            to_raw(bad, 1)


def test_apply_records():
    book = ReferenceBook(2, 3, instrument_id=7)
    batch = records(
        (KIND_BOOK_DELTA, FLAG_SNAPSHOT, 7, 50, 10000, 10),
        (KIND_BOOK_DELTA, FLAG_SNAPSHOT | FLAG_ASK | FLAG_LAST, 7, 50, 10100, 20),
        (KIND_BOOK_DELTA, FLAG_LAST, 8, 51, 10050, 99),                       # other instrument: skipped
        (KIND_TRADE, FLAG_LAST, 7, 51, 10050, 99),                            # not a book record: skipped
        (KIND_BOOK_DELTA, FLAG_ASK, 7, 51, 10090, 5),
        (KIND_BOOK_DELTA, FLAG_ASK | FLAG_LAST, 7, 51, 10100, 0),
        (KIND_BOOK_DELTA, FLAG_LAST, 7, 49, 9000, 1),                         # stale
    )
    assert book.apply_records(batch) == 4
    assert book.levels(BID) == [(10000, 10)] and book.levels(ASK) == [(10090, 5)]
    assert book.last_update_id == 51 and book.stats["stale"] == 1
    # a new snapshot message replaces everything
    assert book.apply_records(records((KIND_BOOK_DELTA, FLAG_SNAPSHOT | FLAG_LAST, 7, 60, 9000, 1))) == 1
    assert book.levels(BID) == [(9000, 1)] and book.levels(ASK) == []
    # BOOK_RESET clears the book
    assert book.apply_records(records((KIND_BOOK_RESET, 0, 7, 0, 0, 0))) == 1
    assert book.bid_count == 0 and book.last_update_id == 0


def test_apply_records_strict_and_lenient():
    bad = records(
        (KIND_BOOK_DELTA, FLAG_LAST, 0, 1, 100, 1),
        (KIND_BOOK_DELTA, FLAG_LAST, 0, 2, 200, -5),                          # negative size
        (KIND_BOOK_DELTA, FLAG_LAST, 0, 3, 300, 1),
    )
    strict = ReferenceBook(0, 0)
    with pytest.raises(ValueError, match="record 1"):
        strict.apply_records(bad)
    assert strict.levels(BID) == [(100, 1)]                                 # earlier records stay applied
    lenient = ReferenceBook(0, 0)
    assert lenient.apply_records(bad, strict=False) == 2
    assert lenient.levels(BID) == [(300, 1), (100, 1)] and lenient.stats["rejected"] == 1


def test_copy_and_equality():
    book = make_book()
    twin = book.copy()
    assert twin == book
    twin.apply_delta(BID, 10000, 0, update_id=101)
    assert twin != book and book.best_bid_raw == 10000


def test_an_invalid_record_has_no_effect():
    book = ReferenceBook(0, 0)
    book.apply_delta(BID, 100, 1, update_id=5)
    batch = records((KIND_BOOK_DELTA, FLAG_SNAPSHOT, 0, 9, 101, -1),                 # would open a snapshot
                    (KIND_BOOK_DELTA, FLAG_LAST, 0, 12, 102, -1))
    assert book.apply_records(batch, strict=False) == 0
    assert book.levels(BID) == [(100, 1)] and book.last_update_id == 5 and book.stats["rejected"] == 2
    with pytest.raises(ValueError, match="record 0"):
        book.apply_records(batch)
    assert book.levels(BID) == [(100, 1)] and book.last_update_id == 5


def test_a_delta_record_ends_a_snapshot_cut_short():
    book = ReferenceBook(0, 0)
    first = records((KIND_BOOK_DELTA, FLAG_SNAPSHOT, 0, 9, 100, 1),
                    (KIND_BOOK_DELTA, FLAG_SNAPSHOT, 0, 9, 101, -1))                # strict error: no LAST
    with pytest.raises(ValueError):
        book.apply_records(first)
    book.apply_records(records((KIND_BOOK_DELTA, 0, 0, 10, 90, 1),                # no LAST either
                               (KIND_BOOK_DELTA, FLAG_SNAPSHOT | FLAG_LAST, 0, 11, 80, 1)))
    assert book.levels(BID) == [(80, 1)]                                            # the new snapshot cleared
