from cpython.ref cimport PyObject
from libc.stdint cimport int64_t, uint32_t, int32_t, uint8_t
from extrema._core.types cimport Record
from extrema._core.ex_money cimport ex_i128
from extrema._core.orders cimport N_OWNERS

cdef enum:
    METHOD_FIFO = 0
    METHOD_LIFO = 1
    METHOD_AVERAGE = 2

# How a fill moves the venue's balances.
cdef enum:
    CASH_SPOT = 0       # base asset in, quote asset out (spot)
    CASH_PREMIUM = 1    # quote asset out by the notional, no asset in (options, equities)
    CASH_MARGIN = 2     # only realised P&L moves the quote (margin) asset (perpetuals, futures)

cdef enum:
    MONEY_PRECISION = 18      # balances and fees: exact at 18 decimals
    MAX_MARKETS = 16

cdef struct Lot:
    int64_t price
    int64_t qty               # > 0

cdef struct Position:
    int64_t qty               # signed raw size: > 0 long, < 0 short
    ex_i128 cost              # signed sum of price x size of the open lots (pp + sp decimals)
    ex_i128 realized          # realised P&L (pp + sp decimals, before the contract multiplier)
    ex_i128 fees_quote        # fees in the quote asset (18 decimals); base-asset fees converted at the fill price
    double fees_other         # fees in other assets, valued in account currency at the fill
    int64_t bought            # raw volume bought / sold
    int64_t sold
    int64_t n_fills
    int64_t last_price
    int64_t ts_last
    Lot *lots                 # FIFO / LIFO: ring buffer of open lots, oldest at head
    int32_t lot_head
    int32_t lot_n
    int32_t lot_cap
    uint8_t touched

cdef struct InstrumentSpec:
    uint8_t loaded
    uint8_t cash_kind
    int32_t market
    int32_t price_precision
    int32_t size_precision
    int32_t mult_precision
    int64_t multiplier_raw    # contract multiplier = multiplier_raw / 10**mult_precision
    int64_t tick
    int64_t lot
    int64_t min_notional
    int32_t base_asset
    int32_t quote_asset
    double value_factor       # native (pp + sp) amount -> quote units: multiplier / 10**(pp + sp)
    int64_t mark2             # explicit mark price x 2 (0: none)
    int64_t quote_mid2        # bid + ask of the latest QUOTE (0: none)
    int64_t last_trade2       # latest trade price x 2 (0: none)
    int64_t last_fill2        # latest fill price x 2 (0: none)
    PyObject *book            # the engine's OrderBook (borrowed; Portfolio._books keeps it)
    int64_t cache_epoch       # mark2 memo for one risk check (see Portfolio.mark_cache_on)
    int64_t cache_m2
    uint8_t cache_ok


cdef class AssetRegistry:
    cdef dict _ids
    cdef list _codes
    cdef int32_t *_precision             # by process-wide asset id; -1 = not registered here
    cdef Py_ssize_t _cap
    cdef readonly int32_t max_id
    cdef int _reserve(self, int32_t aid) except -1
    cdef int32_t id_of(self, str code, int precision) except -1
    cdef int32_t known(self, int32_t aid) except -1
    cdef inline int precision_of(self, int32_t asset) noexcept nogil:
        return self._precision[asset]


cdef class Portfolio:
    cdef readonly object registry
    cdef readonly AssetRegistry assets
    cdef readonly int method
    cdef InstrumentSpec *_specs
    cdef Position **_blocks           # per instrument id: N_OWNERS positions, or NULL
    cdef uint32_t _n_instruments      # capacity of _specs / _blocks
    cdef uint32_t *_active[N_OWNERS]  # per owner: instrument ids it has a position record on, first touch first
    cdef int32_t _active_n[N_OWNERS]
    cdef int32_t _active_cap[N_OWNERS]
    cdef ex_i128 *_balances           # [market * asset capacity + asset], 18 decimals
    cdef Py_ssize_t _bal_assets
    cdef double *_rates               # per asset: account-currency value of one unit
    cdef Py_ssize_t _rates_n
    cdef list _books
    cdef readonly int64_t fills_applied
    cdef int64_t _mark_epoch          # while _mark_caching, mark2 of an instrument is computed once per epoch
    cdef bint _mark_caching

    cdef int ensure_instrument(self, uint32_t iid) except -1
    cdef inline InstrumentSpec *spec(self, uint32_t iid) noexcept nogil:
        return &self._specs[iid]
    cdef inline Position *position_ptr(self, uint32_t iid, int owner) noexcept nogil:
        if iid >= self._n_instruments or self._blocks[iid] == NULL:
            return NULL
        return &self._blocks[iid][owner]
    cdef Position *touch(self, uint32_t iid, int owner) except NULL
    cdef int apply_fill(self, int owner, uint32_t iid, int side, int64_t price, int64_t qty, int64_t fee,
                        int32_t fee_asset, int64_t ts) except -1
    cdef int apply_fill_record(self, const Record *r, int owner) except -1
    cdef bint mark2(self, uint32_t iid, int64_t *out) noexcept
    cdef bint _mark2(self, InstrumentSpec *s, int64_t *out) noexcept
    # One risk check reads the same marks many times (exposure and equity of two scopes): between on and
    # off, each instrument's mark is computed once. Nothing may change the books or marks in between.
    cdef inline void mark_cache_on(self) noexcept nogil:
        self._mark_epoch += 1
        self._mark_caching = True
    cdef inline void mark_cache_off(self) noexcept nogil:
        self._mark_caching = False
    cdef ex_i128 unrealized(self, const Position *p, int64_t mark2) noexcept nogil
    cdef double equity_of(self, int owner) noexcept
    cdef inline double rate(self, int32_t asset) noexcept nogil:
        return self._rates[asset] if asset < self._rates_n else 1.0
    cdef inline Py_ssize_t active_count(self, int owner) noexcept nogil:
        return self._active_n[owner]
    cdef inline uint32_t active_at(self, int owner, Py_ssize_t k) noexcept nogil:
        return self._active[owner][k]

    cdef int _grow(self, uint32_t iid) except -1
    cdef int _grow_assets(self, Py_ssize_t n) except -1
    cdef int _fill_one(self, Position *p, int64_t price, int64_t f, ex_i128 *realized) except -1
    cdef int _push_lot(self, Position *p, int64_t price, int64_t qty) except -1
    cdef ex_i128 _to_money(self, const InstrumentSpec *s, ex_i128 native) noexcept nogil
    cdef object _position_dict(self, int owner, uint32_t iid)
