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
BOOK_RESET   the instrument's book is void until the next snapshot; aux0 = reason (ResetReason),
             sequence = the last update id the book had (0 when none).
TIMER        sequence = timer id, aux0 = scheduled time (µs).
MARK_PRICE   derivatives mark price: price = mark price, quantity = estimated settle price (both raw at
             the instrument's price precision, rounded half up when the venue sends more decimals: they
             are averages, not prices on the tick grid), aux0 = index price (same), aux1 = funding rate
             raw at RATE_PRECISION (1e-8: "0.00038167" -> 38167; may be negative), sequence = next
             funding time (µs), ts_exchange = event time.
BALANCE      one asset's balance (instrument_id 0: balances belong to an account, not an instrument);
             sequence = asset id (extrema.asset_id / asset_code), price = free (spot) or wallet balance
             (futures), quantity = locked (spot) or cross-margin wallet balance (futures), aux0 = balance
             change that caused the update (futures; 0 on spot), aux1 = reason (AccountUpdateReason).
             Amounts are raw at ASSET_PRECISION (1e-8) and may be negative. FLAG_LAST on the final
             balance record of one venue message.

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
    cont: p0 = status (OrderStatus), p1 = order type (OrderType), p2 = time in force (TimeInForce),
          p3 = average fill price (rounded half up to the price precision; 0 before any fill),
          p4 = stop / trigger price (0 when none), p5 = remaining size (original - cumulative filled),
          p6 = reason (OrderReason) in bits 0..15 | execution type (ExecType) << 16
FILL (1 continuation)
    head: sequence = venue trade id, price, quantity, aux0 = client order id, aux1 = fee (raw at
          ASSET_PRECISION, in the fee asset); flags ASK for a sell, MAKER when we provided liquidity
    cont: p0 = venue order id, p1 = fee asset id (0 when the venue names none), p2 = position after
          the fill (raw; 0 when the venue does not report it - Binance does not), p3 = realized PnL of
          this fill (raw at ASSET_PRECISION; futures, 0 on spot), p4..p6 = 0
POSITION (1 continuation), one per instrument and position side
    head: price = entry price, quantity = position size (signed: negative = short, raw at the size
          precision), aux0 = unrealized PnL, aux1 = accumulated realized PnL (both raw at ASSET_PRECISION),
          sequence = 0; FLAG_LAST on the final position record of one venue message
    cont: p0 = break-even price (entry and break-even are averages: rounded half up to the price
          precision), p1 = position side (PositionSide), p2 = margin type (MarginType),
          p3 = isolated margin (raw at ASSET_PRECISION; 0 for cross), p4 = reason (AccountUpdateReason),
          p5, p6 = 0
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
    MARK_PRICE = t.KIND_MARK_PRICE
    BALANCE = t.KIND_BALANCE
    POSITION = t.KIND_POSITION
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
ASSET_PRECISION = t.ASSET_PRECISION
RATE_PRECISION = t.RATE_PRECISION


# The order vocabulary of ORDER_UPDATE / FILL / POSITION payloads, shared by the venue decoders and the
# execution layer (C names in types.pxd). Values are part of the journal format: never renumbered.

class OrderStatus(enum.IntEnum):
    """An order's state, as the engine's order table keeps it and ORDER_UPDATE p0 carries it."""
    INITIALIZED = t.ORDER_STATUS_INITIALIZED
    SUBMITTED = t.ORDER_STATUS_SUBMITTED
    ACCEPTED = t.ORDER_STATUS_ACCEPTED
    PARTIALLY_FILLED = t.ORDER_STATUS_PARTIALLY_FILLED
    FILLED = t.ORDER_STATUS_FILLED
    CANCELLED = t.ORDER_STATUS_CANCELLED
    REJECTED = t.ORDER_STATUS_REJECTED
    EXPIRED = t.ORDER_STATUS_EXPIRED
    PENDING_CANCEL = t.ORDER_STATUS_PENDING_CANCEL
    PENDING_REPLACE = t.ORDER_STATUS_PENDING_REPLACE
    UNKNOWN = t.ORDER_STATUS_UNKNOWN


class OrderType(enum.IntEnum):
    UNKNOWN = t.ORDER_TYPE_UNKNOWN
    MARKET = t.ORDER_TYPE_MARKET
    LIMIT = t.ORDER_TYPE_LIMIT
    STOP_MARKET = t.ORDER_TYPE_STOP_MARKET
    STOP_LIMIT = t.ORDER_TYPE_STOP_LIMIT
    TAKE_PROFIT_MARKET = t.ORDER_TYPE_TAKE_PROFIT_MARKET
    TAKE_PROFIT_LIMIT = t.ORDER_TYPE_TAKE_PROFIT_LIMIT
    LIMIT_MAKER = t.ORDER_TYPE_LIMIT_MAKER
    TRAILING_STOP_MARKET = t.ORDER_TYPE_TRAILING_STOP_MARKET
    LIQUIDATION = t.ORDER_TYPE_LIQUIDATION


