"""The backtest benchmark's data (benches/workloads/backtest_data.py): a consistent L2 + trade stream, and
conversions that feed extrema, NautilusTrader and hftbacktest the same events.

The peers are not extrema dependencies: their conversions are checked when they are installed."""
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHES = Path(__file__).resolve().parents[2] / "benches"
if str(BENCHES) not in sys.path:
    sys.path.insert(0, str(BENCHES))

from workloads import backtest_data as bd  # noqa: E402

N = 5_000


@pytest.fixture(scope="module")
def stream():
    return bd.generate(N, seed=11)


def test_stream_is_a_consistent_book_with_trades_at_the_touch(stream):
    books = ({}, {})                     # side -> {price: qty}
    checked_messages = 0
    for k, s, p, q, last in zip(stream.kind.tolist(), stream.side.tolist(), stream.price.tolist(),
                                stream.qty.tolist(), stream.last.tolist()):
        if k == bd.TRADE:
            resting = books[bd.ASK if s == bd.BID else bd.BID]        # the aggressor takes the other side
            touch = min(resting) if s == bd.BID else max(resting)
            assert p == touch and 0 < q <= resting[p]
        else:
            side = books[s]
            if q == 0:
                assert p in side, "a delete of a level that does not exist"
                del side[p]
            else:
                side[p] = q
        if last and books[0] and books[1]:
            assert max(books[0]) < min(books[1]), "the book is crossed at the end of a message"
            assert len(books[0]) == bd.LEVELS and len(books[1]) == bd.LEVELS
            checked_messages += 1
    assert checked_messages == stream.n_messages
    assert stream.snapshot[: 2 * bd.LEVELS].all() and not stream.snapshot[2 * bd.LEVELS:].any()
    assert 0.05 < stream.n_trades / len(stream) < 0.2
    assert (np.diff(stream.ts_local) >= 0).all() and (stream.ts_local > stream.ts_exchange).all()
    assert (np.diff(stream.update_id) >= 0).all() and len(stream) >= N


def test_generation_is_seeded(stream):
    again = bd.generate(N, seed=11)
    other = bd.generate(N, seed=12)
    for col in ("kind", "side", "price", "qty", "ts_exchange", "ts_local", "last"):
        assert np.array_equal(getattr(stream, col), getattr(again, col))
    assert not np.array_equal(stream.price[:len(other)], other.price[:len(stream)])


def test_extrema_records_carry_the_stream(stream):
    from extrema import RecordFlag, RecordKind
    rec = bd.to_extrema(stream, instrument_id=3)
    assert bd.check_conversions(stream, extrema=rec) == []
    assert (rec["instrument_id"] == 3).all()
    book = rec[rec["kind"] == int(RecordKind.BOOK_DELTA)]
    assert ((book["flags"] & int(RecordFlag.LAST)) != 0).sum() == stream.last[stream.kind == bd.DEPTH].sum()
    assert (book["flags"][: 2 * bd.LEVELS] & int(RecordFlag.SNAPSHOT)).all()
    # and the check notices a changed event
    rec["quantity"][100] += 1
    assert any("qty" in p for p in bd.check_conversions(stream, extrema=rec))


def test_extrema_book_ends_where_the_reference_does(stream):
    from extrema import OrderBook
    rec = bd.to_extrema(stream, instrument_id=0)
    from extrema import RecordKind
    book = OrderBook(bd.PRICE_PRECISION, bd.SIZE_PRECISION)
    book.apply_records(rec[rec["kind"] == int(RecordKind.BOOK_DELTA)])
    ref = ({}, {})
    for k, s, p, q in zip(stream.kind.tolist(), stream.side.tolist(), stream.price.tolist(), stream.qty.tolist()):
        if k == bd.DEPTH:
            if q:
                ref[s][p] = q
            else:
                ref[s].pop(p, None)
    assert book.best_bid_raw == max(ref[0]) and book.best_ask_raw == min(ref[1])


# The NautilusTrader and hftbacktest conversions are checked by the suite itself before anything is timed
# (benches/suites/backtest.py runs check_conversions on every run and stops on a difference): those peers
# are not installed by the default test run, so checks of them here could only skip.
