"""Binance spot / USD-M wire codec over simdjson On-Demand, and Binance's local-book synchronisation.

BinanceDecoder(registry, market) turns one websocket frame (or one REST depth body) into records
(extrema.RECORD_DTYPE, layouts in records.pyx) with no Python object per field: two passes over the
frame, both in C. Pass 1 walks the JSON once with simdjson On-Demand and files every value under its
key (string views into the frame, integers, the [price, size] level lists); pass 2 reads the event
type, resolves the symbol, parses the decimal strings straight into int64 raw values at the
instrument's precision (ex_fixed.h's ex_parse_fixed, the parser behind extrema.parse_decimal, inlined:
exact, no float step) and writes the records. Nothing
is written before every value of the frame has been read and checked, so a frame gives all its
records or none. The field order of a frame does not matter.

Accepted frames
---------------
* raw payloads `{"e": ...}`, combined-stream frames `{"stream": ..., "data": {...}}` and WebSocket-API
  user-data frames `{"subscriptionId": ..., "event": {...}}` / `{"event": {...}}`;
* REST depth bodies (`/api/v3/depth`, `/fapi/v1/depth`) through decode_depth_snapshot(body, instrument).

Event -> records (ts_local is the caller's receive time in µs; Binance times are ms, × 1000, or taken
as µs with time_unit="us"; T is the venue's transaction / trade time, E its event time)
---------------------------------------------------------------------------------------------------
depthUpdate     spot `@depth` / `@depth@100ms`, USD-M `@depth@0ms|@100ms|@500ms` diff streams:
  (DEPTH_UPDATE) one BOOK_DELTA per level change, bids then asks, in wire order; price `[0]`, quantity
                 `[1]` (0 deletes the level); flags ASK on asks, LAST on the final record; sequence = u,
                 aux0 = U, aux1 = pu (USD-M; 0 on spot); ts_exchange = T if present (USD-M) else E.
                 An event without level changes gives 0 records but still fills info (U, u, pu) so
                 DepthSync advances the chain.
REST depth      decode_depth_snapshot: one BOOK_DELTA per level with flags SNAPSHOT (| ASK on asks),
  (DEPTH_SNAPSHOT) LAST on the final record; sequence = lastUpdateId, aux0 = aux1 = 0; ts_exchange = T,
                 else E (USD-M sends both), else ts_local (spot sends no time). An empty book gives
                 one BOOK_RESET (aux0 = ResetReason.UNSPECIFIED, sequence = lastUpdateId) so a book
                 fed with it is emptied.
trade           one TRADE: price p, quantity q, sequence = t, ts_exchange = T; flags ASK when m is true
  (TRADE)        (the buyer was the maker, so the seller aggressed); aux0 = aux1 = 0.
aggTrade        one TRADE: as trade with sequence = a (aggregate id), aux0 = f, aux1 = l (first / last
  (AGG_TRADE)    trade id).
bookTicker      one QUOTE: price b, quantity B, aux0 = a, aux1 = A, sequence = u; ts_exchange = T, else
  (BOOK_TICKER)  E, else ts_local (the spot stream carries no time and no "e"; it is recognised by its
                 fields u, s, b, B, a, A).
kline_*         closed klines only (k.x true): one CANDLE (2 slots, layout in records.pyx) with
  (KLINE)        ts_exchange = k.t, sequence = k.n, price = k.o, quantity = k.v, aux0 = k.h, aux1 = k.l;
                 p0 = k.c, p1 = VWAP = k.q / k.v rounded half up (k.c when k.v is 0), p2 = k.V (taker buy
                 volume), p3 = k.v - k.V, p4 = (k.T + 1 ms) in µs (exclusive close), p5 = k.q raw at price
                 + size precision (saturated at int64), p6 = 0. Why closed only: a bar is a fact once it
                 closes; the in-progress updates (x false, every 1-2 s) would reach strategies as bars
                 that later change. They give 0 records and count in stats()["klines_open"].
markPriceUpdate one MARK_PRICE: price = p (mark), quantity = P (estimated settle price), aux0 = i (index),
  (MARK_PRICE)   all rounded half up to the price precision; aux1 = r (funding rate) raw at 1e-8 ("" for
                 contracts without funding -> 0); sequence = T (next funding time) in µs;
                 ts_exchange = E. USD-M only.
executionReport one ORDER_UPDATE (2 slots), plus one FILL (2 slots) when x is TRADE (or CALCULATED)
  (EXECUTION_REPORT) and l > 0. ORDER_UPDATE: sequence = client order id (C, the original id, when the
                 report is about a cancel and C is set; else c), price = p, quantity = q, aux0 = z,
                 aux1 = i; p0 = X (OrderStatus), p1 = o (OrderType), p2 = f (TimeInForce), p3 = average
                 fill price Z / z rounded half up (0 while z is 0), p4 = P (stop price), p5 = q - z,
                 p6 = r (OrderReason) | x (ExecType) << 16; flags ASK when S is SELL; ts_exchange = T.
                 FILL: sequence = t, price = L, quantity = l, aux0 = client order id, aux1 = n (fee, raw at
                 1e-8, may be negative: rebates); p0 = i, p1 = asset id of N (0 when null), p2 = 0,
                 p3 = 0; flags ASK when S is SELL, MAKER when m is true; ts_exchange = T.
ORDER_TRADE_UPDATE  USD-M, from the order object o: as executionReport with p3 = o.ap rounded half up,
  (ORDER_TRADE_UPDATE) p4 = o.sp (null -> 0), p6 reason NONE (USD-M sends no reject reason), FILL p3 =
                 o.rp (realized PnL, 1e-8); ts_exchange = o.T, else T, else E.
outboundAccountPosition  one BALANCE per entry of B: sequence = asset id of a, price = f (free),
  (ACCOUNT_POSITION) quantity = l (locked), aux0 = 0, aux1 = AccountUpdateReason.NONE; LAST on the final
                 one; ts_exchange = u (last account update time), else E.
ACCOUNT_UPDATE  USD-M: one BALANCE per entry of a.B (price = wb, quantity = cw, aux0 = bc,
  (ACCOUNT_UPDATE) aux1 = a.m as AccountUpdateReason), then one POSITION (2 slots) per entry of a.P:
                 price = ep, quantity = pa (signed), aux0 = up, aux1 = cr; p0 = bep, p1 = ps
                 (PositionSide), p2 = mt (MarginType), p3 = iw, p4 = a.m; ts_exchange = T, else E.
                 A position of a symbol the registry does not know is skipped and counted
                 (stats()["unknown_positions"]), the rest of the frame is kept: an account update is
                 never lost because of an instrument the strategy does not trade.
ALGO_UPDATE     USD-M conditional orders (Binance's algo service, since 2025-12): one ORDER_UPDATE laid out
  (ALGO_UPDATE)  as ORDER_TRADE_UPDATE's from the algo object o: sequence = caid, price = p, quantity = q,
                 aux0 = aq, aux1 = aid; p0 = X (NEW / TRIGGERING / TRIGGERED -> ACCEPTED, FINISHED ->
                 FILLED when aq = q else CANCELLED, CANCELED, REJECTED (reason OTHER), EXPIRED), p3 = ap,
                 p4 = tp (trigger price); ts_exchange = T, else E. No FILL: the triggered order trades
                 under the same client id and reports through ORDER_TRADE_UPDATE.
listenKeyExpired, serverShutdown, eventStreamTerminated: 0 records, their own event code: the
                 connection glue must act on them (new listen key, reconnect).
{"result": ..., "id": n}  (CONTROL) subscription / WS-API answers: 0 records, request_id = id.
{"code": c, "msg": m} / {"error": {"code", "msg"}}  (ERROR): 0 records, error_code = c,
                 decoder.last_error = m.
other events (24hrTicker, balanceUpdate, listStatus, TRADE_LITE, forceOrder, partial-book
                 `@depth<N>` frames...): 0 records, event IGNORED, counted; not errors.

Client order ids are strings on the wire and int64 in records: register_client_order_id(text, id)
(the execution layer, ids in 1 .. 2**62 - 1) maps them; an id the decoder has not been told about
(an order placed elsewhere, Binance's "autoclose-..." liquidation ids) gets a fresh id from
EXTERNAL_CLIENT_ORDER_ID_BASE = 2**62 upward (process-wide counter, so two decoders never hand out the
same one) and client_order_id_text(id) gives the text back. With own_client_id_prefix set (the
engine's `ex<tag>`), our own ids `<prefix><digits>` (canonical, 1 .. 2**62 - 1) are parsed back in C and
need no registration (parse_own_client_id); every other text takes the map. An empty id is 0. Assets get process-wide
ids (extrema.asset_id / asset_code). Order vocabulary: records.OrderStatus / OrderType / TimeInForce /
ExecType / OrderReason (C enums in types.pxd); a string the decoder does not know maps to UNKNOWN (or
OTHER) and counts in stats()["unknown_enum"], it never drops an order update.

Numbers. Prices and sizes of the book, trades, quotes and klines must be exact at the instrument's
precision: more decimals than the precision (non-zero ones: Binance pads with zeros), NaN / Infinity,
a negative size or price, or a value out of int64 drops the frame with that reason - never a silent
truncation. Averages (mark, index, entry, break-even, average fill, quote volume) are rounded half up
to their precision, as documented per field. Balances, fees and PnL are raw at ASSET_PRECISION (1e-8),
funding rates at RATE_PRECISION (1e-8).

Bad input never raises out of the hot path: malformed JSON, truncated frames, missing fields, wrong
types, bad decimals, unknown symbols, oversized frames and frames needing more records than the
caller's buffer each count under their DropReason (stats()), give 0 records, set info.drop_reason and
decoder.last_drop, and log one line per reason at most every 10 s (logger "extrema.adapters.binance").

DepthSync(market) applies Binance's documented local-book rule per instrument:
spot https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#how-to-manage-a-local-order-book-correctly
USD-M https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly
Diffs are buffered until a snapshot arrives; events older than the snapshot are dropped (spot u <= id,
USD-M u < id); the first kept event must cover it (spot U <= id + 1 <= u, USD-M U <= id <= u); after
it the chain must hold (spot U == previous u + 1, USD-M pu == previous u). A break emits BOOK_RESET
(ResetReason.SEQUENCE_GAP) for that instrument and sends it back to "needs snapshot"; the frame that
broke the chain starts the new buffer. A depth frame the decoder dropped is a break too (its levels
are lost). See DepthSync for the call sequence.
"""
cimport cython
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t, INT64_MAX
from libc.string cimport memcpy, memset, memcmp
from libc.stdlib cimport malloc, calloc, realloc, free
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize

import enum
import itertools
import logging
import threading

import numpy as np
cimport numpy as cnp

from extrema._core.types cimport (
    Record, KIND_BOOK_DELTA, KIND_TRADE, KIND_QUOTE, KIND_BOOK_RESET, KIND_CANDLE, KIND_ORDER_UPDATE,
    KIND_FILL, KIND_MARK_PRICE, KIND_BALANCE, KIND_POSITION, KIND_CONTINUATION,
    FLAG_ASK, FLAG_SNAPSHOT, FLAG_LAST, FLAG_MAKER, CONT_SHIFT, ASSET_PRECISION, RATE_PRECISION)
cimport extrema._core.types as t
from extrema._core.ex_fixed cimport (
    ex_parse_fixed, ex_fixed_status, ex_pow10_u64, EX_FIXED_OK, EX_FIXED_TOO_PRECISE, EX_FIXED_OVERFLOW,
    EX_FIXED_NOT_FINITE, EX_FIXED_NEGATIVE)
from extrema._core.instruments cimport InstrumentRegistry, Instrument
from extrema._core.records cimport as_record_array, record_data
from extrema._core.clock cimport now_us, monotonic_ns

from extrema._core.instruments import Market, UnknownInstrumentError, asset_id as _asset_id
from extrema._core.records import RECORD_DTYPE, ResetReason

cnp.import_array()

cdef extern from "ex_json.h" nogil:
    ctypedef struct ex_jval:         # simdjson::ondemand::value
        pass
    ctypedef struct ex_jobj:         # an object iterator
        pass
    ctypedef struct ex_jarr:         # an array iterator
        pass
    enum:
        EXJ_ARRAY
        EXJ_OBJECT
        EXJ_NUMBER
        EXJ_STRING
        EXJ_BOOL
        EXJ_NULL
        EXJ_ERR_NO_MEMORY
        EXJ_ERR_NOT_A_PAIR
    size_t ex_json_padding() noexcept
    ex_json_doc *ex_json_new(size_t max_capacity) noexcept
    void ex_json_free(ex_json_doc *d) noexcept
    const char *ex_json_error_message(int negative_code) noexcept
    int ex_json_iterate(ex_json_doc *d, const char *buf, size_t len, size_t capacity) noexcept
    int ex_json_root_object(ex_json_doc *d, ex_jobj *o) noexcept
    int ex_json_at_end(ex_json_doc *d) noexcept
    int ex_jobj_open(ex_jval *v, ex_jobj *o) noexcept
    int ex_jobj_next(ex_jobj *o, const char **key, size_t *klen, ex_jval *value) noexcept
    int ex_jarr_open(ex_jval *v, ex_jarr *a) noexcept
    int ex_jarr_next(ex_jarr *a, ex_jval *value) noexcept
    int ex_jval_type(ex_jval *v, int *type) noexcept
    int ex_jval_string(ex_jval *v, const char **s, size_t *n) noexcept
    int ex_jval_int64(ex_jval *v, int64_t *out) noexcept
    int ex_jval_bool(ex_jval *v, int *out) noexcept
    long ex_jval_string_pairs(ex_jval *v, ex_pairbuf *buf) noexcept

cdef extern from *:
    """
    #if defined(__SIZEOF_INT128__)
    typedef unsigned __int128 ex_bn_u128;
    #else
    #error "extrema's Binance decoder needs a compiler with unsigned __int128 (GCC / Clang)"
    #endif
    """
    ctypedef unsigned long long ex_bn_u128

cdef extern from *:
    bint __builtin_mul_overflow(ex_bn_u128 a, ex_bn_u128 b, ex_bn_u128 *r) noexcept nogil


# ------------------------------------------------------------------------------------- public enums

cdef enum:
    EV_NONE = 0
    EV_DEPTH_UPDATE = 1
    EV_DEPTH_SNAPSHOT = 2
    EV_TRADE = 3
    EV_AGG_TRADE = 4
    EV_BOOK_TICKER = 5
    EV_KLINE = 6
    EV_MARK_PRICE = 7
    EV_EXECUTION_REPORT = 8
    EV_ORDER_TRADE_UPDATE = 9
    EV_ACCOUNT_POSITION = 10
    EV_ACCOUNT_UPDATE = 11
    EV_LISTEN_KEY_EXPIRED = 12
    EV_SERVER_SHUTDOWN = 13
    EV_STREAM_TERMINATED = 14
    EV_CONTROL = 15
    EV_ERROR = 16
    EV_IGNORED = 17
    EV_ALGO_UPDATE = 18
    EV_COUNT = 19


class BinanceEvent(enum.IntEnum):
    """What a frame was (decoder.info["event"])."""
    NONE = EV_NONE                       # not recognised (the frame was dropped before it was)
    DEPTH_UPDATE = EV_DEPTH_UPDATE
    DEPTH_SNAPSHOT = EV_DEPTH_SNAPSHOT
    TRADE = EV_TRADE
    AGG_TRADE = EV_AGG_TRADE
    BOOK_TICKER = EV_BOOK_TICKER
    KLINE = EV_KLINE
    MARK_PRICE = EV_MARK_PRICE
    EXECUTION_REPORT = EV_EXECUTION_REPORT
    ORDER_TRADE_UPDATE = EV_ORDER_TRADE_UPDATE
    ACCOUNT_POSITION = EV_ACCOUNT_POSITION
    ACCOUNT_UPDATE = EV_ACCOUNT_UPDATE
    LISTEN_KEY_EXPIRED = EV_LISTEN_KEY_EXPIRED
    SERVER_SHUTDOWN = EV_SERVER_SHUTDOWN
    STREAM_TERMINATED = EV_STREAM_TERMINATED
    CONTROL = EV_CONTROL
    ERROR = EV_ERROR
    IGNORED = EV_IGNORED
    ALGO_UPDATE = EV_ALGO_UPDATE


cdef enum:
    DROP_NONE = 0
    DROP_EMPTY = 1
    DROP_OVERSIZED = 2
    DROP_MALFORMED_JSON = 3
    DROP_NOT_AN_OBJECT = 4
    DROP_MISSING_FIELD = 5
    DROP_BAD_FIELD = 6
    DROP_BAD_DECIMAL = 7
    DROP_NOT_FINITE = 8
    DROP_TOO_PRECISE = 9
    DROP_NEGATIVE = 10
    DROP_OVERFLOW = 11
    DROP_UNKNOWN_SYMBOL = 12
    DROP_NO_INSTRUMENT = 13
    DROP_CAPACITY = 14
    DROP_INCONSISTENT = 15
    DROP_NO_MEMORY = 16
    DROP_COUNT = 17


