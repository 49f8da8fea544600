"""The connection glue's compiled path: a downstream Cython module (plain C, no simdjson headers) cimports
the Binance codec and runs decode_into -> DepthSync.accept_c -> OrderBook.apply_record without the GIL,
and ends with the same book as the Python API."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from extrema import InstrumentRegistry, Market, OrderBook, BookSide
from extrema._core.binance import BinanceDecoder, DepthSync, SyncStatus

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from test_cimport import compile_against_extrema  # noqa: E402

GLUE = r'''
# cython: language_level=3
from libc.stdint cimport int64_t
from extrema._core.types cimport Record
from extrema._core.book cimport OrderBook
from extrema._core.binance cimport BinanceDecoder, DepthSync, FrameInfo

def feed(BinanceDecoder decoder, DepthSync sync, OrderBook book, list frames, int64_t ts_local):
    """Per frame: decode, judge, apply what is in sync. Returns the statuses."""
    cdef Record out[256]
    cdef Record reset
    cdef Py_ssize_t n, i
    cdef int status
    cdef bytes frame
    cdef const char *data
    cdef Py_ssize_t size
    statuses = []
    for frame in frames:
        data = frame
        size = len(frame)
        with nogil:
            n = decoder.decode_into(data, size, ts_local, out, 256)
            status = sync.accept_c(&decoder.info, out, n, ts_local, &reset)
            if status == 0:
                for i in range(n):
                    book.apply_record(&out[i])
            elif status == 4:
                book.apply_record(&reset)
        statuses.append(status)
    return statuses
'''


@pytest.fixture(scope="module")
def glue(tmp_path_factory):
    return compile_against_extrema(GLUE, "binance_glue", tmp_path_factory.mktemp("glue"))


def test_compiled_glue_builds_the_same_book(glue):
    registry = InstrumentRegistry()
    inst = registry.register("BTC_USDT_PERP", Market.BINANCE_USDM, "0.10", "0.001", venue_symbol="BTCUSDT")
    decoder = BinanceDecoder(registry, Market.BINANCE_USDM)
    sync = DepthSync(Market.BINANCE_USDM)
    book = OrderBook.for_instrument(inst)

    def frame(U, u, pu, bid, size):
        return json.dumps({"e": "depthUpdate", "E": 1, "T": 1, "s": "BTCUSDT", "U": U, "u": u, "pu": pu,
                           "b": [[bid, size]], "a": [["70000.0", "1.000"]]}).encode()

    frames = [frame(1, 5, 0, "69990.0", "1.000"), frame(6, 9, 5, "69991.0", "2.000"),
              frame(10, 12, 9, "69990.0", "0"), frame(13, 14, 11, "69000.0", "1.000")]
    # the first frame asks for a snapshot and is buffered
    assert glue.feed(decoder, sync, book, frames[:1], 7) == [SyncStatus.NEED_SNAPSHOT]
    snap = decoder.decode_depth_snapshot(b'{"lastUpdateId":4,"E":1,"T":1,"bids":[["69980.0","5.000"]],'
                                         b'"asks":[["70001.0","1.000"]]}', inst, 7)
    status, records = sync.snapshot(snap)
    assert status == SyncStatus.SYNCED
    book.apply_records(records)
    # in sync, in sync, in sync, then pu 11 != 12: a gap, the reset empties the book
    assert glue.feed(decoder, sync, book, frames[1:3], 7) == [SyncStatus.EMIT, SyncStatus.EMIT]
    assert book.levels(BookSide.BID, raw=True).tolist() == [[699910, 2000], [699800, 5000]]
    assert book.levels(BookSide.ASK, raw=True).tolist() == [[700000, 1000], [700010, 1000]]
    assert glue.feed(decoder, sync, book, frames[3:], 7) == [SyncStatus.GAP]
    assert len(book.levels(BookSide.BID)) == 0 and sync.needs_snapshot(inst.id)