class TimeInForce(enum.IntEnum):
    UNKNOWN = t.TIF_UNKNOWN
    GTC = t.TIF_GTC
    IOC = t.TIF_IOC
    FOK = t.TIF_FOK
    GTX = t.TIF_GTX
    GTD = t.TIF_GTD
    RPI = t.TIF_RPI


class ExecType(enum.IntEnum):
    """What happened to the order in this update (ORDER_UPDATE p6 >> 16)."""
    UNKNOWN = t.EXEC_UNKNOWN
    NEW = t.EXEC_NEW
    CANCELED = t.EXEC_CANCELED
    REPLACED = t.EXEC_REPLACED
    REJECTED = t.EXEC_REJECTED
    TRADE = t.EXEC_TRADE
    EXPIRED = t.EXEC_EXPIRED
    TRADE_PREVENTION = t.EXEC_TRADE_PREVENTION
    CALCULATED = t.EXEC_CALCULATED
    AMENDMENT = t.EXEC_AMENDMENT


class OrderReason(enum.IntEnum):
    """Why an order was rejected / expired (ORDER_UPDATE p6 & 0xFFFF)."""
    NONE = t.ORDER_REASON_NONE
    OTHER = t.ORDER_REASON_OTHER
    INSUFFICIENT_BALANCE = t.ORDER_REASON_INSUFFICIENT_BALANCE
    SELF_TRADE_PREVENTION = t.ORDER_REASON_SELF_TRADE_PREVENTION
    POST_ONLY_WOULD_TAKE = t.ORDER_REASON_POST_ONLY_WOULD_TAKE
    PRICE_QTY_LIMITS = t.ORDER_REASON_PRICE_QTY_LIMITS
    UNKNOWN_ORDER = t.ORDER_REASON_UNKNOWN_ORDER
    DUPLICATE_ORDER = t.ORDER_REASON_DUPLICATE_ORDER
    MARKET_CLOSED = t.ORDER_REASON_MARKET_CLOSED
    INSUFFICIENT_LIQUIDITY = t.ORDER_REASON_INSUFFICIENT_LIQUIDITY


class PositionSide(enum.IntEnum):
    BOTH = t.POSITION_SIDE_BOTH
    LONG = t.POSITION_SIDE_LONG
    SHORT = t.POSITION_SIDE_SHORT


class MarginType(enum.IntEnum):
    CROSS = t.MARGIN_CROSS
    ISOLATED = t.MARGIN_ISOLATED


class AccountUpdateReason(enum.IntEnum):
    """Why a BALANCE / POSITION update was sent (Binance futures ACCOUNT_UPDATE `m`)."""
    NONE = t.ACCOUNT_REASON_NONE
    OTHER = t.ACCOUNT_REASON_OTHER
    DEPOSIT = t.ACCOUNT_REASON_DEPOSIT
    WITHDRAW = t.ACCOUNT_REASON_WITHDRAW
    ORDER = t.ACCOUNT_REASON_ORDER
    FUNDING_FEE = t.ACCOUNT_REASON_FUNDING_FEE
    WITHDRAW_REJECT = t.ACCOUNT_REASON_WITHDRAW_REJECT
    ADJUSTMENT = t.ACCOUNT_REASON_ADJUSTMENT
    INSURANCE_CLEAR = t.ACCOUNT_REASON_INSURANCE_CLEAR
    ADMIN_DEPOSIT = t.ACCOUNT_REASON_ADMIN_DEPOSIT
    ADMIN_WITHDRAW = t.ACCOUNT_REASON_ADMIN_WITHDRAW
    MARGIN_TRANSFER = t.ACCOUNT_REASON_MARGIN_TRANSFER
    MARGIN_TYPE_CHANGE = t.ACCOUNT_REASON_MARGIN_TYPE_CHANGE
    ASSET_TRANSFER = t.ACCOUNT_REASON_ASSET_TRANSFER
    OPTIONS_PREMIUM_FEE = t.ACCOUNT_REASON_OPTIONS_PREMIUM_FEE
    OPTIONS_SETTLE_PROFIT = t.ACCOUNT_REASON_OPTIONS_SETTLE_PROFIT
    AUTO_EXCHANGE = t.ACCOUNT_REASON_AUTO_EXCHANGE
    COIN_SWAP_DEPOSIT = t.ACCOUNT_REASON_COIN_SWAP_DEPOSIT
    COIN_SWAP_WITHDRAW = t.ACCOUNT_REASON_COIN_SWAP_WITHDRAW


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