class DropReason(enum.IntEnum):
    """Why a frame gave no records (decoder.info["drop_reason"], stats()["drops"])."""
    NONE = DROP_NONE
    EMPTY = DROP_EMPTY                   # zero-length frame
    OVERSIZED = DROP_OVERSIZED           # longer than max_frame_bytes
    MALFORMED_JSON = DROP_MALFORMED_JSON  # not JSON, truncated, trailing garbage
    NOT_AN_OBJECT = DROP_NOT_AN_OBJECT   # JSON, but not an object at the root
    MISSING_FIELD = DROP_MISSING_FIELD   # a field the event needs is absent
    BAD_FIELD = DROP_BAD_FIELD           # a field has the wrong JSON type (e.g. a number as a float)
    BAD_DECIMAL = DROP_BAD_DECIMAL       # a price / size string is not a decimal
    NOT_FINITE = DROP_NOT_FINITE         # "NaN", "Infinity"...
    TOO_PRECISE = DROP_TOO_PRECISE       # more non-zero decimals than the instrument's precision
    NEGATIVE = DROP_NEGATIVE             # a negative price or size
    OVERFLOW = DROP_OVERFLOW             # out of the int64 range at the precision
    UNKNOWN_SYMBOL = DROP_UNKNOWN_SYMBOL  # the registry has no instrument with this venue symbol
    NO_INSTRUMENT = DROP_NO_INSTRUMENT   # a depth body with no symbol (use decode_depth_snapshot)
    CAPACITY = DROP_CAPACITY             # the caller's buffer is smaller than info["needed"]
    INCONSISTENT = DROP_INCONSISTENT     # values contradict each other (kline taker volume > volume)
    NO_MEMORY = DROP_NO_MEMORY


_DROP_NAMES = tuple(r.name.lower() for r in DropReason)

cdef enum:
    ResetReason_UNSPECIFIED = 0      # extrema.ResetReason values, for nogil code
    ResetReason_SEQUENCE_GAP = 1
    ResetReason_RECONNECT = 2

EXTERNAL_CLIENT_ORDER_ID_BASE = 1 << 62
_external_ids = itertools.count(EXTERNAL_CLIENT_ORDER_ID_BASE)
_external_ids_lock = threading.Lock()

_EMPTY_RECORDS = np.zeros(0, dtype=RECORD_DTYPE)
_EMPTY_RECORDS.flags.writeable = False

cdef int64_t LOG_INTERVAL_NS = 10_000_000_000


cdef inline int64_t parse_own_client_id(const char *s, Py_ssize_t n, const char *prefix,
                                        Py_ssize_t prefix_n) noexcept nogil:
    """`<prefix><decimal>` -> the decimal when it is one of our ids (1 .. 2**62 - 1, canonical: no sign, no
    leading zero, at most 19 digits), else 0 (not ours: the caller takes the map). No prefix: always 0.
    The same rule as extrema.execution.orders.ClientOrderIds.parse."""
    cdef Py_ssize_t i, digits = n - prefix_n
    cdef uint64_t v = 0
    cdef char c
    if prefix_n <= 0 or digits < 1 or digits > 19 or memcmp(s, prefix, prefix_n) != 0:
        return 0
    if s[prefix_n] == b'0':
        return 0
    for i in range(prefix_n, n):
        c = s[i]
        if c < b'0' or c > b'9':
            return 0
        v = v * 10 + <uint64_t>(c - 48)          # 19 digits < 2**64: no wrap
    if v >= (<uint64_t>1 << 62):
        return 0
    return <int64_t>v

# ----------------------------------------------------------------------------------- field slots

cdef enum:
    SLOT_NONE = 0
    SLOT_STR = 1
    SLOT_INT = 2
    SLOT_BOOL = 3
    SLOT_NULL = 4
    SLOT_BADNUM = 5      # a number that is not an int64 (float, too large)
    SLOT_LEVELS = 6      # a [price, size] list, collected into _bids / _asks
    SLOT_ENTRIES = 7     # balance / position entries, collected into _balances / _positions
    SLOT_OBJECT = 8      # a nested object, read into _inner
    SLOT_OTHER = 9       # an array or object nobody reads

# Slots 0..51 are the one-letter keys A..Z, a..z (Binance's usual field names); the rest are the few
# longer keys the decoder reads. Any other key is skipped without being looked at.
cdef enum:
    K_A = 0
    K_B = 1
    K_C = 2
    K_E = 4
    K_I = 8
    K_L = 11
    K_M = 12
    K_N = 13
    K_P = 15
    K_Q = 16
    K_S = 18
    K_T = 19
    K_U = 20
    K_V = 21
    K_X = 23
    K_Z = 25
    K_a = 26
    K_b = 27
    K_c = 28
    K_e = 30
    K_f = 31
    K_h = 33
    K_i = 34
    K_k = 36
    K_l = 37
    K_m = 38
    K_n = 39
    K_o = 40
    K_p = 41
    K_q = 42
    K_r = 43
    K_s = 44
    K_t = 45
    K_u = 46
    K_v = 47
    K_x = 49
    K_z = 51
    K_pu = 52
    K_ap = 53
    K_sp = 54
    K_rp = 55
    K_wb = 56
    K_cw = 57
    K_bc = 58
    K_pa = 59
    K_ep = 60
    K_bep = 61
    K_up = 62
    K_mt = 63
    K_iw = 64
    K_cr = 65
    K_ps = 66
    K_id = 67
    K_msg = 68
    K_code = 69
    K_data = 70
    K_bids = 71
    K_asks = 72
    K_event = 73
    K_error = 74
    K_stream = 75
    K_result = 76
    K_lastUpdateId = 77
    K_subscriptionId = 78
    K_status = 79
    K_caid = 80          # ALGO_UPDATE: client algo id
    K_aid = 81           # ALGO_UPDATE: algo id
    K_aq = 82            # ALGO_UPDATE: executed quantity in the matching engine
    K_tp = 83            # ALGO_UPDATE: trigger price
    K_ai = 84            # ALGO_UPDATE: the triggered order's id in the matching engine ("" before)


cdef inline bint _eq(const char *s, size_t n, const char *lit, size_t m) noexcept nogil:
    return n == m and memcmp(s, lit, m) == 0


cdef int key_slot(const char *k, size_t n) noexcept nogil:
    """The slot of a key, -1 for keys the decoder never reads."""
    cdef char c0
    if n == 1:
        c0 = k[0]
        if b'A' <= c0 <= b'Z':
            return c0 - 65
        if b'a' <= c0 <= b'z':
            return 26 + c0 - 97
        return -1
    if n == 2:
        c0 = k[0]
        if c0 == b'p':
            if k[1] == b'u': return K_pu
            if k[1] == b'a': return K_pa
            if k[1] == b's': return K_ps
        elif c0 == b'a':
            if k[1] == b'p': return K_ap
            if k[1] == b'q': return K_aq
            if k[1] == b'i': return K_ai
        elif c0 == b's':
            if k[1] == b'p': return K_sp
        elif c0 == b't':
            if k[1] == b'p': return K_tp
        elif c0 == b'r':
            if k[1] == b'p': return K_rp
        elif c0 == b'w':
            if k[1] == b'b': return K_wb
        elif c0 == b'c':
            if k[1] == b'w': return K_cw
            if k[1] == b'r': return K_cr
        elif c0 == b'b':
            if k[1] == b'c': return K_bc
        elif c0 == b'e':
            if k[1] == b'p': return K_ep
        elif c0 == b'u':
            if k[1] == b'p': return K_up
        elif c0 == b'm':
            if k[1] == b't': return K_mt
        elif c0 == b'i':
            if k[1] == b'w': return K_iw
            if k[1] == b'd': return K_id
        return -1
    if _eq(k, n, "bep", 3): return K_bep
    if _eq(k, n, "aid", 3): return K_aid
    if _eq(k, n, "caid", 4): return K_caid
    if _eq(k, n, "msg", 3): return K_msg
    if _eq(k, n, "code", 4): return K_code
    if _eq(k, n, "data", 4): return K_data
    if _eq(k, n, "bids", 4): return K_bids
    if _eq(k, n, "asks", 4): return K_asks
    if _eq(k, n, "event", 5): return K_event
    if _eq(k, n, "error", 5): return K_error
    if _eq(k, n, "stream", 6): return K_stream
    if _eq(k, n, "result", 6): return K_result
    if _eq(k, n, "status", 6): return K_status
    if _eq(k, n, "lastUpdateId", 12): return K_lastUpdateId
    if _eq(k, n, "subscriptionId", 14): return K_subscriptionId
    return -1


cdef inline void fields_clear(Fields *f) noexcept nogil:
    f.present[0] = 0
    f.present[1] = 0


cdef inline Slot *fields_put(Fields *f, int k) noexcept nogil:
    f.present[k >> 6] |= (<uint64_t>1) << (k & 63)
    return &f.v[k]


cdef inline const Slot *fget(const Fields *f, int k) noexcept nogil:
    if f.present[k >> 6] & ((<uint64_t>1) << (k & 63)):
        return &f.v[k]
    return NULL


cdef inline bint fhas(const Fields *f, int k) noexcept nogil:
    return (f.present[k >> 6] >> (k & 63)) & 1


cdef inline int drop_of_fixed(ex_fixed_status st) noexcept nogil:
    if st == EX_FIXED_TOO_PRECISE:
        return DROP_TOO_PRECISE
    if st == EX_FIXED_OVERFLOW:
        return DROP_OVERFLOW
    if st == EX_FIXED_NOT_FINITE:
        return DROP_NOT_FINITE
    if st == EX_FIXED_NEGATIVE:
        return DROP_NEGATIVE
    return DROP_BAD_DECIMAL


cdef int parse_rounded(const char *s, Py_ssize_t n, int precision, bint allow_negative,
                       int64_t *out) noexcept nogil:
    """Decimal text -> raw at `precision`, rounded half away from zero when the text has more decimals
    (for averages: mark / index / entry prices, average fill price). Returns 0 or a DropReason."""
    cdef ex_fixed_status st = ex_parse_fixed(s, n, precision, allow_negative, out)
    cdef Py_ssize_t i, dot = -1, last_nonzero = -1
    cdef int decimals
    cdef int64_t raw, q, r
    cdef uint64_t div
    if st != EX_FIXED_TOO_PRECISE:
        return 0 if st == EX_FIXED_OK else drop_of_fixed(st)
    for i in range(n):
        if s[i] == b'.':
            dot = i
        elif s[i] == b'e' or s[i] == b'E':
            return DROP_TOO_PRECISE      # exponent forms are never rounded: exact or nothing
        elif dot >= 0 and s[i] != b'0':
            last_nonzero = i
    decimals = <int>(last_nonzero - dot)
    if dot < 0 or decimals <= precision or decimals > 18:
        return DROP_TOO_PRECISE
    st = ex_parse_fixed(s, n, decimals, allow_negative, &raw)
    if st != EX_FIXED_OK:
        return drop_of_fixed(st)
    div = ex_pow10_u64[decimals - precision]
    q = raw // <int64_t>div
    r = raw - q * <int64_t>div           # C division truncates toward zero: r has raw's sign
    if r < 0:
        if <uint64_t>(-r) * 2 >= div:
            q -= 1
    elif <uint64_t>r * 2 >= div:
        q += 1
    out[0] = q
    return 0


cdef int parse_notional(const char *s, Py_ssize_t n, int target, ex_bn_u128 *out) noexcept nogil:
    """A quote amount (kline quote volume, cumulative quote quantity) as an unsigned 128-bit raw value at
    `target` decimals (price + size precision, up to 36): exact when the text has no more decimals than
    that, else rounded half up. 128 bits because price + size precision easily passes int64 (9116.046
    at 16 decimals is 9.1e19). Returns 0 or a DropReason."""
    cdef Py_ssize_t i, dot = -1, last_nonzero = -1
    cdef int decimals, p
    cdef int64_t raw
    cdef ex_bn_u128 v
    cdef ex_fixed_status st
    for i in range(n):
        if s[i] == b'.':
            dot = i
        elif s[i] == b'e' or s[i] == b'E':
            dot = -2
            break
        elif dot >= 0 and s[i] != b'0':
            last_nonzero = i
    decimals = <int>(last_nonzero - dot) if dot >= 0 and last_nonzero > dot else 0
    if dot == -2 or decimals > target or decimals > 18:
        p = target if target <= 18 else 18
        i = parse_rounded(s, n, p, False, &raw)
        if i != 0:
            return <int>i
    else:
        p = decimals
        st = ex_parse_fixed(s, n, p, False, &raw)
        if st != EX_FIXED_OK:
            return drop_of_fixed(st)
    v = <ex_bn_u128>raw
    while p < target:
        # at most two steps: 10**19 fits a uint64
        i = target - p if target - p <= 19 else 19
        if __builtin_mul_overflow(v, <ex_bn_u128>ex_pow10_u64[i], &v):
            return DROP_OVERFLOW
        p += <int>i
    out[0] = v
    return 0


cdef inline int64_t saturate(ex_bn_u128 v) noexcept nogil:
    return <int64_t>v if v <= <ex_bn_u128>INT64_MAX else INT64_MAX


cdef inline ex_bn_u128 div_half_up(ex_bn_u128 num, ex_bn_u128 den) noexcept nogil:
    cdef ex_bn_u128 quo = num // den
    cdef ex_bn_u128 rem = num - quo * den
    if rem >= den - rem:          # rem * 2 >= den, without overflowing
        quo += 1
    return quo


cdef inline void rec_head(Record *r, uint16_t kind, uint16_t flags, uint32_t iid, int64_t ts_exchange,
                          int64_t ts_local, int64_t sequence, int64_t price, int64_t quantity,
                          int64_t aux0, int64_t aux1) noexcept nogil:
    r.kind = kind
    r.flags = flags
    r.instrument_id = iid
    r.ts_exchange = ts_exchange
    r.ts_local = ts_local
    r.sequence = sequence
    r.price = price
    r.quantity = quantity
    r.aux0 = aux0
    r.aux1 = aux1


cdef inline void rec_cont(Record *r, uint32_t iid, int64_t p0, int64_t p1, int64_t p2, int64_t p3,
                          int64_t p4, int64_t p5, int64_t p6) noexcept nogil:
    # A continuation slot: kind CONTINUATION, flags = its index (1), payload words p0..p6 in the 56
    # bytes the head uses for ts_exchange .. aux1 (records.pyx).
    rec_head(r, KIND_CONTINUATION, 1, iid, p0, p1, p2, p3, p4, p5, p6)


cdef inline uint64_t fnv1a(const char *s, size_t n) noexcept nogil:
    cdef uint64_t h = 1469598103934665603ULL
    cdef size_t i
    for i in range(n):
        h ^= <uint8_t>s[i]
        h *= 1099511628211ULL
    return h


# ---------------------------------------------------------------------------------- enum mappings

cdef int order_status_code(const char *s, size_t n) noexcept nogil:
    if _eq(s, n, "NEW", 3): return t.ORDER_STATUS_ACCEPTED
    if _eq(s, n, "PARTIALLY_FILLED", 16): return t.ORDER_STATUS_PARTIALLY_FILLED
    if _eq(s, n, "FILLED", 6): return t.ORDER_STATUS_FILLED
    if _eq(s, n, "CANCELED", 8): return t.ORDER_STATUS_CANCELLED
    if _eq(s, n, "PENDING_CANCEL", 14): return t.ORDER_STATUS_PENDING_CANCEL
    if _eq(s, n, "REJECTED", 8): return t.ORDER_STATUS_REJECTED
    if _eq(s, n, "EXPIRED", 7): return t.ORDER_STATUS_EXPIRED
    if _eq(s, n, "EXPIRED_IN_MATCH", 16): return t.ORDER_STATUS_EXPIRED
    if _eq(s, n, "PENDING_NEW", 11): return t.ORDER_STATUS_SUBMITTED
    if _eq(s, n, "NEW_INSURANCE", 13): return t.ORDER_STATUS_ACCEPTED
    if _eq(s, n, "NEW_ADL", 7): return t.ORDER_STATUS_ACCEPTED
    return -1


cdef int order_type_code(const char *s, size_t n, bint usdm) noexcept nogil:
    # The same word means different things on the two venues: spot TAKE_PROFIT is a market order
    # triggered at the stop price, USD-M TAKE_PROFIT a limit one (USD-M's market variant is
    # TAKE_PROFIT_MARKET); likewise USD-M STOP is a stop-limit order.
    if _eq(s, n, "LIMIT", 5): return t.ORDER_TYPE_LIMIT
    if _eq(s, n, "MARKET", 6): return t.ORDER_TYPE_MARKET
    if _eq(s, n, "LIMIT_MAKER", 11): return t.ORDER_TYPE_LIMIT_MAKER
    if _eq(s, n, "STOP_LOSS", 9): return t.ORDER_TYPE_STOP_MARKET
    if _eq(s, n, "STOP_LOSS_LIMIT", 15): return t.ORDER_TYPE_STOP_LIMIT
    if _eq(s, n, "STOP_MARKET", 11): return t.ORDER_TYPE_STOP_MARKET
    if _eq(s, n, "STOP", 4): return t.ORDER_TYPE_STOP_LIMIT
    if _eq(s, n, "TAKE_PROFIT", 11):
        return t.ORDER_TYPE_TAKE_PROFIT_LIMIT if usdm else t.ORDER_TYPE_TAKE_PROFIT_MARKET
    if _eq(s, n, "TAKE_PROFIT_LIMIT", 17): return t.ORDER_TYPE_TAKE_PROFIT_LIMIT
    if _eq(s, n, "TAKE_PROFIT_MARKET", 18): return t.ORDER_TYPE_TAKE_PROFIT_MARKET
    if _eq(s, n, "TRAILING_STOP_MARKET", 20): return t.ORDER_TYPE_TRAILING_STOP_MARKET
    if _eq(s, n, "LIQUIDATION", 11): return t.ORDER_TYPE_LIQUIDATION
    return -1


