"""The record layout: the numpy dtype and the compiled C struct are the same bytes."""
import pytest

import extrema
from extrema import RECORD_DTYPE, CONTINUATION_DTYPE, RecordKind, RecordFlag
from extrema._core import records


def test_dtype_matches_the_c_struct_field_by_field():
    layout = records.c_layout()
    assert RECORD_DTYPE.itemsize == layout["__size__"] == extrema.RECORD_SIZE == 64
    for name in RECORD_DTYPE.names:
        assert RECORD_DTYPE.fields[name][1] == layout[name], name
    assert set(RECORD_DTYPE.names) == set(layout) - {"__size__"}


def test_continuation_view_shares_the_header():
    assert CONTINUATION_DTYPE.itemsize == 64
    for name in ("kind", "flags", "instrument_id"):
        assert CONTINUATION_DTYPE.fields[name][1] == RECORD_DTYPE.fields[name][1]
    arr = extrema.empty_records(2)
    arr[1]["kind"] = RecordKind.CONTINUATION
    arr[1]["ts_exchange"] = 7
    arr[1]["aux1"] = -3
    payload = arr.view(CONTINUATION_DTYPE)[1]["payload"]
    assert payload[0] == 7 and payload[6] == -3


def test_kinds_and_flags_are_stable():
    # These numbers are the journal format: changing one breaks every recorded file.
    assert [k.value for k in RecordKind] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15]
    assert (RecordKind.MARK_PRICE, RecordKind.BALANCE, RecordKind.POSITION) == (10, 11, 12)
    assert RecordFlag.ASK == 1 and RecordFlag.SNAPSHOT == 2 and RecordFlag.LAST == 4


def test_order_vocabulary_is_stable():
    # ORDER_UPDATE / FILL / POSITION payloads carry these numbers: they are journal format too.
    assert [s.name for s in extrema.OrderStatus] == [
        "INITIALIZED", "SUBMITTED", "ACCEPTED", "PARTIALLY_FILLED", "FILLED", "CANCELLED", "REJECTED", "EXPIRED",
        "PENDING_CANCEL", "PENDING_REPLACE", "UNKNOWN"]
    assert [s.value for s in extrema.OrderStatus] == list(range(11))
    assert [t.name for t in extrema.OrderType][:3] == ["UNKNOWN", "MARKET", "LIMIT"]
    assert [t.value for t in extrema.OrderType] == list(range(10))
    assert [t.value for t in extrema.TimeInForce] == list(range(7))
    assert [t.value for t in extrema.ExecType] == list(range(10))
    assert [t.value for t in extrema.AccountUpdateReason] == list(range(19))
    assert extrema.ASSET_PRECISION == extrema.RATE_PRECISION == 8


def test_continuation_count_round_trips():
    flags = RecordFlag.ASK | RecordFlag.LAST
    for n in range(16):
        packed = extrema.with_continuations(flags, n)
        assert extrema.continuation_count(packed) == n
        assert packed & 0x0FFF == flags
    with pytest.raises(ValueError):
        extrema.with_continuations(0, 16)


def test_bytes_are_shared_with_compiled_code():
    # A record written through numpy is read by the compiled book without conversion.
    arr = extrema.empty_records(1)
    arr[0] = (RecordKind.BOOK_DELTA, RecordFlag.LAST, 0, 1, 2, 5, 12345, 7, 0, 0)
    book = extrema.OrderBook(2, 0)
    assert book.apply_records(arr) == 1
    assert book.best_bid_raw == 12345 and book.size_at_raw(0, 12345) == 7 and book.last_update_id == 5


@pytest.mark.parametrize("mod", ["book", "clock", "fixedpoint", "instruments", "records"])
def test_compiled_modules_are_what_ran(mod):
    module = getattr(__import__("extrema._core", fromlist=[mod]), mod)
    assert module.__file__.endswith(".so"), module.__file__
    assert module.__name__ == f"extrema._core.{mod}"
