"""The 64-byte record: one layout for the ring, the journal, backtests, ZeroMQ frames and numpy.

`RECORD_DTYPE` is byte-identical to the C struct `ex_record` (types.pxd), so an array of records can
be handed to compiled code (OrderBook.apply_records, the ring, the journal) without conversion.

Fields: kind (u2), flags (u2), instrument_id (u4), ts_exchange (i8, µs UTC), ts_local (i8, µs UTC,
taken when the frame arrived), sequence (i8), price (i8 raw), quantity (i8 raw), aux0 (i8), aux1 (i8).

Single-slot kinds
-----------------
BOOK_DELTA   price, quantity (0 deletes the level); flags ASK for the ask side, SNAPSHOT when part of a
             full snapshot, LAST on the final record of one venue message; sequence = the message's final
             update id (Binance `u`), aux0 = its first update id (`U`), aux1 = previous final id (`pu`) or 0.
TRADE        price, quantity, sequence = trade id; flags ASK when the seller was the aggressor,
             AGGRESSOR_UNKNOWN when the venue does not say.
QUOTE        price / quantity = best bid / size, aux0 / aux1 = best ask / size; sequence = update id.
BOOK_RESET   the instrument's book is void until the next snapshot; aux0 = reason (ResetReason).
TIMER        sequence = timer id, aux0 = scheduled time (µs).

Multi-slot kinds
----------------
An event larger than one slot is a head slot followed by `n` CONTINUATION slots, n = flags >> 12
(1..15). A continuation slot keeps kind / flags / instrument_id in its first 8 bytes (kind = CONTINUATION,
flags low byte = its index 1..n) and carries seven int64 payload words p0..p6 in the 56 bytes the head
uses for ts_exchange .. aux1. Writers publish head and continuations contiguously (the ring reserves
n + 1 slots at once), so a reader never sees a head without its payload.

CANDLE (1 continuation)
    head: ts_exchange = bar open time, ts_local, sequence = trade count, price = open,
          quantity = volume, aux0 = high, aux1 = low
    cont: p0 = close, p1 = VWAP (raw price), p2 = buy volume, p3 = sell volume,
          p4 = bar close time (µs, exclusive), p5 = quote volume (raw at price+size precision,
          saturated at int64), p6 = series id (which bar aggregator of the engine made it; 0 outside)
ORDER_UPDATE (1 continuation)
    head: sequence = client order id, price = limit price, quantity = original size,
          aux0 = cumulative filled size, aux1 = venue order id; flags ASK for a sell
    cont: p0 = status, p1 = order type, p2 = time in force, p3 = average fill price,
          p4 = stop / trigger price, p5 = remaining size, p6 = reject / cancel reason code
FILL (1 continuation)
    head: sequence = venue trade id, price, quantity, aux0 = client order id, aux1 = fee (raw, fee
          asset precision); flags ASK for a sell, MAKER when we provided liquidity
    cont: p0 = venue order id, p1 = fee asset id, p2 = position after the fill (raw), p3..p6 = 0
PREDICTION (ceil(k / 7) continuations, k <= 105)
    head: sequence = request id, aux0 = model id, quantity = k (number of float64 outputs)
    conts: the k float64 outputs, bit-cast into p0..p6 in order
"""
import enum

import numpy as np
cimport numpy as cnp

from extrema._core.types cimport Record
cimport extrema._core.types as t


cdef extern from "stddef.h":
    const Py_ssize_t OFF_kind "offsetof(ex_record, kind)"
    const Py_ssize_t OFF_flags "offsetof(ex_record, flags)"
    const Py_ssize_t OFF_instrument_id "offsetof(ex_record, instrument_id)"
    const Py_ssize_t OFF_ts_exchange "offsetof(ex_record, ts_exchange)"
    const Py_ssize_t OFF_ts_local "offsetof(ex_record, ts_local)"
    const Py_ssize_t OFF_sequence "offsetof(ex_record, sequence)"
    const Py_ssize_t OFF_price "offsetof(ex_record, price)"
    const Py_ssize_t OFF_quantity "offsetof(ex_record, quantity)"
    const Py_ssize_t OFF_aux0 "offsetof(ex_record, aux0)"
    const Py_ssize_t OFF_aux1 "offsetof(ex_record, aux1)"


RECORD_SIZE = sizeof(Record)
cnp.import_array()