cdef int tif_code(const char *s, size_t n) noexcept nogil:
    if _eq(s, n, "GTC", 3): return t.TIF_GTC
    if _eq(s, n, "IOC", 3): return t.TIF_IOC
    if _eq(s, n, "FOK", 3): return t.TIF_FOK
    if _eq(s, n, "GTX", 3): return t.TIF_GTX
    if _eq(s, n, "GTD", 3): return t.TIF_GTD
    if _eq(s, n, "RPI", 3): return t.TIF_RPI
    return -1


cdef int exec_code(const char *s, size_t n) noexcept nogil:
    if _eq(s, n, "NEW", 3): return t.EXEC_NEW
    if _eq(s, n, "TRADE", 5): return t.EXEC_TRADE
    if _eq(s, n, "CANCELED", 8): return t.EXEC_CANCELED
    if _eq(s, n, "EXPIRED", 7): return t.EXEC_EXPIRED
    if _eq(s, n, "REJECTED", 8): return t.EXEC_REJECTED
    if _eq(s, n, "REPLACED", 8): return t.EXEC_REPLACED
    if _eq(s, n, "TRADE_PREVENTION", 16): return t.EXEC_TRADE_PREVENTION
    if _eq(s, n, "CALCULATED", 10): return t.EXEC_CALCULATED
    if _eq(s, n, "AMENDMENT", 9): return t.EXEC_AMENDMENT
    return -1


cdef int order_reason_code(const char *s, size_t n) noexcept nogil:
    # Spot executionReport "r" (https://developers.binance.com/docs/binance-spot-api-docs/errors,
    # "Messages for -1010 ERROR_MSG_RECEIVED, -2010 NEW_ORDER_REJECTED, and -2011 CANCEL_REJECTED").
    if _eq(s, n, "NONE", 4): return t.ORDER_REASON_NONE
    if _eq(s, n, "INSUFFICIENT_BALANCE", 20) or _eq(s, n, "INSUFFICIENT_BALANCES", 21):
        return t.ORDER_REASON_INSUFFICIENT_BALANCE
    if _eq(s, n, "SELF_TRADE_PREVENTION", 21): return t.ORDER_REASON_SELF_TRADE_PREVENTION
    if _eq(s, n, "GTX_ORDER_REJECT", 16) or _eq(s, n, "ORDER_WOULD_IMMEDIATELY_MATCH", 29):
        return t.ORDER_REASON_POST_ONLY_WOULD_TAKE
    if _eq(s, n, "PRICE_QTY_EXCEED_HARD_LIMITS", 28): return t.ORDER_REASON_PRICE_QTY_LIMITS
    if _eq(s, n, "UNKNOWN_ORDER", 13): return t.ORDER_REASON_UNKNOWN_ORDER
    if _eq(s, n, "DUPLICATE_ORDER", 15): return t.ORDER_REASON_DUPLICATE_ORDER
    if _eq(s, n, "MARKET_CLOSED", 13): return t.ORDER_REASON_MARKET_CLOSED
    if _eq(s, n, "INSUFFICIENT_LIQUIDITY", 22): return t.ORDER_REASON_INSUFFICIENT_LIQUIDITY
    return -1


cdef int account_reason_code(const char *s, size_t n) noexcept nogil:
    if _eq(s, n, "ORDER", 5): return t.ACCOUNT_REASON_ORDER
    if _eq(s, n, "FUNDING_FEE", 11): return t.ACCOUNT_REASON_FUNDING_FEE
    if _eq(s, n, "DEPOSIT", 7): return t.ACCOUNT_REASON_DEPOSIT
    if _eq(s, n, "WITHDRAW", 8): return t.ACCOUNT_REASON_WITHDRAW
    if _eq(s, n, "WITHDRAW_REJECT", 15): return t.ACCOUNT_REASON_WITHDRAW_REJECT
    if _eq(s, n, "ADJUSTMENT", 10): return t.ACCOUNT_REASON_ADJUSTMENT
    if _eq(s, n, "INSURANCE_CLEAR", 15): return t.ACCOUNT_REASON_INSURANCE_CLEAR
    if _eq(s, n, "ADMIN_DEPOSIT", 13): return t.ACCOUNT_REASON_ADMIN_DEPOSIT
    if _eq(s, n, "ADMIN_WITHDRAW", 14): return t.ACCOUNT_REASON_ADMIN_WITHDRAW
    if _eq(s, n, "MARGIN_TRANSFER", 15): return t.ACCOUNT_REASON_MARGIN_TRANSFER
    if _eq(s, n, "MARGIN_TYPE_CHANGE", 18): return t.ACCOUNT_REASON_MARGIN_TYPE_CHANGE
    if _eq(s, n, "ASSET_TRANSFER", 14): return t.ACCOUNT_REASON_ASSET_TRANSFER
    if _eq(s, n, "OPTIONS_PREMIUM_FEE", 19): return t.ACCOUNT_REASON_OPTIONS_PREMIUM_FEE
    if _eq(s, n, "OPTIONS_SETTLE_PROFIT", 21): return t.ACCOUNT_REASON_OPTIONS_SETTLE_PROFIT
    if _eq(s, n, "AUTO_EXCHANGE", 13): return t.ACCOUNT_REASON_AUTO_EXCHANGE
    if _eq(s, n, "COIN_SWAP_DEPOSIT", 17): return t.ACCOUNT_REASON_COIN_SWAP_DEPOSIT
    if _eq(s, n, "COIN_SWAP_WITHDRAW", 18): return t.ACCOUNT_REASON_COIN_SWAP_WITHDRAW
    return -1


cdef int event_code(const char *s, size_t n) noexcept nogil:
    if _eq(s, n, "depthUpdate", 11): return EV_DEPTH_UPDATE
    if _eq(s, n, "bookTicker", 10): return EV_BOOK_TICKER
    if _eq(s, n, "aggTrade", 8): return EV_AGG_TRADE
    if _eq(s, n, "trade", 5): return EV_TRADE
    if _eq(s, n, "kline", 5): return EV_KLINE
    if _eq(s, n, "markPriceUpdate", 15): return EV_MARK_PRICE
    if _eq(s, n, "executionReport", 15): return EV_EXECUTION_REPORT
    if _eq(s, n, "ORDER_TRADE_UPDATE", 18): return EV_ORDER_TRADE_UPDATE
    if _eq(s, n, "outboundAccountPosition", 23): return EV_ACCOUNT_POSITION
    if _eq(s, n, "ACCOUNT_UPDATE", 14): return EV_ACCOUNT_UPDATE
    if _eq(s, n, "listenKeyExpired", 16): return EV_LISTEN_KEY_EXPIRED
    if _eq(s, n, "serverShutdown", 14): return EV_SERVER_SHUTDOWN
    if _eq(s, n, "eventStreamTerminated", 21): return EV_STREAM_TERMINATED
    if _eq(s, n, "ALGO_UPDATE", 11): return EV_ALGO_UPDATE
    return EV_IGNORED


cdef int algo_status_code(const char *s, size_t n) noexcept nogil:
    # USD-M algo (conditional) order statuses,
    # https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Algo-Order-Update
    # Until it triggers, and while the triggered order works in the matching engine, the order is live
    # (ACCEPTED): its fills and its own final state come in ORDER_TRADE_UPDATE under the same client id.
    # FINISHED is resolved against the executed quantity by the caller (FILLED or CANCELLED).
    if _eq(s, n, "NEW", 3): return t.ORDER_STATUS_ACCEPTED
    if _eq(s, n, "TRIGGERING", 10): return t.ORDER_STATUS_ACCEPTED
    if _eq(s, n, "TRIGGERED", 9): return t.ORDER_STATUS_ACCEPTED
    if _eq(s, n, "FINISHED", 8): return t.ORDER_STATUS_FILLED
    if _eq(s, n, "CANCELED", 8): return t.ORDER_STATUS_CANCELLED
    if _eq(s, n, "REJECTED", 8): return t.ORDER_STATUS_REJECTED
    if _eq(s, n, "EXPIRED", 7): return t.ORDER_STATUS_EXPIRED
    return -1


cdef bint is_partial_depth_stream(const char *s, size_t n) noexcept nogil:
    """`<symbol>@depth<levels>[@<speed>]`: a top-N book, not a diff (USD-M sends it in the depthUpdate
    shape, so only the stream name tells them apart)."""
    cdef size_t i
    if n < 7:
        return False
    for i in range(n - 6):
        if memcmp(s + i, b"@depth", 6) == 0 and b'0' <= s[i + 6] <= b'9':
            return True
    return False


# ------------------------------------------------------------------------------ pass 1: the JSON walk

# Module functions rather than methods: their parameters are C++ (simdjson) types, and the class's
# .pxd must stay includable from plain C modules that cimport the decoder.

cdef int read_object(BinanceDecoder self, ex_jobj *it, Fields *f, int level) noexcept nogil:
    """Read every field of an object into f. level 0 = root, 1 = wrapped payload, 2 = nested object.
    Returns 0 or a DropReason."""
    cdef const char *k
    cdef size_t kn
    cdef ex_jval v
    cdef ex_jobj sub
    cdef int r, typ, slot, b
    cdef Slot *sl
    cdef long got
    cdef const char *s
    cdef size_t sn
    while True:
        r = ex_jobj_next(it, &k, &kn, &v)
        if r == 0:
            return 0
        if r < 0:
            return self._json_fail(r)
        slot = key_slot(k, kn)
        if slot < 0:
            continue
        r = ex_jval_type(&v, &typ)
        if r < 0:
            return self._json_fail(r)
        if level == 0:
            if (slot == K_data or slot == K_event) and typ == EXJ_OBJECT:
                if self._wrapped:
                    return DROP_MALFORMED_JSON
                self._wrapped = True
                r = ex_jobj_open(&v, &sub)
                if r < 0:
                    return self._json_fail(r)
                r = read_object(self, &sub, f, 1)
                if r != 0:
                    return r
                continue
            if slot != K_stream and slot != K_subscriptionId:
                self._root_extra += 1
        if typ == EXJ_ARRAY and level < 2 and (slot == K_b or slot == K_bids or slot == K_a or slot == K_asks):
            if (slot == K_b or slot == K_bids) and (fhas(f, K_b) or fhas(f, K_bids)) or \
                    (slot == K_a or slot == K_asks) and (fhas(f, K_a) or fhas(f, K_asks)):
                self._set_detail("a second bids / asks list", NULL, 0)
                return DROP_MALFORMED_JSON
        sl = fields_put(f, slot)
        sl.type = SLOT_OTHER
        if typ == EXJ_STRING:
            r = ex_jval_string(&v, &s, &sn)
            if r < 0:
                return self._json_fail(r)
            sl.type = SLOT_STR
            sl.s = s
            sl.n = <Py_ssize_t>sn
        elif typ == EXJ_NUMBER:
            sl.type = SLOT_INT if ex_jval_int64(&v, &sl.i) == 0 else SLOT_BADNUM
        elif typ == EXJ_BOOL:
            r = ex_jval_bool(&v, &b)
            if r < 0:
                return self._json_fail(r)
            sl.type = SLOT_BOOL
            sl.i = b
        elif typ == EXJ_NULL:
            sl.type = SLOT_NULL
        elif typ == EXJ_ARRAY:
            if level < 2 and (slot == K_b or slot == K_bids or slot == K_a or slot == K_asks):
                got = ex_jval_string_pairs(&v, &self._bids if slot == K_b or slot == K_bids else &self._asks)
                if got < 0:
                    if got == -EXJ_ERR_NOT_A_PAIR:
                        self._set_detail("bids" if slot == K_b or slot == K_bids else "asks", NULL, 0)
                        self._json_error = <int>got
                        return DROP_BAD_FIELD
                    return self._json_fail(<int>got)
                sl.type = SLOT_LEVELS
            elif slot == K_B:
                r = read_balances(self, &v)
                if r != 0:
                    return r
                sl.type = SLOT_ENTRIES
            elif slot == K_P and level == 2:
                r = read_positions(self, &v)
                if r != 0:
                    return r
                sl.type = SLOT_ENTRIES
        elif typ == EXJ_OBJECT:
            if level <= 1:
                if slot == K_k or slot == K_o or slot == K_a or slot == K_error:
                    if self._inner.present[0] or self._inner.present[1]:
                        return DROP_MALFORMED_JSON    # two nested objects: not a Binance shape
                    r = ex_jobj_open(&v, &sub)
                    if r < 0:
                        return self._json_fail(r)
                    r = read_object(self, &sub, &self._inner, 2)
                    if r != 0:
                        return r
                    sl.type = SLOT_OBJECT


cdef StrView entry_string(ex_jval *v, int *err) noexcept nogil:
    cdef StrView out
    cdef const char *s
    cdef size_t n
    cdef int typ
    out.s = NULL
    out.n = -1
    err[0] = ex_jval_type(v, &typ)
    if err[0] < 0:
        return out
    if typ == EXJ_STRING:
        err[0] = ex_jval_string(v, &s, &n)
        if err[0] == 0:
            out.s = s
            out.n = <Py_ssize_t>n
    # other types stay "absent": the builder reports the missing field
    return out


cdef int read_balances(BinanceDecoder self, ex_jval *arr_value) noexcept nogil:
    cdef ex_jarr arr
    cdef ex_jobj obj
    cdef ex_jval item, v
    cdef const char *k
    cdef size_t kn
    cdef int r, err = 0
    cdef BalanceEntry *e
    cdef BalanceEntry *grown
    r = ex_jarr_open(arr_value, &arr)
    if r < 0:
        return self._json_fail(r)
    while True:
        r = ex_jarr_next(&arr, &item)
        if r == 0:
            return 0
        if r < 0:
            return self._json_fail(r)
        if self._n_balances == self._cap_balances:
            grown = <BalanceEntry *>realloc(self._balances, (self._cap_balances * 2 + 8) * sizeof(BalanceEntry))
            if grown == NULL:
                return DROP_NO_MEMORY
            self._balances = grown
            self._cap_balances = self._cap_balances * 2 + 8
        e = &self._balances[self._n_balances]
        e.asset.n = -1
        e.free_or_wallet.n = -1
        e.locked_or_cross.n = -1
        e.change.n = -1
        r = ex_jobj_open(&item, &obj)
        if r < 0:
            return DROP_BAD_FIELD
        while True:
            r = ex_jobj_next(&obj, &k, &kn, &v)
            if r == 0:
                break
            if r < 0:
                return self._json_fail(r)
            if _eq(k, kn, "a", 1):
                e.asset = entry_string(&v, &err)
            elif _eq(k, kn, "f", 1) or _eq(k, kn, "wb", 2):
                e.free_or_wallet = entry_string(&v, &err)
            elif _eq(k, kn, "l", 1) or _eq(k, kn, "cw", 2):
                e.locked_or_cross = entry_string(&v, &err)
            elif _eq(k, kn, "bc", 2):
                e.change = entry_string(&v, &err)
            if err < 0:
                return self._json_fail(err)
        self._n_balances += 1


cdef int read_positions(BinanceDecoder self, ex_jval *arr_value) noexcept nogil:
    cdef ex_jarr arr
    cdef ex_jobj obj
    cdef ex_jval item, v
    cdef const char *k
    cdef size_t kn
    cdef int r, err = 0
    cdef PositionEntry *e
    cdef PositionEntry *grown
    r = ex_jarr_open(arr_value, &arr)
    if r < 0:
        return self._json_fail(r)
    while True:
        r = ex_jarr_next(&arr, &item)
        if r == 0:
            return 0
        if r < 0:
            return self._json_fail(r)
        if self._n_positions == self._cap_positions:
            grown = <PositionEntry *>realloc(self._positions, (self._cap_positions * 2 + 8) * sizeof(PositionEntry))
            if grown == NULL:
                return DROP_NO_MEMORY
            self._positions = grown
            self._cap_positions = self._cap_positions * 2 + 8
        e = &self._positions[self._n_positions]
        memset(e, 0, sizeof(PositionEntry))
        e.symbol.n = -1
        e.amount.n = -1
        e.entry.n = -1
        e.breakeven.n = -1
        e.realized.n = -1
        e.unrealized.n = -1
        e.margin_type.n = -1
        e.isolated.n = -1
        e.side.n = -1
        r = ex_jobj_open(&item, &obj)
        if r < 0:
            return DROP_BAD_FIELD
        while True:
            r = ex_jobj_next(&obj, &k, &kn, &v)
            if r == 0:
                break
            if r < 0:
                return self._json_fail(r)
            if _eq(k, kn, "s", 1):
                e.symbol = entry_string(&v, &err)
            elif _eq(k, kn, "pa", 2):
                e.amount = entry_string(&v, &err)
            elif _eq(k, kn, "ep", 2):
                e.entry = entry_string(&v, &err)
            elif _eq(k, kn, "bep", 3):
                e.breakeven = entry_string(&v, &err)
            elif _eq(k, kn, "cr", 2):
                e.realized = entry_string(&v, &err)
            elif _eq(k, kn, "up", 2):
                e.unrealized = entry_string(&v, &err)
            elif _eq(k, kn, "mt", 2):
                e.margin_type = entry_string(&v, &err)
            elif _eq(k, kn, "iw", 2):
                e.isolated = entry_string(&v, &err)
            elif _eq(k, kn, "ps", 2):
                e.side = entry_string(&v, &err)
            if err < 0:
                return self._json_fail(err)
        self._n_positions += 1


