"""Real Binance spot and USD-M captures replayed through the compiled OrderBook and the reference book.

Each symbol is synchronised by Binance's documented rule (tests/models/binance_depth.py). The compiled
book reads the wire strings with extrema.parse_decimal and is fed either as RECORD_DTYPE records through
apply_records (whole stream in one batch, or one batch per message) or through apply_snapshot +
apply_delta; the reference reads them with Python's decimal. Both must end level-for-level identical,
and along the way they must agree after every message.
"""

import math
from decimal import Decimal
from functools import reduce

import numpy as np
import pytest

import extrema
from extrema import RECORD_DTYPE, BookSide, OrderBook, RecordFlag, RecordKind, Side
from models.binance_depth import ASK, BID, SPOT, USDM, replay_capture
from models.reference_book import BUY, SELL, ReferenceBook, to_raw

FEEDS = ("records_one_batch", "delta", "records_per_message", "delta")  # assigned to symbols in turn
REL = 1e-12


@pytest.fixture(scope="module")
def captures(fixtures_dir):
    return fixtures_dir / "binance" / "captures"


def raw(text, precision):
    return extrema.parse_decimal(text, precision)


def message_records(rows, changes, pp, sp, flags, sequence, first_id, prev_id):
    """One exchange message as records: one per level change, LAST on the final one."""
    for i, (side, price, size) in enumerate(changes):
        f = flags | (RecordFlag.ASK if side == ASK else 0) | (RecordFlag.LAST if i == len(changes) - 1 else 0)
        rows.append((RecordKind.BOOK_DELTA, f, 0, 0, 0, sequence, raw(price, pp), raw(size, sp), first_id, prev_id))


def feed_compiled(book, replay, feed, after_message):
    pp, sp = replay.price_precision, replay.size_precision
    snap = replay.snapshot
    snap_changes = [(BID, p, q) for p, q in snap.bids] + [(ASK, p, q) for p, q in snap.asks]
    if feed == "delta":
        book.apply_snapshot(snap.bids, snap.asks, snap.last_update_id)   # wire strings as user values
        after_message()
        for diff in replay.applied:
            for i, (side, price, size) in enumerate(diff.changes):
                assert book.apply_delta(BookSide(side), raw(price, pp), raw(size, sp), diff.final_update_id,
                                        last=i == len(diff.changes) - 1)
            after_message()
        return
    batches, rows = [], []
    message_records(rows, snap_changes, pp, sp, RecordFlag.SNAPSHOT, snap.last_update_id, 0, 0)
    batches.append(rows)
    for diff in replay.applied:
        rows = rows if feed == "records_one_batch" else []
        message_records(rows, diff.changes, pp, sp, 0, diff.final_update_id, diff.first_update_id,
                        diff.prev_final_update_id or 0)
        if rows is not batches[-1]:
            batches.append(rows)
    for rows in batches:
        records = np.array(rows, dtype=RECORD_DTYPE)
        assert book.apply_records(records) == len(records)
        after_message()


def feed_reference(ref, replay, after_message):
    pp, sp = replay.price_precision, replay.size_precision
    snap = replay.snapshot
    ref.apply_snapshot([(to_raw(Decimal(p), pp), to_raw(Decimal(q), sp)) for p, q in snap.bids],
                       [(to_raw(Decimal(p), pp), to_raw(Decimal(q), sp)) for p, q in snap.asks],
                       snap.last_update_id)
    after_message()
    for diff in replay.applied:
        for i, (side, price, size) in enumerate(diff.changes):
            ref.apply_delta(side, to_raw(Decimal(price), pp), to_raw(Decimal(size), sp), diff.final_update_id,
                            last=i == len(diff.changes) - 1)
        after_message()


def tick_of(replay):
    """The largest tick every price of the capture sits on (e.g. 0.0001 = raw 10000 at 8 decimals)."""
    pp = replay.price_precision
    prices = [p for p, _ in replay.snapshot.bids + replay.snapshot.asks]
    prices += [p for d in replay.applied for _, p, _ in d.changes]
    return reduce(math.gcd, (raw(p, pp) for p in prices))


@pytest.mark.parametrize("market", [SPOT, USDM])
def test_capture_replay_books_match(captures, market):
    replays = replay_capture(captures, market)
    assert len(replays) == 4
    total_applied = 0
    for n, (symbol, replay) in enumerate(sorted(replays.items())):
        assert replay.gap is None, f"{symbol}: the capture's chain broke: {replay.gap}"
        feed = FEEDS[n % len(FEEDS)]
        pp, sp = replay.price_precision, replay.size_precision
        # Half the symbols on their real tick with the smallest ladder, so the compiled book re-centres.
        tick, ladder = (tick_of(replay), 64) if n % 2 == 0 else (1, 4096)
        book = OrderBook(pp, sp, tick=tick, ladder_ticks=ladder, crossed="raise")
        ref = ReferenceBook(pp, sp, tick=tick, crossed="raise")

        # The whole book after every message (after every batch for the one-batch feed).
        states = {"compiled": [], "reference": []}
        feed_compiled(book, replay, feed, lambda: states["compiled"].append(
            (book.last_update_id, book.levels(BookSide.BID, raw=True).tobytes(),
             book.levels(BookSide.ASK, raw=True).tobytes())))
        feed_reference(ref, replay, lambda: states["reference"].append(
            (ref.last_update_id, np.array(ref.levels(BID), dtype=np.int64).tobytes(),
             np.array(ref.levels(ASK), dtype=np.int64).tobytes())))
        if feed == "records_one_batch":
            states["reference"] = states["reference"][-1:]   # snapshot and every diff in one batch
        assert len(states["compiled"]) == len(states["reference"])
        for i, (got, want) in enumerate(zip(states["compiled"], states["reference"])):
            assert got == want, f"{symbol} ({feed}): books differ after message {i}"

        for side in (BID, ASK):
            got = [(int(p), int(q)) for p, q in book.levels(BookSide(side), raw=True)]
            assert got == ref.levels(side), f"{symbol} ({feed}): side {side} differs"
        assert book.last_update_id == ref.last_update_id == replay.applied[-1].final_update_id
        assert book.stats["stale"] == book.stats["rejected"] == book.stats["crossed"] == 0
        assert not book.is_crossed
        for order_side in (BUY, SELL):
            depth = ref.depth_raw(ASK if order_side == BUY else BID)
            for size_raw in (1, depth // 3, depth):
                size = Decimal(size_raw).scaleb(-sp)
                want = ref.vwap(order_side, size)
                assert math.isclose(book.vwap(Side(order_side), size), want, rel_tol=REL), (symbol, size)
        assert math.isclose(book.microprice, ref.microprice, rel_tol=REL)
        assert math.isclose(book.imbalance(5), ref.imbalance(5), rel_tol=REL, abs_tol=REL)

        # Not vacuous: diffs were applied, and they changed the book the snapshot alone gives.
        assert replay.applied, f"{symbol}: no in-sync diff in the capture"
        snapshot_only = ReferenceBook(pp, sp, tick=tick)
        feed_reference(snapshot_only, type(replay)(**{**vars(replay), "applied": []}), lambda: None)
        assert snapshot_only.levels(BID) != ref.levels(BID) or snapshot_only.levels(ASK) != ref.levels(ASK), symbol
        total_applied += len(replay.applied)
    # the captures hold 172 (spot) and 752 (USD-M) in-sync diffs
    assert total_applied >= (150 if market == SPOT else 700)
