# Binance wire codec (simdjson On-Demand) and the depth-book synchroniser; see binance.pyx.
#
# Compiled API for Cython callers (the connection glue): `cimport extrema._core.binance as bn`, then
#     n = decoder.decode_into(data, size, ts_local, out, capacity)     # records of one frame, nogil
#     st = sync.accept_c(&decoder.info, out, n, ts_local, &reset)       # is it in sync? nogil
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from extrema._core.types cimport Record
from extrema._core.instruments cimport InstrumentRegistry

# C-compatible declarations only (ex_json_types.h), so a plain C module can cimport this .pxd; the C++
# On-Demand shim (ex_json.h) is used inside binance.pyx alone.
cdef extern from "ex_json_types.h" nogil:
    ctypedef struct ex_json_doc:     # opaque here: simdjson's parser and document
        pass
    ctypedef struct ex_strpair:
        const char *a
        size_t an
        const char *b
        size_t bn
    ctypedef struct ex_pairbuf:
        ex_strpair *data
        size_t n
        size_t cap


# What one decoded frame was (BinanceDecoder.info; a dict from Python). Filled for every frame,
# dropped ones included (event / instrument_id as far as the decoder got before dropping).
cdef struct FrameInfo:
    int event                       # BinanceEvent
    int drop_reason                 # DropReason, 0 when the frame was decoded
    uint32_t instrument_id          # 0 when none / not resolved
    int64_t first_update_id         # depth: U; snapshot: lastUpdateId
    int64_t final_update_id         # depth: u; snapshot: lastUpdateId
    int64_t prev_final_update_id    # depth: pu (USD-M), 0 on spot
    Py_ssize_t changes              # depth / snapshot: number of level changes (bids + asks)
    int64_t event_time              # E in µs, 0 when absent
    int64_t transaction_time        # T in µs, 0 when absent
    Py_ssize_t records              # records written for this frame
    Py_ssize_t needed               # records the frame needs (> capacity on a CAPACITY drop)
    int64_t request_id              # control / error frames: "id" when it is an integer, else -1
    int64_t error_code              # error frames: the venue's code


# One value of a JSON object as read by the first pass (views valid until the next frame).
cdef struct Slot:
    int type
    int64_t i
    const char *s
    Py_ssize_t n

cdef enum:
    N_SLOTS = 85

cdef struct Fields:
    uint64_t present[2]
    Slot v[N_SLOTS]

cdef struct StrView:
    const char *s
    Py_ssize_t n                    # -1 = absent

cdef struct BalanceEntry:
    StrView asset
    StrView free_or_wallet          # spot "f" / futures "wb"
    StrView locked_or_cross         # spot "l" / futures "cw"
    StrView change                  # futures "bc"

cdef struct PositionEntry:
    StrView symbol                  # s
    StrView amount                  # pa
    StrView entry                   # ep
    StrView breakeven               # bep
    StrView realized                # cr
    StrView unrealized              # up
    StrView margin_type             # mt
    StrView isolated                # iw
    StrView side                    # ps

cdef struct SymbolEntry:
    char key[32]
    uint8_t len                     # 0 = free slot
    uint8_t known                   # 1 = resolved to an instrument, 0 = the registry has no such symbol
    uint8_t price_precision
    uint8_t size_precision
    uint32_t instrument_id