# ------------------------------------------------------------------------------------------ decoder

@cython.final
cdef class BinanceDecoder:
    """Binance frames -> records, for one market (Market.BINANCE_SPOT or Market.BINANCE_USDM).

    BinanceDecoder(registry, market, *, max_frame_bytes=4 MiB, time_unit="ms")

    Python API: decode(frame, ts_local=None) -> records (a new array), decode_to(frame, out, ts_local)
    -> count written into `out`, decode_depth_snapshot(body, instrument, ts_local=None), info (dict of
    the last frame), stats(), last_error, last_drop, client-order-id maps. Cython API: decode_into /
    decode_snapshot_into (nogil). One decoder is used by one thread at a time.
    """

    def __cinit__(self):
        self._json = NULL
        self._buf = NULL
        self._balances = NULL
        self._positions = NULL
        self._symtab = NULL
        self._scratch = NULL
        self._bids.data = NULL
        self._asks.data = NULL

    def __init__(self, InstrumentRegistry registry not None, market, *, Py_ssize_t max_frame_bytes=4 << 20,
                 str time_unit="ms"):
        market = Market(market)
        if market not in (Market.BINANCE_SPOT, Market.BINANCE_USDM):
            raise ValueError(f"BinanceDecoder decodes BINANCE_SPOT or BINANCE_USDM frames, not {market.name}")
        if time_unit not in ("ms", "us"):
            raise ValueError(f"time_unit is 'ms' (Binance's default) or 'us' (streams opened with "
                             f"timeUnit=MICROSECOND), got {time_unit!r}")
        if not 64 <= max_frame_bytes <= (1 << 31):
            raise ValueError(f"max_frame_bytes must be between 64 and 2**31, got {max_frame_bytes}")
        self.registry = registry
        self.market = market
        self._usdm = market == Market.BINANCE_USDM
        self._ts_mul = 1000 if time_unit == "ms" else 1
        self._max_frame = max_frame_bytes
        self._json = ex_json_new(<size_t>max_frame_bytes)
        self._sym_cap = 64
        self._symtab = <SymbolEntry *>calloc(self._sym_cap, sizeof(SymbolEntry))
        if self._json == NULL or self._symtab == NULL:
            raise MemoryError()
        self._sym_version = registry.version
        self._coid_by_text = {}
        self._coid_text = {}
        self._asset_cache = {}
        self._log = logging.getLogger("extrema.adapters.binance")
        memset(&self.info, 0, sizeof(FrameInfo))

    def __dealloc__(self):
        if self._json != NULL:
            ex_json_free(self._json)
        free(self._buf)
        free(self._bids.data)
        free(self._asks.data)
        free(self._balances)
        free(self._positions)
        free(self._symtab)
        free(self._scratch)

    # ---- compiled API -----------------------------------------------------------------------------

    cdef Py_ssize_t decode_into(self, const char *data, Py_ssize_t n, int64_t ts_local, Record *out,
                                Py_ssize_t capacity) except -1 nogil:
        """Decode one websocket frame data[0:n] into out[0:capacity]; returns the number of records
        written (0 for control frames, ignored events and drops). self.info describes the frame.
        Never raises for bad input (that is a counted drop); -1 only when the padded copy buffer
        cannot be allocated (MemoryError)."""
        cdef int reason
        cdef Py_ssize_t written = 0
        self._begin_frame()
        reason = self._prepare(data, n)
        if reason < 0:
            return -1
        self._buf_ts = ts_local
        if reason == 0:
            reason = self._parse(n)
        if reason == 0:
            reason = self._build(ts_local, out, capacity, &written)
        return self._finish(reason, written, data, n)

    cdef Py_ssize_t decode_snapshot_into(self, const char *data, Py_ssize_t n, uint32_t instrument_id,
                                         int64_t ts_local, Record *out, Py_ssize_t capacity) except -1 nogil:
        """Decode a REST depth body (/api/v3/depth, /fapi/v1/depth) of `instrument_id` into out; returns
        the number of records (0 on a drop: see self.info.drop_reason). Same error contract as
        decode_into."""
        cdef int reason
        cdef Py_ssize_t written = 0
        cdef SymbolEntry entry
        self._begin_frame()
        self.info.event = EV_DEPTH_SNAPSHOT
        reason = self._prepare(data, n)
        if reason < 0:
            return -1
        if reason == 0:
            reason = self._parse(n)
        if reason == 0:
            reason = self._instrument_by_id(instrument_id, &entry)
        if reason == 0:
            self.info.event = EV_DEPTH_SNAPSHOT
            reason = self._build_snapshot(&entry, ts_local, out, capacity, &written)
        return self._finish(reason, written, data, n)

    cdef Py_ssize_t rehearse(self, Record *out, Py_ssize_t capacity) noexcept nogil:
        """Decode the last frame again into out, changing nothing anyone can see: `info`, the counters and
        the diagnostics are as they were, only the scratch state of a decode in progress is rewritten.
        The engine's busy-poll loop calls it between frames to keep the decoder's code and data cached
        (extrema.engine.warm says why). Only a market-data frame the decoder took is decoded again
        (user-data events keep client order id maps: not rehearsed). Returns the records written, or 0."""
        cdef FrameInfo saved = self.info
        cdef int64_t n_frames = self._n_frames, unknown_enum = self._n_unknown_enum
        cdef int64_t klines_open = self._n_klines_open, unknown_positions = self._n_unknown_positions
        cdef Py_ssize_t error_len = self._error_len, ignored_len = self._ignored_len
        cdef Py_ssize_t detail_len = self._drop_detail_len
        cdef int json_error = self._json_error
        cdef Py_ssize_t written = 0
        if saved.drop_reason != 0 or saved.records <= 0 or self._buf_len <= 0 or not (
                EV_DEPTH_UPDATE == saved.event or EV_TRADE <= saved.event <= EV_MARK_PRICE):
            return 0
        self._begin_frame()
        if self._parse(self._buf_len) == 0:
            self._build(self._buf_ts, out, capacity, &written)
        self.info = saved
        self._n_frames = n_frames
        self._n_unknown_enum = unknown_enum
        self._n_klines_open = klines_open
        self._n_unknown_positions = unknown_positions
        self._error_len = error_len
        self._ignored_len = ignored_len
        self._drop_detail_len = detail_len
        self._json_error = json_error
        return written

    # ---- frame plumbing ---------------------------------------------------------------------------

    cdef void _begin_frame(self) noexcept nogil:
        memset(&self.info, 0, sizeof(FrameInfo))
        self.info.request_id = -1
        fields_clear(&self._top)
        fields_clear(&self._inner)
        self._wrapped = False
        self._root_extra = 0
        self._bids.n = 0
        self._asks.n = 0
        self._n_balances = 0
        self._n_positions = 0
        self._drop_detail_len = 0
        self._json_error = 0
        self._n_frames += 1

    cdef int _prepare(self, const char *data, Py_ssize_t n) except -1 nogil:
        """Copy the frame into the padded buffer simdjson reads. 0, a DropReason, or -1 (no memory)."""
        cdef Py_ssize_t pad = <Py_ssize_t>ex_json_padding()
        cdef Py_ssize_t cap
        cdef char *nb
        if n <= 0:
            return DROP_EMPTY
        if n > self._max_frame:
            return DROP_OVERSIZED
        if n + pad > self._buf_cap:
            cap = 4096
            while cap < n + pad:
                cap *= 2
            nb = <char *>realloc(self._buf, cap)
            if nb == NULL:
                with gil:
                    raise MemoryError(f"cannot grow the Binance frame buffer to {cap} bytes")
            self._buf = nb
            self._buf_cap = cap
        memcpy(self._buf, data, n)
        self._buf_len = n
        # simdjson reads up to SIMDJSON_PADDING bytes past the end; zero them so what it sees there
        # never depends on the previous frame.
        memset(self._buf + n, 0, pad)
        return 0

    cdef Py_ssize_t _finish(self, int reason, Py_ssize_t written, const char *data, Py_ssize_t n) noexcept nogil:
        if reason != 0:
            self.info.drop_reason = reason
            self.info.records = 0
            self._drops[reason] += 1
            self._log_drop(reason, data, n)
            return 0
        self.info.records = written
        self._n_records += written
        self._events[self.info.event] += 1
        return written

    cdef void _set_detail(self, const char *what, const char *s, Py_ssize_t n) noexcept nogil:
        """Remember what failed (copied: readable through last_drop after the call)."""
        cdef Py_ssize_t pos = 0, i = 0
        while what[i] != 0 and pos < 60:
            self._drop_detail[pos] = what[i]
            pos += 1
            i += 1
        if s != NULL:
            self._drop_detail[pos] = b':'
            self._drop_detail[pos + 1] = b' '
            self._drop_detail[pos + 2] = b"'"
            pos += 3
            i = 0
            while i < n and pos < 150:
                self._drop_detail[pos] = s[i]
                pos += 1
                i += 1
            self._drop_detail[pos] = b"'"
            pos += 1
        self._drop_detail_len = pos

    cdef void _log_drop(self, int reason, const char *data, Py_ssize_t n) noexcept nogil:
        cdef int64_t now = monotonic_ns()
        if now < self._log_next_ns[reason]:
            self._log_suppressed[reason] += 1
            return
        self._log_next_ns[reason] = now + LOG_INTERVAL_NS
        with gil:
            try:
                suppressed = self._log_suppressed[reason]
                self._log_suppressed[reason] = 0
                detail = self.last_drop[1] if self.info.drop_reason else ""
                self._log.warning(
                    "Binance %s decoder dropped a frame: %s%s%s; frame starts %r%s", self.market.name,
                    _DROP_NAMES[reason], " - " if detail else "", detail, data[:min(n, 160)] if n > 0 else b"",
                    f" ({suppressed} more {_DROP_NAMES[reason]} drops since the last such line, "
                    f"which is written at most every {LOG_INTERVAL_NS // 1_000_000_000} s)" if suppressed else "")
            except Exception:
                pass     # logging must never take the decoder down

    # ---- pass 1: walk the JSON once ---------------------------------------------------------------

    cdef int _json_fail(self, int code) noexcept nogil:
        self._json_error = code
        if code == -EXJ_ERR_NO_MEMORY:
            return DROP_NO_MEMORY
        return DROP_MALFORMED_JSON

    cdef int _parse(self, Py_ssize_t n) noexcept nogil:
        cdef ex_jobj root
        cdef int r = ex_json_iterate(self._json, self._buf, <size_t>n, <size_t>self._buf_cap)
        if r < 0:
            return self._json_fail(r)
        r = ex_json_root_object(self._json, &root)
        if r < 0:
            # a well-formed non-object (array, number, string) is a different drop from broken JSON
            self._json_error = r
            return DROP_NOT_AN_OBJECT if n > 0 and self._buf[0] != b'{' and self._looks_like_json(n) \
                else DROP_MALFORMED_JSON
        r = read_object(self, &root, &self._top, 0)
        if r != 0:
            return r
        if not ex_json_at_end(self._json):
            return DROP_MALFORMED_JSON
        if self._wrapped and self._root_extra:
            return DROP_MALFORMED_JSON      # fields beside "data" / "event": not a Binance frame
        return 0

    cdef bint _looks_like_json(self, Py_ssize_t n) noexcept nogil:
        """A JSON value that is not an object (an array, a string, a number, a literal) rather than
        broken text: tells NOT_AN_OBJECT from MALFORMED_JSON in the drop counters."""
        cdef Py_ssize_t i = 0, j = n
        cdef const char *b = self._buf
        while i < n and (b[i] == b' ' or b[i] == b'\n' or b[i] == b'\r' or b[i] == b'\t'):
            i += 1
        while j > i and (b[j - 1] == b' ' or b[j - 1] == b'\n' or b[j - 1] == b'\r' or b[j - 1] == b'\t'):
            j -= 1
        if i >= j:
            return False
        if b[i] == b'[' or b[i] == b'"' or b[i] == b'-' or b'0' <= b[i] <= b'9':
            return True
        return _eq(b + i, j - i, "true", 4) or _eq(b + i, j - i, "false", 5) or _eq(b + i, j - i, "null", 4)





    # ---- field access for pass 2 ------------------------------------------------------------------

    cdef int _need_int(self, const Fields *f, int k, const char *name, int64_t *out) noexcept nogil:
        cdef const Slot *sl = fget(f, k)
        if sl == NULL:
            self._set_detail(name, NULL, 0)
            return DROP_MISSING_FIELD
        if sl.type != SLOT_INT:
            self._set_detail(name, NULL, 0)
            return DROP_BAD_FIELD
        out[0] = sl.i
        return 0

    cdef int64_t _opt_int(self, const Fields *f, int k, int64_t default) noexcept nogil:
        cdef const Slot *sl = fget(f, k)
        if sl == NULL or sl.type != SLOT_INT:
            return default
        return sl.i

    cdef int _need_str(self, const Fields *f, int k, const char *name, const char **s,
                       Py_ssize_t *n) noexcept nogil:
        cdef const Slot *sl = fget(f, k)
        if sl == NULL:
            self._set_detail(name, NULL, 0)
            return DROP_MISSING_FIELD
        if sl.type != SLOT_STR:
            self._set_detail(name, NULL, 0)
            return DROP_BAD_FIELD
        s[0] = sl.s
        n[0] = sl.n
        return 0

    cdef int _need_bool(self, const Fields *f, int k, const char *name, bint *out) noexcept nogil:
        cdef const Slot *sl = fget(f, k)
        if sl == NULL:
            self._set_detail(name, NULL, 0)
            return DROP_MISSING_FIELD
        if sl.type != SLOT_BOOL:
            self._set_detail(name, NULL, 0)
            return DROP_BAD_FIELD
        out[0] = sl.i != 0
        return 0

    cdef int _dec(self, const char *s, Py_ssize_t n, int precision, bint allow_negative, const char *name,
                  int64_t *out) noexcept nogil:
        cdef ex_fixed_status st = ex_parse_fixed(s, n, precision, allow_negative, out)
        if st != EX_FIXED_OK:
            self._set_detail(name, s, n)
            return drop_of_fixed(st)
        return 0

    cdef int _need_dec(self, const Fields *f, int k, const char *name, int precision, bint allow_negative,
                       int64_t *out) noexcept nogil:
        cdef const char *s
        cdef Py_ssize_t n
        cdef int r = self._need_str(f, k, name, &s, &n)
        if r != 0:
            return r
        return self._dec(s, n, precision, allow_negative, name, out)

    cdef int _opt_dec(self, const Fields *f, int k, const char *name, int precision, bint allow_negative,
                      bint rounded, int64_t *out) noexcept nogil:
        """A decimal that may be absent, null or "" (-> 0)."""
        cdef const Slot *sl = fget(f, k)
        cdef int r
        out[0] = 0
        if sl == NULL or sl.type == SLOT_NULL or (sl.type == SLOT_STR and sl.n == 0):
            return 0
        if sl.type != SLOT_STR:
            self._set_detail(name, NULL, 0)
            return DROP_BAD_FIELD
        if rounded:
            r = parse_rounded(sl.s, sl.n, precision, allow_negative, out)
            if r != 0:
                self._set_detail(name, sl.s, sl.n)
            return r
        return self._dec(sl.s, sl.n, precision, allow_negative, name, out)

    cdef int _view_dec(self, StrView v, const char *name, int precision, bint allow_negative, bint rounded,
                       bint required, int64_t *out) noexcept nogil:
        cdef int r
        out[0] = 0
        if v.n < 0:
            if required:
                self._set_detail(name, NULL, 0)
                return DROP_MISSING_FIELD
            return 0
        if rounded:
            r = parse_rounded(v.s, v.n, precision, allow_negative, out)
            if r != 0:
                self._set_detail(name, v.s, v.n)
            return r
        return self._dec(v.s, v.n, precision, allow_negative, name, out)

    cdef int64_t _time(self, const Fields *f, int k) noexcept nogil:
        cdef const Slot *sl = fget(f, k)
        if sl == NULL or sl.type != SLOT_INT:
            return 0
        return sl.i * self._ts_mul

    # ---- instruments ------------------------------------------------------------------------------

    cdef int _symbol(self, const Fields *f, int k, SymbolEntry *out) noexcept nogil:
        cdef const char *s
        cdef Py_ssize_t n
        cdef int r = self._need_str(f, k, "s (symbol)", &s, &n)
        if r != 0:
            return r
        return self._resolve(s, n, out)

    cdef int _resolve(self, const char *s, Py_ssize_t n, SymbolEntry *out) noexcept nogil:
        """The instrument of venue symbol s[0:n]: 0 with *out filled, or DROP_UNKNOWN_SYMBOL."""
        cdef uint64_t h
        cdef Py_ssize_t i, mask
        cdef SymbolEntry *e
        if self.registry.version != self._sym_version:
            # instruments were added or replaced (a new precision keeps the id): forget everything
            memset(self._symtab, 0, self._sym_cap * sizeof(SymbolEntry))
            self._sym_count = 0
            self._sym_version = self.registry.version
        if n <= 0 or n > 31:
            self._set_detail("symbol", s, n)
            return DROP_UNKNOWN_SYMBOL
        h = fnv1a(s, n)
        mask = self._sym_cap - 1
        i = <Py_ssize_t>(h & <uint64_t>mask)
        while True:
            e = &self._symtab[i]
            if e.len == 0:
                break
            if e.len == n and memcmp(e.key, s, n) == 0:
                if not e.known:
                    self._set_detail("symbol", s, n)
                    return DROP_UNKNOWN_SYMBOL
                out[0] = e[0]
                self.info.instrument_id = e.instrument_id
                return 0
            i = (i + 1) & mask
        # Not seen yet: ask the registry (the GIL, once per symbol and registry version).
        if self._sym_count * 2 >= self._sym_cap:
            if self._grow_symtab() != 0:
                return DROP_NO_MEMORY
            return self._resolve(s, n, out)
        memcpy(e.key, s, n)
        e.len = <uint8_t>n
        self._sym_count += 1
        self._lookup_registry(e)
        if not e.known:
            self._set_detail("symbol", s, n)
            return DROP_UNKNOWN_SYMBOL
        out[0] = e[0]
        self.info.instrument_id = e.instrument_id
        return 0

    cdef int _grow_symtab(self) noexcept nogil:
        cdef Py_ssize_t cap = self._sym_cap * 2
        cdef SymbolEntry *old = self._symtab
        cdef SymbolEntry *nt
        cdef Py_ssize_t i, j, mask = cap - 1
        if cap > 65536:
            # a flood of unknown symbols (garbage frames): start over rather than grow without bound
            memset(self._symtab, 0, self._sym_cap * sizeof(SymbolEntry))
            self._sym_count = 0
            return 0
        nt = <SymbolEntry *>calloc(cap, sizeof(SymbolEntry))
        if nt == NULL:
            return -1
        for i in range(self._sym_cap):
            if old[i].len:
                j = <Py_ssize_t>(fnv1a(old[i].key, old[i].len) & <uint64_t>mask)
                while nt[j].len:
                    j = (j + 1) & mask
                nt[j] = old[i]
        free(old)
        self._symtab = nt
        self._sym_cap = cap
        return 0

    cdef void _lookup_registry(self, SymbolEntry *e) noexcept with gil:
        cdef Instrument inst
        e.known = 0
        try:
            inst = self.registry.by_venue_symbol(self.market, e.key[:e.len].decode("utf-8", "replace"))
        except UnknownInstrumentError:
            return
        except Exception:
            return
        e.known = 1
        e.instrument_id = inst.id
        e.price_precision = <uint8_t>inst.price_precision
        e.size_precision = <uint8_t>inst.size_precision

    cdef int _instrument_by_id(self, uint32_t iid, SymbolEntry *out) noexcept with gil:
        cdef Instrument inst
        try:
            inst = self.registry[iid]
        except Exception:
            return DROP_NO_INSTRUMENT
        memset(out, 0, sizeof(SymbolEntry))
        out.known = 1
        out.instrument_id = inst.id
        out.price_precision = <uint8_t>inst.price_precision
        out.size_precision = <uint8_t>inst.size_precision
        self.info.instrument_id = inst.id
        return 0

    # ---- ids that need Python objects (user-data frames only) -------------------------------------

    cdef int64_t _client_id(self, const char *s, Py_ssize_t n) noexcept nogil:
        # Our own orders (the execution layer's `ex<tag><digits>`) parse back in C: no map insert per order,
        # no GIL. Anything else (another engine's tag, manual / liquidation ids, a malformed or oversized
        # number) takes the map.
        cdef int64_t own
        if n <= 0:
            return 0
        own = parse_own_client_id(s, n, self._own_prefix, self._own_prefix_n)
        if own > 0:
            return own
        return self._client_id_mapped(s, n)

    cdef int64_t _client_id_mapped(self, const char *s, Py_ssize_t n) noexcept with gil:
        key = s[:n]
        found = self._coid_by_text.get(key)
        if found is not None:
            return found
        with _external_ids_lock:
            new_id = next(_external_ids)
        self._coid_by_text[key] = new_id
        self._coid_text[new_id] = key.decode("utf-8", "replace")
        return new_id

    cdef int64_t _asset(self, const char *s, Py_ssize_t n) noexcept with gil:
        if n <= 0 or s == NULL:
            return 0
        key = s[:n]
        found = self._asset_cache.get(key)
        if found is None:
            try:
                found = _asset_id(key.decode("utf-8", "replace"))
            except ValueError:
                return 0
            self._asset_cache[key] = found
        return found

    cdef int _enum(self, int code, int unknown) noexcept nogil:
        if code < 0:
            self._n_unknown_enum += 1
            return unknown
        return code

    # ---- pass 2: records --------------------------------------------------------------------------

    cdef int _build(self, int64_t ts_local, Record *out, Py_ssize_t capacity, Py_ssize_t *written) noexcept nogil:
        cdef const Fields *f = &self._top
        cdef const Slot *e = fget(f, K_e)
        cdef int ev
        self.info.event_time = self._time(f, K_E)
        self.info.transaction_time = self._time(f, K_T)
        if e != NULL and e.type == SLOT_STR:
            ev = event_code(e.s, e.n)
        elif e != NULL:
            self._set_detail("e (event type)", NULL, 0)
            return DROP_BAD_FIELD
        elif fhas(f, K_lastUpdateId):
            ev = EV_DEPTH_SNAPSHOT
        elif fhas(f, K_u) and fhas(f, K_s) and fhas(f, K_b) and fhas(f, K_a):
            ev = EV_BOOK_TICKER             # spot bookTicker: no "e"
        elif fhas(f, K_error) or (fhas(f, K_code) and fhas(f, K_msg)):
            ev = EV_ERROR
        elif fhas(f, K_result) or fhas(f, K_id):
            ev = EV_CONTROL
        else:
            self._set_detail("e (event type)", NULL, 0)
            return DROP_MISSING_FIELD
        self.info.event = ev
        if ev == EV_DEPTH_UPDATE:
            if self._is_partial_depth():
                self.info.event = EV_IGNORED
                return 0
            return self._build_depth(ts_local, out, capacity, written)
        if ev == EV_TRADE or ev == EV_AGG_TRADE:
            return self._build_trade(ev, ts_local, out, capacity, written)
        if ev == EV_BOOK_TICKER:
            return self._build_quote(ts_local, out, capacity, written)
        if ev == EV_KLINE:
            return self._build_kline(ts_local, out, capacity, written)
        if ev == EV_MARK_PRICE:
            return self._build_mark(ts_local, out, capacity, written)
        if ev == EV_EXECUTION_REPORT:
            return self._build_order(&self._top, False, ts_local, out, capacity, written)
        if ev == EV_ORDER_TRADE_UPDATE:
            if not fhas(&self._top, K_o) or fget(&self._top, K_o).type != SLOT_OBJECT:
                self._set_detail("o (order)", NULL, 0)
                return DROP_BAD_FIELD if fhas(&self._top, K_o) else DROP_MISSING_FIELD
            return self._build_order(&self._inner, True, ts_local, out, capacity, written)
        if ev == EV_ACCOUNT_POSITION or ev == EV_ACCOUNT_UPDATE:
            return self._build_account(ev, ts_local, out, capacity, written)
        if ev == EV_ALGO_UPDATE:
            if not fhas(&self._top, K_o) or fget(&self._top, K_o).type != SLOT_OBJECT:
                self._set_detail("o (algo order)", NULL, 0)
                return DROP_BAD_FIELD if fhas(&self._top, K_o) else DROP_MISSING_FIELD
            return self._build_algo(ts_local, out, capacity, written)
        if ev == EV_DEPTH_SNAPSHOT:
            if self._is_partial_depth():
                self.info.event = EV_IGNORED
                return 0
            self._set_detail("symbol (a depth body names none: use decode_depth_snapshot)", NULL, 0)
            return DROP_NO_INSTRUMENT
        if ev == EV_ERROR:
            return self._build_error()
        if ev == EV_CONTROL:
            self.info.request_id = self._opt_int(f, K_id, -1)
            return 0
        if ev == EV_IGNORED:
            self._remember_ignored(e.s, e.n)
        return 0

    cdef bint _is_partial_depth(self) noexcept nogil:
        cdef const Slot *st = fget(&self._top, K_stream)
        return st != NULL and st.type == SLOT_STR and is_partial_depth_stream(st.s, st.n)

    cdef void _remember_ignored(self, const char *s, Py_ssize_t n) noexcept nogil:
        if n > 47:
            n = 47
        memcpy(self._ignored_event, s, n)
        self._ignored_len = n

    cdef int _build_error(self) noexcept nogil:
        cdef const Fields *f = &self._top
        cdef const Slot *msg
        if fhas(f, K_error):
            if fget(f, K_error).type == SLOT_OBJECT:
                f = &self._inner
            elif fget(f, K_error).type == SLOT_STR:
                msg = fget(f, K_error)
                self._copy_error(msg.s, msg.n)
        self.info.error_code = self._opt_int(f, K_code, 0)
        self.info.request_id = self._opt_int(&self._top, K_id, -1)
        msg = fget(f, K_msg)
        if msg != NULL and msg.type == SLOT_STR:
            self._copy_error(msg.s, msg.n)
        return 0

    cdef void _copy_error(self, const char *s, Py_ssize_t n) noexcept nogil:
        if n > 511:
            n = 511
        memcpy(self._error_text, s, n)
        self._error_len = n

    cdef int _check_capacity(self, Py_ssize_t need, Py_ssize_t capacity) noexcept nogil:
        self.info.needed = need
        if need > capacity:
            return DROP_CAPACITY
        return 0

    cdef int _build_depth(self, int64_t ts_local, Record *out, Py_ssize_t capacity, Py_ssize_t *written) noexcept nogil:
        cdef const Fields *f = &self._top
        cdef SymbolEntry inst
        cdef int64_t first_id, final_id, prev_id = 0, ts, price, qty
        cdef Py_ssize_t nb, na, i, n
        cdef int pp, sp, r
        cdef const ex_strpair *lv
        cdef uint16_t flags
        cdef Record *rec
        r = self._need_int(f, K_U, "U (first update id)", &first_id)
        if r == 0:
            r = self._need_int(f, K_u, "u (final update id)", &final_id)
        if r == 0 and self._usdm:
            r = self._need_int(f, K_pu, "pu (previous final update id)", &prev_id)
        if r != 0:
            return r
        self.info.first_update_id = first_id
        self.info.final_update_id = final_id
        self.info.prev_final_update_id = prev_id
        if not (fhas(f, K_b) and fget(f, K_b).type == SLOT_LEVELS):
            self._set_detail("b (bids)", NULL, 0)
            return DROP_MISSING_FIELD if not fhas(f, K_b) else DROP_BAD_FIELD
        if not (fhas(f, K_a) and fget(f, K_a).type == SLOT_LEVELS):
            self._set_detail("a (asks)", NULL, 0)
            return DROP_MISSING_FIELD if not fhas(f, K_a) else DROP_BAD_FIELD
        r = self._symbol(f, K_s, &inst)
        if r != 0:
            return r
        nb = <Py_ssize_t>self._bids.n
        na = <Py_ssize_t>self._asks.n
        n = nb + na
        self.info.changes = n
        r = self._check_capacity(n, capacity)
        if r != 0:
            return r
        ts = self.info.transaction_time if self.info.transaction_time else self.info.event_time
        pp = inst.price_precision
        sp = inst.size_precision
        for i in range(n):
            if i < nb:
                lv = &self._bids.data[i]
                flags = 0
            else:
                lv = &self._asks.data[i - nb]
                flags = FLAG_ASK
            r = self._dec(lv.a, <Py_ssize_t>lv.an, pp, False, "level price", &price)
            if r != 0:
                return r
            r = self._dec(lv.b, <Py_ssize_t>lv.bn, sp, False, "level size", &qty)
            if r != 0:
                return r
            if i == n - 1:
                flags |= FLAG_LAST
            rec = &out[i]
            rec.kind = KIND_BOOK_DELTA
            rec.flags = flags
            rec.instrument_id = inst.instrument_id
            rec.ts_exchange = ts
            rec.ts_local = ts_local
            rec.sequence = final_id
            rec.price = price
            rec.quantity = qty
            rec.aux0 = first_id
            rec.aux1 = prev_id
        written[0] = n
        return 0

    cdef int _build_snapshot(self, const SymbolEntry *inst, int64_t ts_local, Record *out, Py_ssize_t capacity,
                             Py_ssize_t *written) noexcept nogil:
        cdef const Fields *f = &self._top
        cdef int64_t last_id, ts, price, qty
        cdef Py_ssize_t nb, na, i, n
        cdef int r
        cdef const ex_strpair *lv
        cdef uint16_t flags
        self.info.event_time = self._time(f, K_E)
        self.info.transaction_time = self._time(f, K_T)
        r = self._need_int(f, K_lastUpdateId, "lastUpdateId", &last_id)
        if r != 0:
            return r
        self.info.first_update_id = last_id
        self.info.final_update_id = last_id
        if not (fhas(f, K_bids) and fget(f, K_bids).type == SLOT_LEVELS):
            self._set_detail("bids", NULL, 0)
            return DROP_MISSING_FIELD if not fhas(f, K_bids) else DROP_BAD_FIELD
        if not (fhas(f, K_asks) and fget(f, K_asks).type == SLOT_LEVELS):
            self._set_detail("asks", NULL, 0)
            return DROP_MISSING_FIELD if not fhas(f, K_asks) else DROP_BAD_FIELD
        ts = self.info.transaction_time or self.info.event_time or ts_local
        nb = <Py_ssize_t>self._bids.n
        na = <Py_ssize_t>self._asks.n
        n = nb + na
        self.info.changes = n
        r = self._check_capacity(n if n > 0 else 1, capacity)
        if r != 0:
            return r
        if n == 0:
            rec_head(&out[0], KIND_BOOK_RESET, 0, inst.instrument_id, ts, ts_local, last_id, 0, 0,
                     ResetReason_UNSPECIFIED, 0)
            written[0] = 1
            return 0
        for i in range(n):
            if i < nb:
                lv = &self._bids.data[i]
                flags = FLAG_SNAPSHOT
            else:
                lv = &self._asks.data[i - nb]
                flags = FLAG_SNAPSHOT | FLAG_ASK
            r = self._dec(lv.a, <Py_ssize_t>lv.an, inst.price_precision, False, "level price", &price)
            if r != 0:
                return r
            r = self._dec(lv.b, <Py_ssize_t>lv.bn, inst.size_precision, False, "level size", &qty)
            if r != 0:
                return r
            if i == n - 1:
                flags |= FLAG_LAST
            rec_head(&out[i], KIND_BOOK_DELTA, flags, inst.instrument_id, ts, ts_local, last_id, price, qty, 0, 0)
        written[0] = n
        return 0

    cdef int _build_trade(self, int ev, int64_t ts_local, Record *out, Py_ssize_t capacity,
                          Py_ssize_t *written) noexcept nogil:
        cdef const Fields *f = &self._top
        cdef SymbolEntry inst
        cdef int64_t seq, price, qty, first = 0, last = 0, ts
        cdef bint buyer_maker
        cdef int r
        if ev == EV_TRADE:
            r = self._need_int(f, K_t, "t (trade id)", &seq)
        else:
            r = self._need_int(f, K_a, "a (aggregate trade id)", &seq)
            if r == 0:
                r = self._need_int(f, K_f, "f (first trade id)", &first)
            if r == 0:
                r = self._need_int(f, K_l, "l (last trade id)", &last)
        if r == 0:
            r = self._need_bool(f, K_m, "m (buyer is maker)", &buyer_maker)
        if r == 0:
            r = self._symbol(f, K_s, &inst)
        if r == 0:
            r = self._need_dec(f, K_p, "p (price)", inst.price_precision, False, &price)
        if r == 0:
            r = self._need_dec(f, K_q, "q (quantity)", inst.size_precision, False, &qty)
        if r == 0:
            r = self._check_capacity(1, capacity)
        if r != 0:
            return r
        ts = self.info.transaction_time if self.info.transaction_time else self.info.event_time
        rec_head(&out[0], KIND_TRADE, FLAG_ASK if buyer_maker else 0, inst.instrument_id, ts, ts_local, seq,
                 price, qty, first, last)
        written[0] = 1
        return 0

    cdef int _build_quote(self, int64_t ts_local, Record *out, Py_ssize_t capacity, Py_ssize_t *written) noexcept nogil:
        cdef const Fields *f = &self._top
        cdef SymbolEntry inst
        cdef int64_t seq, bid, bid_qty, ask, ask_qty, ts
        cdef int r = self._need_int(f, K_u, "u (update id)", &seq)
        if r == 0:
            r = self._symbol(f, K_s, &inst)
        if r == 0:
            r = self._need_dec(f, K_b, "b (bid price)", inst.price_precision, False, &bid)
        if r == 0:
            r = self._need_dec(f, K_B, "B (bid size)", inst.size_precision, False, &bid_qty)
        if r == 0:
            r = self._need_dec(f, K_a, "a (ask price)", inst.price_precision, False, &ask)
        if r == 0:
            r = self._need_dec(f, K_A, "A (ask size)", inst.size_precision, False, &ask_qty)
        if r == 0:
            r = self._check_capacity(1, capacity)
        if r != 0:
            return r
        self.info.final_update_id = seq
        ts = self.info.transaction_time or self.info.event_time or ts_local
        rec_head(&out[0], KIND_QUOTE, 0, inst.instrument_id, ts, ts_local, seq, bid, bid_qty, ask, ask_qty)
        written[0] = 1
        return 0

    cdef int _build_kline(self, int64_t ts_local, Record *out, Py_ssize_t capacity, Py_ssize_t *written) noexcept nogil:
        cdef const Fields *k = &self._inner
        cdef SymbolEntry inst
        cdef int64_t open_t, close_t, trades, o, h, l, c, v, taker_buy, vwap
        cdef bint closed
        cdef int r, pp, sp
        cdef const char *qs
        cdef Py_ssize_t qn
        cdef ex_bn_u128 notional, quo
        cdef const Slot *kslot = fget(&self._top, K_k)
        if kslot == NULL or kslot.type != SLOT_OBJECT:
            self._set_detail("k (kline)", NULL, 0)
            return DROP_MISSING_FIELD if kslot == NULL else DROP_BAD_FIELD
        r = self._need_bool(k, K_x, "k.x (closed)", &closed)
        if r == 0:
            r = self._symbol(k if fhas(k, K_s) else &self._top, K_s, &inst)
        if r != 0:
            return r
        if not closed:
            self._n_klines_open += 1
            return 0
        pp = inst.price_precision
        sp = inst.size_precision
        r = self._need_int(k, K_t, "k.t (open time)", &open_t)
        if r == 0:
            r = self._need_int(k, K_T, "k.T (close time)", &close_t)
        if r == 0:
            r = self._need_int(k, K_n, "k.n (trade count)", &trades)
        if r == 0:
            r = self._need_dec(k, K_o, "k.o (open)", pp, False, &o)
        if r == 0:
            r = self._need_dec(k, K_h, "k.h (high)", pp, False, &h)
        if r == 0:
            r = self._need_dec(k, K_l, "k.l (low)", pp, False, &l)
        if r == 0:
            r = self._need_dec(k, K_c, "k.c (close)", pp, False, &c)
        if r == 0:
            r = self._need_dec(k, K_v, "k.v (volume)", sp, False, &v)
        if r == 0:
            r = self._need_dec(k, K_V, "k.V (taker buy volume)", sp, False, &taker_buy)
        if r != 0:
            return r
        if taker_buy > v:
            self._set_detail("k.V (taker buy volume) > k.v (volume)", NULL, 0)
            return DROP_INCONSISTENT
        # Quote volume: raw at price + size precision (bars.pyx's layout), exact whenever the venue's
        # figure has no more decimals than that, else rounded half up; saturated at int64 in the record.
        r = self._need_str(k, K_q, "k.q (quote volume)", &qs, &qn)
        if r == 0:
            r = parse_notional(qs, qn, pp + sp, &notional)
            if r != 0:
                self._set_detail("k.q (quote volume)", qs, qn)
        if r != 0:
            return r
        if v > 0:
            quo = div_half_up(notional, <ex_bn_u128>v)
            vwap = saturate(quo)
        else:
            vwap = c
        r = self._check_capacity(2, capacity)
        if r != 0:
            return r
        rec_head(&out[0], KIND_CANDLE, 1 << CONT_SHIFT, inst.instrument_id, open_t * self._ts_mul, ts_local,
                 trades, o, v, h, l)
        # k.T is the last millisecond (or µs) inside the bar: the exclusive close is one unit later.
        rec_cont(&out[1], inst.instrument_id, c, vwap, taker_buy, v - taker_buy, (close_t + 1) * self._ts_mul,
                 saturate(notional), 0)
        written[0] = 2
        return 0

    cdef int _build_mark(self, int64_t ts_local, Record *out, Py_ssize_t capacity, Py_ssize_t *written) noexcept nogil:
        cdef const Fields *f = &self._top
        cdef SymbolEntry inst
        cdef int64_t mark, index = 0, settle = 0, rate = 0, next_funding
        cdef const char *ms
        cdef Py_ssize_t mn
        cdef int r = self._symbol(f, K_s, &inst)
        if r == 0:
            r = self._need_str(f, K_p, "p (mark price)", &ms, &mn)
        if r == 0:
            r = parse_rounded(ms, mn, inst.price_precision, False, &mark)
            if r != 0:
                self._set_detail("p (mark price)", ms, mn)
        if r == 0:
            r = self._opt_dec(f, K_i, "i (index price)", inst.price_precision, False, True, &index)
        if r == 0:
            r = self._opt_dec(f, K_P, "P (estimated settle price)", inst.price_precision, False, True, &settle)
        if r == 0:
            r = self._opt_dec(f, K_r, "r (funding rate)", RATE_PRECISION, True, True, &rate)
        if r == 0:
            r = self._need_int(f, K_T, "T (next funding time)", &next_funding)
        if r == 0:
            r = self._check_capacity(1, capacity)
        if r != 0:
            return r
        rec_head(&out[0], KIND_MARK_PRICE, 0, inst.instrument_id, self.info.event_time, ts_local,
                 next_funding * self._ts_mul, mark, settle, index, rate)
        written[0] = 1
        return 0

    cdef int _order_fields(self, const Fields *o, bint usdm, bint algo, SymbolEntry *inst, bint *sell,
                           int *status, int *otype) noexcept nogil:
        """What an order report and an algo-order report (executionReport, ORDER_TRADE_UPDATE's "o",
        ALGO_UPDATE's "o") name alike: the instrument (s), the side (S), the status (X: an order's, or an
        algo order's when `algo`) and the order type (o). 0, or the drop code (detail set)."""
        cdef const char *s
        cdef Py_ssize_t n
        cdef int r = self._symbol(o, K_s, inst)
        if r != 0:
            return r
        r = self._need_str(o, K_S, "S (side)", &s, &n)
        if r != 0:
            return r
        if _eq(s, n, "SELL", 4):
            sell[0] = True
        elif _eq(s, n, "BUY", 3):
            sell[0] = False
        else:
            self._set_detail("S (side)", s, n)
            return DROP_BAD_FIELD
        r = self._need_str(o, K_X, "X (algo status)" if algo else "X (order status)", &s, &n)
        if r != 0:
            return r
        status[0] = self._enum(algo_status_code(s, n) if algo else order_status_code(s, n), t.ORDER_STATUS_UNKNOWN)
        r = self._need_str(o, K_o, "o (order type)", &s, &n)
        if r != 0:
            return r
        otype[0] = self._enum(order_type_code(s, n, usdm), t.ORDER_TYPE_UNKNOWN)
        return 0

    cdef int _build_order(self, const Fields *o, bint usdm, int64_t ts_local, Record *out, Py_ssize_t capacity,
                          Py_ssize_t *written) noexcept nogil:
        """executionReport (spot, fields in the event object) and ORDER_TRADE_UPDATE (USD-M, fields in
        its "o" object) -> ORDER_UPDATE (+ FILL)."""
        cdef SymbolEntry inst
        cdef const char *s
        cdef Py_ssize_t n
        cdef const Slot *sl
        cdef int r, pp, sp, status, otype, tif, ex, reason = t.ORDER_REASON_NONE
        cdef int64_t price, qty, cum, order_id, avg = 0, stop = 0, last_px = 0, last_qty = 0, fee = 0
        cdef int64_t trade_id = 0, realized = 0, client_id, fee_asset = 0, cum_quote = 0, ts
        cdef bint sell = False, maker = False, fill
        cdef Py_ssize_t need
        r = self._order_fields(o, usdm, False, &inst, &sell, &status, &otype)
        if r != 0:
            return r
        pp = inst.price_precision
        sp = inst.size_precision
        r = self._need_str(o, K_f, "f (time in force)", &s, &n)
        if r != 0:
            return r
        tif = self._enum(tif_code(s, n), t.TIF_UNKNOWN)
        r = self._need_str(o, K_x, "x (execution type)", &s, &n)
        if r != 0:
            return r
        ex = self._enum(exec_code(s, n), t.EXEC_UNKNOWN)
        sl = fget(o, K_r)
        if not usdm and sl != NULL and sl.type == SLOT_STR:
            reason = order_reason_code(sl.s, sl.n)
            if reason < 0:
                self._n_unknown_enum += 1
                reason = t.ORDER_REASON_OTHER
        r = self._need_int(o, K_i, "i (order id)", &order_id)
        if r == 0:
            r = self._need_dec(o, K_q, "q (quantity)", sp, False, &qty)
        if r == 0:
            r = self._opt_dec(o, K_p, "p (price)", pp, False, False, &price)
        if r == 0:
            r = self._need_dec(o, K_z, "z (cumulative filled)", sp, False, &cum)
        if r == 0:
            r = self._opt_dec(o, K_l, "l (last filled)", sp, False, False, &last_qty)
        if r == 0:
            r = self._opt_dec(o, K_L, "L (last price)", pp, False, False, &last_px)
        if r == 0:
            r = self._opt_dec(o, K_sp if usdm else K_P, "stop price", pp, False, False, &stop)
        if r == 0:
            r = self._opt_dec(o, K_n, "n (commission)", ASSET_PRECISION, True, False, &fee)
        if r == 0 and usdm:
            r = self._opt_dec(o, K_ap, "ap (average price)", pp, False, True, &avg)
        if r == 0 and usdm:
            r = self._opt_dec(o, K_rp, "rp (realized profit)", ASSET_PRECISION, True, True, &realized)
        if r != 0:
            return r
        if not usdm and cum > 0 and fhas(o, K_Z):
            # Spot sends no average price: Z (cumulative quote) / z, rounded half up to the price grid.
            sl = fget(o, K_Z)
            r = self._average_price(sl, cum, pp, sp, &avg)
            if r != 0:
                return r
        trade_id = self._opt_int(o, K_t, 0)
        sl = fget(o, K_m)
        maker = sl != NULL and sl.type == SLOT_BOOL and sl.i != 0
        fill = (ex == t.EXEC_TRADE or ex == t.EXEC_CALCULATED) and last_qty > 0
        need = 4 if fill else 2
        r = self._check_capacity(need, capacity)
        if r != 0:
            return r
        # The id the execution layer knows the order by: for a cancel, C is the original client order id
        # (c is then the cancel request's own id); empty C otherwise.
        # https://developers.binance.com/docs/binance-spot-api-docs/user-data-stream#order-update
        sl = fget(o, K_C)
        if sl != NULL and sl.type == SLOT_STR and sl.n > 0:
            client_id = self._client_id(sl.s, sl.n)
        else:
            sl = fget(o, K_c)
            client_id = self._client_id(sl.s, sl.n) if sl != NULL and sl.type == SLOT_STR else 0
        ts = self._time(o, K_T)
        if ts == 0:
            ts = self.info.transaction_time or self.info.event_time
        rec_head(&out[0], KIND_ORDER_UPDATE, (FLAG_ASK if sell else 0) | (1 << CONT_SHIFT), inst.instrument_id,
                 ts, ts_local, client_id, price, qty, cum, order_id)
        rec_cont(&out[1], inst.instrument_id, status, otype, tif, avg, stop, qty - cum,
                 (<int64_t>ex << 16) | reason)
        if fill:
            sl = fget(o, K_N)
            if sl != NULL and sl.type == SLOT_STR:
                fee_asset = self._asset(sl.s, sl.n)
            rec_head(&out[2], KIND_FILL, (FLAG_ASK if sell else 0) | (FLAG_MAKER if maker else 0) | (1 << CONT_SHIFT),
                     inst.instrument_id, ts, ts_local, trade_id, last_px, last_qty, client_id, fee)
            rec_cont(&out[3], inst.instrument_id, order_id, fee_asset, 0, realized, 0, 0, 0)
        written[0] = need
        return 0

    cdef int _build_algo(self, int64_t ts_local, Record *out, Py_ssize_t capacity,
                         Py_ssize_t *written) noexcept nogil:
        """USD-M ALGO_UPDATE (a conditional order in Binance's algo service) -> one ORDER_UPDATE, laid out
        as ORDER_TRADE_UPDATE's: sequence = client id (caid), price = p, quantity = q, aux0 = aq
        (executed in the matching engine), aux1 = the venue order id: ai (the triggered order's id in the
        matching engine, which its trades and ORDER_TRADE_UPDATEs carry) once the venue reports it, the
        algo id (aid) before - so an update never replaces the id fills are found by with the algo id;
        p0 = status (algo_status_code; FINISHED
        is FILLED when aq reached q, else CANCELLED), p1 = o, p2 = f, p3 = ap rounded half up, p4 = tp
        (trigger price), p5 = q - aq, p6 = reason (OTHER when a reject message rm is set) | exec << 16.
        No FILL: the triggered order's trades arrive as ORDER_TRADE_UPDATE under the same client id."""
        cdef const Fields *o = &self._inner
        cdef SymbolEntry inst
        cdef const Slot *sl
        cdef int r, pp, sp, status, otype, tif, ex, reason = t.ORDER_REASON_NONE
        cdef int64_t price = 0, qty, cum = 0, algo_id, actual = 0, avg = 0, trigger = 0, client_id, ts
        cdef bint sell = False
        r = self._order_fields(o, True, True, &inst, &sell, &status, &otype)
        if r != 0:
            return r
        pp = inst.price_precision
        sp = inst.size_precision
        sl = fget(o, K_f)
        tif = self._enum(tif_code(sl.s, sl.n), t.TIF_UNKNOWN) if sl != NULL and sl.type == SLOT_STR else t.TIF_GTC
        r = self._need_int(o, K_aid, "aid (algo id)", &algo_id)
        if r == 0:
            r = self._need_dec(o, K_q, "q (quantity)", sp, False, &qty)
        if r == 0:
            r = self._opt_dec(o, K_p, "p (price)", pp, False, False, &price)
        if r == 0:
            r = self._opt_dec(o, K_aq, "aq (executed quantity)", sp, False, False, &cum)
        if r == 0:
            r = self._opt_dec(o, K_ap, "ap (average price)", pp, False, True, &avg)
        if r == 0:
            r = self._opt_dec(o, K_tp, "tp (trigger price)", pp, False, False, &trigger)
        if r == 0:
            sl = fget(o, K_ai)
            if sl != NULL and sl.type == SLOT_INT:
                actual = sl.i
            else:                   # Binance sends it as a string of digits, "" until triggered
                r = self._opt_dec(o, K_ai, "ai (actual order id)", 0, False, False, &actual)
        if r != 0:
            return r
        if status == t.ORDER_STATUS_FILLED and cum < qty:
            status = t.ORDER_STATUS_CANCELLED
        if status == t.ORDER_STATUS_ACCEPTED:
            ex = t.EXEC_NEW
        elif status == t.ORDER_STATUS_FILLED:
            ex = t.EXEC_TRADE
        elif status == t.ORDER_STATUS_CANCELLED:
            ex = t.EXEC_CANCELED
        elif status == t.ORDER_STATUS_REJECTED:
            ex = t.EXEC_REJECTED
        elif status == t.ORDER_STATUS_EXPIRED:
            ex = t.EXEC_EXPIRED
        else:
            ex = t.EXEC_UNKNOWN
        if status == t.ORDER_STATUS_REJECTED:
            reason = t.ORDER_REASON_OTHER
        r = self._check_capacity(2, capacity)
        if r != 0:
            return r
        sl = fget(o, K_caid)
        client_id = self._client_id(sl.s, sl.n) if sl != NULL and sl.type == SLOT_STR else 0
        ts = self.info.transaction_time or self.info.event_time
        rec_head(&out[0], KIND_ORDER_UPDATE, (FLAG_ASK if sell else 0) | (1 << CONT_SHIFT), inst.instrument_id,
                 ts, ts_local, client_id, price, qty, cum, actual if actual > 0 else algo_id)
        rec_cont(&out[1], inst.instrument_id, status, otype, tif, avg, trigger, qty - cum,
                 (<int64_t>ex << 16) | reason)
        written[0] = 2
        return 0

    cdef int _average_price(self, const Slot *quote, int64_t cum, int pp, int sp, int64_t *avg) noexcept nogil:
        """Spot's average fill price: Z (cumulative quote quantity) / z, rounded half up to the price
        grid. Z is exact at price + size precision in 128 bits, so the division is exact before rounding."""
        cdef ex_bn_u128 notional, quo
        cdef int r
        if quote.type != SLOT_STR:
            self._set_detail("Z (cumulative quote quantity)", NULL, 0)
            return DROP_BAD_FIELD
        r = parse_notional(quote.s, quote.n, pp + sp, &notional)
        if r != 0:
            self._set_detail("Z (cumulative quote quantity)", quote.s, quote.n)
            return r
        quo = div_half_up(notional, <ex_bn_u128>cum)
        if quo > <ex_bn_u128>INT64_MAX:
            self._set_detail("Z (cumulative quote quantity)", quote.s, quote.n)
            return DROP_OVERFLOW
        avg[0] = <int64_t>quo
        return 0

    cdef int _build_account(self, int ev, int64_t ts_local, Record *out, Py_ssize_t capacity,
                            Py_ssize_t *written) noexcept nogil:
        cdef const Fields *f = &self._top
        cdef const Fields *a = &self._inner
        cdef const Slot *sl
        cdef Py_ssize_t i, w = 0, need, last_balance = -1, last_position = -1
        cdef int r, reason = t.ACCOUNT_REASON_NONE, side, margin
        cdef int64_t ts, v0, v1, v2, asset
        cdef int64_t entry, amount, unreal, realized, breakeven, isolated
        cdef const BalanceEntry *b
        cdef const PositionEntry *p
        cdef SymbolEntry inst
        cdef int k
        if ev == EV_ACCOUNT_UPDATE:
            sl = fget(f, K_a)
            if sl == NULL or sl.type != SLOT_OBJECT:
                self._set_detail("a (update data)", NULL, 0)
                return DROP_MISSING_FIELD if sl == NULL else DROP_BAD_FIELD
            for k in range(2):
                sl = fget(a, K_B if k == 0 else K_P)
                if sl != NULL and sl.type != SLOT_ENTRIES:
                    self._set_detail("a.B / a.P (balances / positions)", NULL, 0)
                    return DROP_BAD_FIELD
            sl = fget(a, K_m)
            if sl != NULL and sl.type == SLOT_STR:
                reason = account_reason_code(sl.s, sl.n)
                if reason < 0:
                    self._n_unknown_enum += 1
                    reason = t.ACCOUNT_REASON_OTHER
            ts = self.info.transaction_time or self.info.event_time
        else:
            if not (fhas(f, K_B) and fget(f, K_B).type == SLOT_ENTRIES):
                self._set_detail("B (balances)", NULL, 0)
                return DROP_MISSING_FIELD if not fhas(f, K_B) else DROP_BAD_FIELD
            ts = self._time(f, K_u) or self.info.event_time
        # Check everything before writing: which positions resolve, that every amount parses.
        need = self._n_balances
        for i in range(self._n_positions):
            p = &self._positions[i]
            if p.symbol.n < 0:
                self._set_detail("P.s (position symbol)", NULL, 0)
                return DROP_MISSING_FIELD
            r = self._resolve(p.symbol.s, p.symbol.n, &inst)
            if r == DROP_UNKNOWN_SYMBOL:
                self._drop_detail_len = 0
                continue
            if r != 0:
                return r
            need += 2
        r = self._check_capacity(need, capacity)
        if r != 0:
            return r
        for i in range(self._n_balances):
            b = &self._balances[i]
            if b.asset.n <= 0:
                self._set_detail("B.a (asset)", NULL, 0)
                return DROP_MISSING_FIELD
            r = self._view_dec(b.free_or_wallet, "B.f / B.wb (free / wallet balance)", ASSET_PRECISION, True,
                               False, True, &v0)
            if r == 0:
                r = self._view_dec(b.locked_or_cross, "B.l / B.cw (locked / cross wallet balance)",
                                   ASSET_PRECISION, True, False, ev == EV_ACCOUNT_POSITION, &v1)
            if r == 0:
                r = self._view_dec(b.change, "B.bc (balance change)", ASSET_PRECISION, True, False, False, &v2)
            if r != 0:
                return r
            rec_head(&out[w], KIND_BALANCE, FLAG_LAST if i == self._n_balances - 1 else 0, 0, ts, ts_local,
                     0, v0, v1, v2, reason)
            w += 1
        for i in range(self._n_positions):
            p = &self._positions[i]
            if self._resolve(p.symbol.s, p.symbol.n, &inst) != 0:
                self._drop_detail_len = 0
                self._n_unknown_positions += 1
                continue
            r = self._view_dec(p.amount, "P.pa (position amount)", inst.size_precision, True, False, True, &amount)
            if r == 0:
                r = self._view_dec(p.entry, "P.ep (entry price)", inst.price_precision, False, True, True, &entry)
            if r == 0:
                r = self._view_dec(p.breakeven, "P.bep (break-even price)", inst.price_precision, False, True,
                                   False, &breakeven)
            if r == 0:
                r = self._view_dec(p.unrealized, "P.up (unrealized PnL)", ASSET_PRECISION, True, True, False, &unreal)
            if r == 0:
                r = self._view_dec(p.realized, "P.cr (accumulated realized)", ASSET_PRECISION, True, True, False,
                                   &realized)
            if r == 0:
                r = self._view_dec(p.isolated, "P.iw (isolated wallet)", ASSET_PRECISION, True, True, False,
                                   &isolated)
            if r != 0:
                return r
            side = t.POSITION_SIDE_BOTH
            if p.side.n >= 0:
                if _eq(p.side.s, p.side.n, "LONG", 4):
                    side = t.POSITION_SIDE_LONG
                elif _eq(p.side.s, p.side.n, "SHORT", 5):
                    side = t.POSITION_SIDE_SHORT
                elif not _eq(p.side.s, p.side.n, "BOTH", 4):
                    self._n_unknown_enum += 1
            margin = t.MARGIN_CROSS
            if p.margin_type.n >= 0:
                if _eq(p.margin_type.s, p.margin_type.n, "isolated", 8):
                    margin = t.MARGIN_ISOLATED
                elif not _eq(p.margin_type.s, p.margin_type.n, "cross", 5):
                    self._n_unknown_enum += 1
            rec_head(&out[w], KIND_POSITION, 1 << CONT_SHIFT, inst.instrument_id, ts, ts_local, 0, entry, amount,
                     unreal, realized)
            rec_cont(&out[w + 1], inst.instrument_id, breakeven, side, margin, isolated, reason, 0, 0)
            last_position = w
            w += 2
        if last_position >= 0:
            out[last_position].flags |= FLAG_LAST
        # balances carry their asset id in sequence: resolved last, under the GIL, once per asset
        for i in range(self._n_balances):
            out[i].sequence = self._asset(self._balances[i].asset.s, self._balances[i].asset.n)
        self.info.instrument_id = 0          # an account update is about no one instrument
        written[0] = w
        return 0

    # ---- Python API -------------------------------------------------------------------------------

    def decode(self, frame, ts_local=None):
        """Decode one frame (bytes, bytearray, memoryview or str) into a new RECORD_DTYPE array.
        ts_local: receive time in µs (default: now). Bad input gives an empty array (see info / stats)."""
        cdef Py_buffer view
        cdef const char *data
        cdef Py_ssize_t n, got, cap
        cdef int64_t ts = now_us() if ts_local is None else <int64_t>ts_local
        cdef cnp.ndarray arr
        if isinstance(frame, str):
            data = PyUnicode_AsUTF8AndSize(frame, &n)
            cap = self._reserve_scratch(n)
            got = self.decode_into(data, n, ts, self._scratch, cap)
        else:
            PyObject_GetBuffer(frame, &view, PyBUF_SIMPLE)
            try:
                cap = self._reserve_scratch(view.len)
                got = self.decode_into(<const char *>view.buf, view.len, ts, self._scratch, cap)
            finally:
                PyBuffer_Release(&view)
        if got == 0:
            return np.zeros(0, dtype=RECORD_DTYPE)
        arr = np.empty(got, dtype=RECORD_DTYPE)
        memcpy(cnp.PyArray_DATA(arr), self._scratch, got * sizeof(Record))
        return arr

    def warm(self):
        """rehearse() from Python: the last frame decoded again (a new array; empty when it is not a market-data
        frame the decoder took), with nothing else changed."""
        cdef Py_ssize_t cap = self._reserve_scratch(self._buf_len), got
        cdef cnp.ndarray arr
        got = self.rehearse(self._scratch, cap)
        arr = np.empty(got, dtype=RECORD_DTYPE)
        if got:
            memcpy(cnp.PyArray_DATA(arr), self._scratch, got * sizeof(Record))
        return arr

    cdef Py_ssize_t _reserve_scratch(self, Py_ssize_t frame_len) except -1:
        # A level needs at least `["1","1"]` (9 bytes) plus a comma: no frame holds more records than
        # len / 8 (+ a few for the multi-slot events), so this never causes a CAPACITY drop.
        cdef Py_ssize_t need = frame_len // 8 + 16
        cdef Record *p
        if need > self._scratch_cap:
            p = <Record *>realloc(self._scratch, need * sizeof(Record))
            if p == NULL:
                raise MemoryError()
            self._scratch = p
            self._scratch_cap = need
        return self._scratch_cap

    def decode_to(self, frame, out, ts_local=None):
        """Decode one frame into `out` (a 1-d C-contiguous RECORD_DTYPE array) from index 0; returns the
        number of records written. A frame needing more than len(out) records is dropped with
        DropReason.CAPACITY and info["needed"] says how many it needs."""
        cdef Py_buffer view
        cdef cnp.ndarray arr = out
        cdef Py_ssize_t got
        cdef int64_t ts = now_us() if ts_local is None else <int64_t>ts_local
        if <object>cnp.PyArray_DESCR(arr) is not RECORD_DTYPE and arr.dtype != RECORD_DTYPE:
            raise TypeError(f"decode_to writes into an extrema.RECORD_DTYPE array, got dtype {arr.dtype}")
        if cnp.PyArray_NDIM(arr) != 1 or not cnp.PyArray_IS_C_CONTIGUOUS(arr) or not cnp.PyArray_ISWRITEABLE(arr):
            raise ValueError("decode_to needs a writeable 1-d C-contiguous array")
        if isinstance(frame, bytes):
            return self.decode_into(PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame), ts,
                                    <Record *>cnp.PyArray_DATA(arr), cnp.PyArray_DIM(arr, 0))
        PyObject_GetBuffer(frame, &view, PyBUF_SIMPLE)
        try:
            got = self.decode_into(<const char *>view.buf, view.len, ts, <Record *>cnp.PyArray_DATA(arr),
                                   cnp.PyArray_DIM(arr, 0))
        finally:
            PyBuffer_Release(&view)
        return got

    def decode_depth_snapshot(self, body, instrument, ts_local=None):
        """A REST depth body (/api/v3/depth or /fapi/v1/depth, bytes or str) of `instrument` (an
        Instrument, its id, or its venue symbol) -> SNAPSHOT records (see the module docstring).
        Raises ValueError naming the reason when the body cannot be used (also counted in stats())."""
        cdef Py_buffer view
        cdef const char *data
        cdef Py_ssize_t n, got, cap
        cdef int64_t ts = now_us() if ts_local is None else <int64_t>ts_local
        cdef uint32_t iid
        cdef cnp.ndarray arr
        if isinstance(instrument, Instrument):
            if (<Instrument>instrument).market != self.market:
                raise ValueError(f"{instrument!r} is not on {self.market.name}")
            iid = (<Instrument>instrument).id
        elif isinstance(instrument, str):
            iid = self.registry.by_venue_symbol(self.market, instrument).id
        else:
            iid = self.registry[instrument].id
            if self.registry[iid].market != self.market:
                raise ValueError(f"instrument {iid} is not on {self.market.name}")
        if isinstance(body, str):
            body = body.encode()
        PyObject_GetBuffer(body, &view, PyBUF_SIMPLE)
        try:
            cap = self._reserve_scratch(view.len)
            got = self.decode_snapshot_into(<const char *>view.buf, view.len, iid, ts, self._scratch, cap)
        finally:
            PyBuffer_Release(&view)
        if got == 0:
            reason, detail = self.last_drop
            raise ValueError(f"cannot use this depth snapshot of {self.registry[iid].name}: {reason}"
                             + (f" ({detail})" if detail else ""))
        arr = np.empty(got, dtype=RECORD_DTYPE)
        memcpy(cnp.PyArray_DATA(arr), self._scratch, got * sizeof(Record))
        return arr

    @property
    def last_error(self):
        """The message of the last error frame ({"code", "msg"}), or None."""
        if self._error_len == 0:
            return None
        return self._error_text[:self._error_len].decode("utf-8", "replace")

    @property
    def last_drop(self):
        """(DropReason name, detail) of the last dropped frame, or None when the last frame was kept."""
        if self.info.drop_reason == 0:
            return None
        detail = self._drop_detail[:self._drop_detail_len].decode("utf-8", "replace")
        if self._json_error:
            detail = (detail + "; " if detail else "") + ex_json_error_message(self._json_error).decode()
        return (DropReason(self.info.drop_reason).name, detail)

    def stats(self):
        """Counters since creation: frames, records, events by name, drops by reason, unknown enum
        strings (mapped to UNKNOWN / OTHER), open klines skipped, positions of unknown symbols skipped."""
        return {
            "frames": self._n_frames,
            "records": self._n_records,
            "events": {BinanceEvent(i).name: self._events[i] for i in range(1, EV_COUNT) if self._events[i]},
            "drops": {DropReason(i).name: self._drops[i] for i in range(1, DROP_COUNT) if self._drops[i]},
            "dropped": sum(self._drops[i] for i in range(1, DROP_COUNT)),
            "ignored": self._events[EV_IGNORED],
            "last_ignored_event": self._ignored_event[:self._ignored_len].decode("utf-8", "replace") or None,
            "unknown_enum": self._n_unknown_enum,
            "klines_open": self._n_klines_open,
            "unknown_positions": self._n_unknown_positions,
        }

    # ---- client order ids -------------------------------------------------------------------------

    @property
    def own_client_id_prefix(self):
        """The prefix of this engine's client order ids (`ex<tag>`, extrema.execution.orders.ClientOrderIds):
        `<prefix><decimal id>` with an id in 1 .. 2**62 - 1 decodes to that id without being registered.
        Empty (the default): every id takes the registered map."""
        return self._own_prefix[:self._own_prefix_n].decode("ascii")

    @own_client_id_prefix.setter
    def own_client_id_prefix(self, str prefix):
        cdef bytes b = prefix.encode("ascii")
        cdef Py_ssize_t i
        if len(b) > 15 or any(not (48 <= c <= 57 or 97 <= c <= 122) for c in b):
            raise ValueError(f"a client order id prefix is up to 15 lowercase letters / digits, got {prefix!r}")
        for i in range(len(b)):
            self._own_prefix[i] = b[i]
        self._own_prefix_n = len(b)

    def parse_own_client_order_id(self, str text):
        """The int id of `text` when it is one of this engine's ids (own_client_id_prefix), else None. The
        same C parse the decoder applies to every report (tests compare it with ClientOrderIds.parse)."""
        cdef bytes b = text.encode("utf-8")
        cdef int64_t v = parse_own_client_id(b, len(b), self._own_prefix, self._own_prefix_n)
        return v if v > 0 else None

    def register_client_order_id(self, str text, int_id):
        """Map the client order id `text` (what was sent as newClientOrderId) to `int_id`
        (1 <= int_id < 2**62: the range above belongs to ids the decoder hands out itself)."""
        if isinstance(int_id, bool) or not isinstance(int_id, int) or not 0 < int_id < EXTERNAL_CLIENT_ORDER_ID_BASE:
            raise ValueError(f"a registered client order id is an int in 1 .. 2**62 - 1, got {int_id!r}")
        if not text or len(text) > 64:
            raise ValueError(f"a client order id text is 1..64 characters, got {text!r}")
        key = text.encode()
        old = self._coid_by_text.get(key)
        if old is not None and old != int_id:
            self._coid_text.pop(old, None)
        self._coid_by_text[key] = int_id
        self._coid_text[int_id] = text

    def client_order_id(self, str text):
        """The int id of client order id `text` (registered, handed out by the decoder, or one of this
        engine's own ids: own_client_id_prefix), or None when the decoder has not seen or been told it."""
        found = self._coid_by_text.get(text.encode())
        return found if found is not None else self.parse_own_client_order_id(text)

    def client_order_id_text(self, int_id):
        """The text of an int client order id (registered, handed out by the decoder, or - with
        own_client_id_prefix set - any id of this engine's range), or None."""
        found = self._coid_text.get(int_id)
        if found is None and self._own_prefix_n and isinstance(int_id, int) and 0 < int_id < EXTERNAL_CLIENT_ORDER_ID_BASE:
            return f"{self.own_client_id_prefix}{int_id}"
        return found

    def forget_client_order_id(self, key):
        """Drop one mapping (by text or by int id): the maps otherwise grow with every order seen."""
        if isinstance(key, str):
            int_id = self._coid_by_text.pop(key.encode(), None)
            if int_id is not None:
                self._coid_text.pop(int_id, None)
        else:
            text = self._coid_text.pop(key, None)
            if text is not None:
                self._coid_by_text.pop(text.encode(), None)

    def __repr__(self):
        return f"<BinanceDecoder {self.market.name} frames={self._n_frames} dropped={sum(self._drops)}>"