RECORD_DTYPE = np.dtype([
    ("kind", "<u2"),
    ("flags", "<u2"),
    ("instrument_id", "<u4"),
    ("ts_exchange", "<i8"),
    ("ts_local", "<i8"),
    ("sequence", "<i8"),
    ("price", "<i8"),
    ("quantity", "<i8"),
    ("aux0", "<i8"),
    ("aux1", "<i8"),
], align=True)

# The payload view of a continuation slot: same first 8 bytes, seven int64 words after them.
CONTINUATION_DTYPE = np.dtype([
    ("kind", "<u2"),
    ("flags", "<u2"),
    ("instrument_id", "<u4"),
    ("payload", "<i8", (7,)),
], align=True)


class RecordKind(enum.IntEnum):
    """What a record carries. Values are part of the journal format: never renumbered."""
    NONE = t.KIND_NONE
    BOOK_DELTA = t.KIND_BOOK_DELTA
    TRADE = t.KIND_TRADE
    QUOTE = t.KIND_QUOTE
    BOOK_RESET = t.KIND_BOOK_RESET
    CANDLE = t.KIND_CANDLE
    ORDER_UPDATE = t.KIND_ORDER_UPDATE
    FILL = t.KIND_FILL
    TIMER = t.KIND_TIMER
    PREDICTION = t.KIND_PREDICTION
    CONTINUATION = t.KIND_CONTINUATION


class RecordFlag(enum.IntFlag):
    """Flag bits of a record; bits 12..15 hold the continuation count of a multi-slot head."""
    NONE = 0
    ASK = t.FLAG_ASK
    SNAPSHOT = t.FLAG_SNAPSHOT
    LAST = t.FLAG_LAST
    AGGRESSOR_UNKNOWN = t.FLAG_AGGRESSOR_UNKNOWN
    MAKER = t.FLAG_MAKER


class ResetReason(enum.IntEnum):
    """Why a BOOK_RESET was emitted (its aux0)."""
    UNSPECIFIED = 0
    SEQUENCE_GAP = 1
    RECONNECT = 2
    CROSSED = 3
    CHECKSUM = 4
    MANUAL = 5


CONTINUATION_SHIFT = t.CONT_SHIFT


def continuation_count(int flags):
    """How many continuation slots follow a head record with these flags."""
    return (flags & t.CONT_MASK) >> t.CONT_SHIFT


def with_continuations(int flags, int count):
    """`flags` with the continuation count set (0..15)."""
    if not 0 <= count <= 15:
        raise ValueError(f"a multi-slot event has 0..15 continuation slots, got {count}")
    return (flags & ~t.CONT_MASK) | (count << t.CONT_SHIFT)


def empty_records(Py_ssize_t n):
    """A zeroed array of `n` records."""
    return np.zeros(n, dtype=RECORD_DTYPE)


def c_layout():
    """The C struct's field offsets and size, as compiled: {name: offset, ..., '__size__': 64}."""
    return {
        "kind": OFF_kind,
        "flags": OFF_flags,
        "instrument_id": OFF_instrument_id,
        "ts_exchange": OFF_ts_exchange,
        "ts_local": OFF_ts_local,
        "sequence": OFF_sequence,
        "price": OFF_price,
        "quantity": OFF_quantity,
        "aux0": OFF_aux0,
        "aux1": OFF_aux1,
        "__size__": sizeof(Record),
    }


cdef extern from *:
    """
    #ifndef EXTREMA_BUILD_FLAGS
    #define EXTREMA_BUILD_FLAGS "unknown"
    #endif
    """
    const char *EXTREMA_BUILD_FLAGS

BUILD_FLAGS = EXTREMA_BUILD_FLAGS.decode()


cdef cnp.ndarray as_record_array(object records, str who):
    """`records` as a 1-d C-contiguous RECORD_DTYPE array (itself when it already is one)."""
    cdef cnp.ndarray arr
    if isinstance(records, np.void):
        records = np.asarray(records)          # one record: a 0-d array of its dtype
    if not isinstance(records, np.ndarray):
        raise TypeError(f"{who} takes a numpy array of extrema.RECORD_DTYPE, got {type(records).__name__}")
    arr = <cnp.ndarray>records
    # Identity first: arrays made with RECORD_DTYPE share the descriptor, so the common case is one compare.
    if <object>cnp.PyArray_DESCR(arr) is not RECORD_DTYPE and arr.dtype != RECORD_DTYPE:
        raise TypeError(f"{who} takes a numpy array of extrema.RECORD_DTYPE, got dtype {arr.dtype}")
    if cnp.PyArray_NDIM(arr) != 1:
        arr = arr.reshape(-1)
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        arr = np.ascontiguousarray(arr)
    return arr