cdef class BinanceDecoder:
    cdef readonly FrameInfo info
    cdef readonly InstrumentRegistry registry
    cdef readonly object market
    cdef bint _usdm
    cdef int64_t _ts_mul                 # 1000 for millisecond wire times, 1 for microseconds
    cdef Py_ssize_t _max_frame
    cdef ex_json_doc *_json
    cdef char *_buf                      # padded copy of the frame (simdjson reads past the end)
    cdef Py_ssize_t _buf_cap
    cdef Py_ssize_t _buf_len             # the length of the frame in _buf (what rehearse() decodes again)
    cdef int64_t _buf_ts                 # and the local time it was decoded with
    cdef Fields _top                     # the event object (or root)
    cdef Fields _inner                   # its nested object: kline "k", order "o", account "a", "error"
    cdef bint _wrapped
    cdef Py_ssize_t _root_extra          # payload-like keys beside a "data" / "event" wrapper
    cdef ex_pairbuf _bids
    cdef ex_pairbuf _asks
    cdef BalanceEntry *_balances
    cdef Py_ssize_t _n_balances, _cap_balances
    cdef PositionEntry *_positions
    cdef Py_ssize_t _n_positions, _cap_positions
    cdef SymbolEntry *_symtab
    cdef Py_ssize_t _sym_cap, _sym_count
    cdef uint64_t _sym_version
    cdef Record *_scratch                # Python API output before the copy into numpy
    cdef Py_ssize_t _scratch_cap
    # counters
    cdef int64_t _n_frames, _n_records, _n_unknown_enum, _n_klines_open, _n_unknown_positions
    cdef int64_t _drops[24]
    cdef int64_t _events[24]
    cdef int64_t _log_next_ns[24]
    cdef int64_t _log_suppressed[24]
    # diagnostics (copied, readable after the call)
    cdef char _error_text[512]
    cdef Py_ssize_t _error_len
    cdef char _drop_detail[160]
    cdef Py_ssize_t _drop_detail_len
    cdef char _ignored_event[48]
    cdef Py_ssize_t _ignored_len
    cdef int _json_error
    # client order ids (Python objects, used under the GIL: user-data frames only)
    cdef dict _coid_by_text
    # our own wire ids `ex<tag><digits>` parse back to their int in C, no map (own_client_id_prefix)
    cdef char _own_prefix[16]
    cdef Py_ssize_t _own_prefix_n
    cdef dict _coid_text
    cdef dict _asset_cache
    cdef object _log

    cdef Py_ssize_t decode_into(self, const char *data, Py_ssize_t n, int64_t ts_local, Record *out,
                                Py_ssize_t capacity) except -1 nogil
    cdef Py_ssize_t decode_snapshot_into(self, const char *data, Py_ssize_t n, uint32_t instrument_id,
                                         int64_t ts_local, Record *out, Py_ssize_t capacity) except -1 nogil
    cdef Py_ssize_t rehearse(self, Record *out, Py_ssize_t capacity) noexcept nogil
    # internals
    cdef void _begin_frame(self) noexcept nogil
    cdef int _prepare(self, const char *data, Py_ssize_t n) except -1 nogil
    cdef Py_ssize_t _finish(self, int reason, Py_ssize_t written, const char *data,
                            Py_ssize_t n) noexcept nogil
    cdef void _set_detail(self, const char *what, const char *s, Py_ssize_t n) noexcept nogil
    cdef void _log_drop(self, int reason, const char *data, Py_ssize_t n) noexcept nogil
    cdef int _json_fail(self, int code) noexcept nogil
    cdef int _parse(self, Py_ssize_t n) noexcept nogil
    cdef bint _looks_like_json(self, Py_ssize_t n) noexcept nogil
    cdef int _need_int(self, const Fields *f, int k, const char *name, int64_t *out) noexcept nogil
    cdef int64_t _opt_int(self, const Fields *f, int k, int64_t default) noexcept nogil
    cdef int _need_str(self, const Fields *f, int k, const char *name, const char **s,
                       Py_ssize_t *n) noexcept nogil
    cdef int _need_bool(self, const Fields *f, int k, const char *name, bint *out) noexcept nogil
    cdef int _dec(self, const char *s, Py_ssize_t n, int precision, bint allow_negative, const char *name,
                  int64_t *out) noexcept nogil
    cdef int _need_dec(self, const Fields *f, int k, const char *name, int precision, bint allow_negative,
                       int64_t *out) noexcept nogil
    cdef int _opt_dec(self, const Fields *f, int k, const char *name, int precision, bint allow_negative,
                      bint rounded, int64_t *out) noexcept nogil
    cdef int _view_dec(self, StrView v, const char *name, int precision, bint allow_negative, bint rounded,
                       bint required, int64_t *out) noexcept nogil
    cdef int64_t _time(self, const Fields *f, int k) noexcept nogil
    cdef int _symbol(self, const Fields *f, int k, SymbolEntry *out) noexcept nogil
    cdef int _resolve(self, const char *s, Py_ssize_t n, SymbolEntry *out) noexcept nogil
    cdef int _grow_symtab(self) noexcept nogil
    cdef void _lookup_registry(self, SymbolEntry *e) noexcept with gil
    cdef int _instrument_by_id(self, uint32_t iid, SymbolEntry *out) noexcept with gil
    cdef int64_t _client_id(self, const char *s, Py_ssize_t n) noexcept nogil
    cdef int64_t _client_id_mapped(self, const char *s, Py_ssize_t n) noexcept with gil
    cdef int64_t _asset(self, const char *s, Py_ssize_t n) noexcept with gil
    cdef int _enum(self, int code, int unknown) noexcept nogil
    cdef int _build(self, int64_t ts_local, Record *out, Py_ssize_t capacity,
                    Py_ssize_t *written) noexcept nogil
    cdef bint _is_partial_depth(self) noexcept nogil
    cdef void _remember_ignored(self, const char *s, Py_ssize_t n) noexcept nogil
    cdef int _build_error(self) noexcept nogil
    cdef void _copy_error(self, const char *s, Py_ssize_t n) noexcept nogil
    cdef int _check_capacity(self, Py_ssize_t need, Py_ssize_t capacity) noexcept nogil
    cdef int _build_depth(self, int64_t ts_local, Record *out, Py_ssize_t capacity,
                          Py_ssize_t *written) noexcept nogil
    cdef int _build_snapshot(self, const SymbolEntry *inst, int64_t ts_local, Record *out,
                             Py_ssize_t capacity, Py_ssize_t *written) noexcept nogil
    cdef int _build_trade(self, int ev, int64_t ts_local, Record *out, Py_ssize_t capacity,
                          Py_ssize_t *written) noexcept nogil
    cdef int _build_quote(self, int64_t ts_local, Record *out, Py_ssize_t capacity,
                          Py_ssize_t *written) noexcept nogil
    cdef int _build_kline(self, int64_t ts_local, Record *out, Py_ssize_t capacity,
                          Py_ssize_t *written) noexcept nogil
    cdef int _build_mark(self, int64_t ts_local, Record *out, Py_ssize_t capacity,
                         Py_ssize_t *written) noexcept nogil
    cdef int _order_fields(self, const Fields *o, bint usdm, bint algo, SymbolEntry *inst, bint *sell,
                           int *status, int *otype) noexcept nogil
    cdef int _build_order(self, const Fields *o, bint usdm, int64_t ts_local, Record *out,
                          Py_ssize_t capacity, Py_ssize_t *written) noexcept nogil
    cdef int _average_price(self, const Slot *quote, int64_t cum, int pp, int sp, int64_t *avg) noexcept nogil
    cdef int _build_algo(self, int64_t ts_local, Record *out, Py_ssize_t capacity,
                         Py_ssize_t *written) noexcept nogil
    cdef int _build_account(self, int ev, int64_t ts_local, Record *out, Py_ssize_t capacity,
                            Py_ssize_t *written) noexcept nogil
    cdef Py_ssize_t _reserve_scratch(self, Py_ssize_t frame_len) except -1