# ----------------------------------------------------------------------------------------- DepthSync

# SYNC_* (DepthSync's answers): binance.pxd
cdef enum:
    PHASE_NEEDS_SNAPSHOT = 0
    PHASE_LIVE = 1


class SyncStatus(enum.IntEnum):
    """What DepthSync did with a frame or a snapshot, and what the caller must do."""
    EMIT = SYNC_EMIT                  # in sync (or not a depth frame): emit its records
    BUFFERED = SYNC_BUFFERED          # held until the snapshot that is being fetched
    NEED_SNAPSHOT = SYNC_NEED_SNAPSHOT  # held; fetch a REST snapshot of info["instrument_id"] now
    STALE = SYNC_STALE                # older than the book: dropped
    GAP = SYNC_GAP                    # the chain broke: emit the BOOK_RESET returned, fetch a snapshot
    SYNCED = SYNC_SYNCED              # snapshot accepted: emit the records returned (snapshot + diffs)
    SNAPSHOT_TOO_OLD = SYNC_SNAPSHOT_TOO_OLD  # the buffered diffs start after it: fetch a newer one
    SNAPSHOT_IGNORED = SYNC_SNAPSHOT_IGNORED  # older than the live book: nothing to do


cdef int state_reserve(SyncState *st, Py_ssize_t msgs, Py_ssize_t recs) noexcept nogil:
    cdef Py_ssize_t cap
    cdef SyncMsg *m
    cdef Record *r
    if msgs > st.cap_msgs:
        cap = st.cap_msgs * 2 if st.cap_msgs else 16
        while cap < msgs:
            cap *= 2
        m = <SyncMsg *>realloc(st.msgs, cap * sizeof(SyncMsg))
        if m == NULL:
            return -1
        st.msgs = m
        st.cap_msgs = cap
    if recs > st.cap_recs:
        cap = st.cap_recs * 2 if st.cap_recs else 256
        while cap < recs:
            cap *= 2
        r = <Record *>realloc(st.recs, cap * sizeof(Record))
        if r == NULL:
            return -1
        st.recs = r
        st.cap_recs = cap
    return 0


cdef void state_drop_front(SyncState *st, Py_ssize_t k) noexcept nogil:
    """Forget the k oldest buffered messages."""
    cdef Py_ssize_t i, shift
    if k <= 0:
        return
    if k >= st.n_msgs:
        st.n_msgs = 0
        st.n_recs = 0
        return
    shift = st.msgs[k].offset
    memmove(st.recs, st.recs + shift, (st.n_recs - shift) * sizeof(Record))
    st.n_recs -= shift
    memmove(st.msgs, st.msgs + k, (st.n_msgs - k) * sizeof(SyncMsg))
    st.n_msgs -= k
    for i in range(st.n_msgs):
        st.msgs[i].offset -= shift


cdef extern from "string.h" nogil:
    void *memmove(void *dst, const void *src, size_t n)


@cython.final
cdef class DepthSync:
    """Binance's local-order-book synchronisation for every instrument of one market.

    DepthSync(market, *, max_buffered_messages=10000)

    Per websocket frame, after the decoder:
        records = decoder.decode(frame, ts)                       # or decode_to / decode_into
        status, emit = sync.accept(records, decoder.info)
        EMIT -> publish `emit`; NEED_SNAPSHOT -> fetch the REST depth of info["instrument_id"];
        GAP -> publish `emit` (one BOOK_RESET) and fetch a snapshot; BUFFERED / STALE -> nothing.
    When a snapshot arrives:
        status, emit = sync.snapshot(decoder.decode_depth_snapshot(body, instrument))
        SYNCED -> publish `emit` (the snapshot, then every buffered diff that continues it);
        SNAPSHOT_TOO_OLD -> fetch another one; SNAPSHOT_IGNORED -> nothing.
    If the fetch fails, call snapshot_request_failed(instrument_id): the next diff answers NEED_SNAPSHOT
    again. On reconnect, reset() returns BOOK_RESET records (ResetReason.RECONNECT) for the live books.
    Frames that are not depth diffs pass through as EMIT. Cython: accept_c (nogil). One DepthSync
    serves one decoder's thread (no locking inside).
    """

    def __cinit__(self):
        self._states = NULL
        self._n_states = 0

    def __init__(self, market, *, Py_ssize_t max_buffered_messages=10000):
        market = Market(market)
        if market not in (Market.BINANCE_SPOT, Market.BINANCE_USDM):
            raise ValueError(f"DepthSync follows Binance spot or USD-M rules, not {market.name}")
        if max_buffered_messages < 2:
            raise ValueError("max_buffered_messages must be at least 2")
        self.market = market
        self._usdm = market == Market.BINANCE_USDM
        self._max_buffered = max_buffered_messages

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self._states != NULL:
            for i in range(self._n_states):
                free(self._states[i].msgs)
                free(self._states[i].recs)
            free(self._states)

    cdef SyncState *_state(self, uint32_t iid) noexcept nogil:
        cdef Py_ssize_t cap
        cdef SyncState *grown
        if <Py_ssize_t>iid >= self._n_states:
            cap = self._n_states * 2 if self._n_states else 64
            while cap <= <Py_ssize_t>iid:
                cap *= 2
            grown = <SyncState *>realloc(self._states, cap * sizeof(SyncState))
            if grown == NULL:
                return NULL
            memset(grown + self._n_states, 0, (cap - self._n_states) * sizeof(SyncState))
            self._states = grown
            self._n_states = cap
        return &self._states[iid]

    cdef int _buffer(self, SyncState *st, const FrameInfo *info, const Record *records, Py_ssize_t n) noexcept nogil:
        cdef SyncMsg *m
        if st.n_msgs >= self._max_buffered:
            # The snapshot is slow in coming: keep the newest half. If the snapshot then predates what is
            # left, snapshot() answers SNAPSHOT_TOO_OLD and a newer one connects.
            state_drop_front(st, st.n_msgs - self._max_buffered // 2)
            self._n_overflow += 1
        if state_reserve(st, st.n_msgs + 1, st.n_recs + n) != 0:
            return -1
        m = &st.msgs[st.n_msgs]
        m.first_id = info.first_update_id
        m.final_id = info.final_update_id
        m.prev_id = info.prev_final_update_id
        m.ts_exchange = info.transaction_time or info.event_time
        m.offset = st.n_recs
        m.count = n
        if n > 0:
            memcpy(st.recs + st.n_recs, records, n * sizeof(Record))
        st.n_recs += n
        st.n_msgs += 1
        self._n_buffered += 1
        return 0

    cdef void _reset_record(self, Record *r, uint32_t iid, int64_t last_id, int64_t ts_exchange, int64_t ts_local,
                            int reason) noexcept nogil:
        rec_head(r, KIND_BOOK_RESET, 0, iid, ts_exchange, ts_local, last_id, 0, 0, reason, 0)

    cdef int accept_c(self, const FrameInfo *info, const Record *records, Py_ssize_t n, int64_t ts_local,
                      Record *reset_out) except -1 nogil:
        """Judge one decoded frame (its FrameInfo and records). Returns a SyncStatus; on GAP the
        BOOK_RESET to publish is written to reset_out[0]. -1 only when buffering runs out of memory."""
        cdef SyncState *st
        cdef uint32_t iid = info.instrument_id
        cdef int64_t lu, first_id, final_id
        cdef bint ok
        if info.event != EV_DEPTH_UPDATE or iid == 0:
            return SYNC_EMIT
        st = self._state(iid)
        if st == NULL:
            with gil:
                raise MemoryError()
        if info.drop_reason != 0:
            # A diff of this instrument was lost (the decoder dropped it): the chain is broken whether
            # or not the next ids happen to line up.
            self._n_lost += 1
            if st.phase == PHASE_LIVE:
                self._reset_record(reset_out, iid, st.last_id, info.transaction_time or info.event_time,
                                   ts_local, ResetReason_SEQUENCE_GAP)
                st.phase = PHASE_NEEDS_SNAPSHOT
                st.n_msgs = 0
                st.n_recs = 0
                st.requested = True
                self._n_gaps += 1
                return SYNC_GAP
            st.n_msgs = 0
            st.n_recs = 0
            if not st.requested:
                st.requested = True
                return SYNC_NEED_SNAPSHOT
            return SYNC_BUFFERED
        if st.phase == PHASE_NEEDS_SNAPSHOT:
            if self._buffer(st, info, records, n) != 0:
                with gil:
                    raise MemoryError()
            if not st.requested:
                st.requested = True
                return SYNC_NEED_SNAPSHOT
            return SYNC_BUFFERED
        first_id = info.first_update_id
        final_id = info.final_update_id
        lu = st.last_id
        if st.first_pending:
            if self._usdm:
                if final_id < lu:
                    self._n_stale += 1
                    return SYNC_STALE
                ok = first_id <= lu <= final_id
            else:
                if final_id <= lu:
                    self._n_stale += 1
                    return SYNC_STALE
                ok = first_id <= lu + 1 <= final_id
        elif self._usdm:
            ok = info.prev_final_update_id == lu
        else:
            ok = first_id == lu + 1
        if not ok:
            self._reset_record(reset_out, iid, lu, info.transaction_time or info.event_time, ts_local,
                               ResetReason_SEQUENCE_GAP)
            st.phase = PHASE_NEEDS_SNAPSHOT
            st.first_pending = False
            st.n_msgs = 0
            st.n_recs = 0
            st.requested = True
            self._n_gaps += 1
            # the frame that broke the chain is the first of the next one
            if self._buffer(st, info, records, n) != 0:
                with gil:
                    raise MemoryError()
            self._n_buffered -= 1
            return SYNC_GAP
        st.last_id = final_id
        st.first_pending = False
        self._n_emitted += 1
        return SYNC_EMIT

    # ---- Python API -------------------------------------------------------------------------------

    def accept(self, records, info):
        """(SyncStatus, records to publish) for one decoded frame. `info` is the decoder's info (the
        dict, or the BinanceDecoder itself, which avoids building the dict)."""
        cdef FrameInfo fi
        cdef cnp.ndarray arr = as_record_array(records, "DepthSync.accept")
        cdef Record reset
        cdef int status
        if isinstance(info, BinanceDecoder):
            fi = (<BinanceDecoder>info).info
        else:
            fi = info
        status = self.accept_c(&fi, record_data(arr), cnp.PyArray_DIM(arr, 0), now_us(), &reset)
        if status == SYNC_EMIT:
            return SyncStatus.EMIT, arr
        if status == SYNC_GAP:
            out = np.empty(1, dtype=RECORD_DTYPE)
            memcpy(cnp.PyArray_DATA(out), &reset, sizeof(Record))
            return SyncStatus.GAP, out
        return SyncStatus(status), _EMPTY_RECORDS

    def snapshot(self, records):
        """Apply a REST snapshot (decode_depth_snapshot's records, one instrument): returns (SyncStatus,
        records to publish) - on SYNCED the snapshot followed by every buffered diff continuing it."""
        cdef cnp.ndarray arr = as_record_array(records, "DepthSync.snapshot")
        cdef const Record *snap = record_data(arr)
        cdef Py_ssize_t n = cnp.PyArray_DIM(arr, 0), i, start, stop, total
        cdef uint32_t iid
        cdef int64_t lu, prev
        cdef SyncState *st
        cdef SyncMsg *m
        cdef bint ok
        if n == 0:
            raise ValueError("DepthSync.snapshot needs the records of one snapshot, got none")
        iid = snap[0].instrument_id
        lu = snap[0].sequence
        for i in range(n):
            if snap[i].instrument_id != iid or snap[i].sequence != lu or not (
                    (snap[i].kind == KIND_BOOK_DELTA and snap[i].flags & FLAG_SNAPSHOT) or
                    (snap[i].kind == KIND_BOOK_RESET and n == 1)):
                raise ValueError("DepthSync.snapshot takes the records of one snapshot "
                                 "(decode_depth_snapshot's output)")
        if iid == 0:
            raise ValueError("a snapshot record has no instrument id")
        st = self._state(iid)
        if st == NULL:
            raise MemoryError()
        if st.phase == PHASE_LIVE and lu <= st.last_id:
            self._n_ignored_snapshots += 1
            return SyncStatus.SNAPSHOT_IGNORED, _EMPTY_RECORDS
        if st.phase == PHASE_LIVE:
            # A newer snapshot for a live book (the caller re-fetched): it replaces the book; diffs up to
            # its id that arrive later are stale.
            st.last_id = lu
            st.first_pending = True
            self._n_snapshots += 1
            return SyncStatus.SYNCED, arr
        # Drop what the snapshot already contains.
        start = 0
        while start < st.n_msgs:
            m = &st.msgs[start]
            if (m.final_id < lu) if self._usdm else (m.final_id <= lu):
                start += 1
            else:
                break
        if start < st.n_msgs:
            m = &st.msgs[start]
            ok = (m.first_id <= lu <= m.final_id) if self._usdm else (m.first_id <= lu + 1 <= m.final_id)
            if not ok:
                # The buffered stream starts after the snapshot: it cannot be continued.
                state_drop_front(st, start)
                st.requested = True
                self._n_too_old += 1
                return SyncStatus.SNAPSHOT_TOO_OLD, _EMPTY_RECORDS
        # Walk the chain through the buffer.
        stop = start
        prev = lu
        while stop < st.n_msgs:
            m = &st.msgs[stop]
            if stop > start:
                ok = (m.prev_id == prev) if self._usdm else (m.first_id == prev + 1)
                if not ok:
                    break
            prev = m.final_id
            stop += 1
        if stop < st.n_msgs:
            # A break inside the buffer: this snapshot cannot reach the live stream. Keep what follows
            # the break and ask for a newer snapshot (the book was never built, so no reset is due).
            state_drop_front(st, stop)
            st.requested = True
            self._n_gaps += 1
            return SyncStatus.GAP, _EMPTY_RECORDS
        total = n
        if stop > start:
            total += st.n_recs - st.msgs[start].offset
        out = np.empty(total, dtype=RECORD_DTYPE)
        memcpy(cnp.PyArray_DATA(out), snap, n * sizeof(Record))
        if stop > start:
            memcpy(<char *>cnp.PyArray_DATA(out) + n * sizeof(Record), st.recs + st.msgs[start].offset,
                   (total - n) * sizeof(Record))
        st.phase = PHASE_LIVE
        st.requested = False
        if stop > start:
            st.last_id = prev
            st.first_pending = False
            self._n_emitted += stop - start
        else:
            st.last_id = lu
            st.first_pending = True
        st.n_msgs = 0
        st.n_recs = 0
        self._n_snapshots += 1
        return SyncStatus.SYNCED, out

    def snapshot_request_failed(self, uint32_t instrument_id):
        """The snapshot fetch for this instrument failed: the next diff answers NEED_SNAPSHOT again."""
        cdef SyncState *st = self._state(instrument_id)
        if st == NULL:
            raise MemoryError()
        if st.phase == PHASE_NEEDS_SNAPSHOT:
            st.requested = False

    def reset(self, instrument_id=None, reason=ResetReason.RECONNECT, ts_local=None):
        """Send one instrument (or every one) back to "needs snapshot" (e.g. after a reconnect).
        Returns the BOOK_RESET records (aux0 = reason) of the books that were live."""
        cdef int64_t ts = now_us() if ts_local is None else <int64_t>ts_local
        cdef Py_ssize_t i, lo, hi
        cdef SyncState *st
        cdef list resets = []
        cdef Record rec
        cdef int why = int(ResetReason(reason))
        if instrument_id is None:
            lo, hi = 0, self._n_states
        else:
            lo = <uint32_t>instrument_id
            hi = lo + 1
            if self._state(<uint32_t>lo) == NULL:
                raise MemoryError()
        for i in range(lo, hi):
            st = &self._states[i]
            if st.phase == PHASE_LIVE:
                self._reset_record(&rec, <uint32_t>i, st.last_id, 0, ts, why)
                resets.append((<char *>&rec)[:sizeof(Record)])
            st.phase = PHASE_NEEDS_SNAPSHOT
            st.first_pending = False
            st.requested = False
            st.n_msgs = 0
            st.n_recs = 0
        if not resets:
            return np.zeros(0, dtype=RECORD_DTYPE)
        return np.frombuffer(b"".join(resets), dtype=RECORD_DTYPE).copy()

    def needs_snapshot(self, uint32_t instrument_id):
        """True until a snapshot has been accepted for the instrument (and again after a gap / reset)."""
        if <Py_ssize_t>instrument_id >= self._n_states:
            return True
        return self._states[instrument_id].phase == PHASE_NEEDS_SNAPSHOT

    def state(self, uint32_t instrument_id):
        """{'live', 'requested', 'last_update_id', 'first_event_pending', 'buffered_messages',
        'buffered_records'} of one instrument."""
        cdef SyncState *st
        if <Py_ssize_t>instrument_id >= self._n_states:
            return {"live": False, "requested": False, "last_update_id": 0, "first_event_pending": False,
                    "buffered_messages": 0, "buffered_records": 0}
        st = &self._states[instrument_id]
        return {"live": st.phase == PHASE_LIVE, "requested": bool(st.requested), "last_update_id": st.last_id,
                "first_event_pending": bool(st.first_pending), "buffered_messages": st.n_msgs,
                "buffered_records": st.n_recs}

    def stats(self):
        return {"emitted": self._n_emitted, "buffered": self._n_buffered, "stale": self._n_stale,
                "gaps": self._n_gaps, "lost_frames": self._n_lost, "snapshots": self._n_snapshots,
                "snapshots_too_old": self._n_too_old, "snapshots_ignored": self._n_ignored_snapshots,
                "buffer_overflows": self._n_overflow}

    def __repr__(self):
        return f"<DepthSync {self.market.name} gaps={self._n_gaps} snapshots={self._n_snapshots}>"