cdef struct SyncMsg:
    int64_t first_id                # U
    int64_t final_id                # u
    int64_t prev_id                 # pu
    int64_t ts_exchange
    Py_ssize_t offset               # into SyncState.recs
    Py_ssize_t count

cdef struct SyncState:
    int phase                       # 0 = needs a snapshot, 1 = live
    bint first_pending              # live, the first event after the snapshot is still to come
    bint requested                  # the caller was told (NEED_SNAPSHOT / GAP) and is fetching one
    int64_t last_id                 # u of the last in-sync event (the snapshot's id while first_pending)
    SyncMsg *msgs
    Py_ssize_t n_msgs, cap_msgs
    Record *recs
    Py_ssize_t n_recs, cap_recs


cdef enum:                     # DepthSync's answers (binance.SyncStatus)
    SYNC_EMIT = 0
    SYNC_BUFFERED = 1
    SYNC_NEED_SNAPSHOT = 2
    SYNC_STALE = 3
    SYNC_GAP = 4
    SYNC_SYNCED = 5
    SYNC_SNAPSHOT_TOO_OLD = 6
    SYNC_SNAPSHOT_IGNORED = 7


cdef class DepthSync:
    cdef readonly object market
    cdef bint _usdm
    cdef SyncState *_states              # by instrument id
    cdef Py_ssize_t _n_states
    cdef Py_ssize_t _max_buffered        # messages per instrument
    cdef int64_t _n_emitted, _n_buffered, _n_stale, _n_gaps, _n_lost, _n_snapshots, _n_too_old
    cdef int64_t _n_ignored_snapshots, _n_overflow

    cdef SyncState *_state(self, uint32_t iid) noexcept nogil
    cdef int _buffer(self, SyncState *st, const FrameInfo *info, const Record *records, Py_ssize_t n) noexcept nogil
    cdef void _reset_record(self, Record *r, uint32_t iid, int64_t last_id, int64_t ts_exchange, int64_t ts_local,
                            int reason) noexcept nogil
    cdef int accept_c(self, const FrameInfo *info, const Record *records, Py_ssize_t n, int64_t ts_local,
                      Record *reset_out) except -1 nogil
