from libc.stdint cimport int64_t, uint32_t, int32_t, uint8_t
from extrema._core.orders cimport OrderTable, N_OWNERS
from extrema._core.portfolio cimport Portfolio, MAX_MARKETS
from extrema._core.book cimport OrderBook
from extrema._core.ex_money cimport ex_i128

# Pre-trade rules, in the order they are checked (extrema.RiskRule).
cdef enum:
    RULE_PASSED = 0
    RULE_KILL_SWITCH = 1
    RULE_CIRCUIT_BREAKER = 2
    RULE_INVALID_ORDER = 3
    RULE_TICK_SIZE = 4
    RULE_LOT_SIZE = 5
    RULE_MIN_NOTIONAL = 6
    RULE_MAX_ORDER_SIZE = 7
    RULE_MAX_ORDER_NOTIONAL = 8
    RULE_PRICE_BAND = 9
    RULE_MAX_OPEN_ORDERS = 10
    RULE_REDUCE_ONLY = 11
    RULE_MAX_POSITION = 12
    RULE_MAX_EXPOSURE = 13
    RULE_DAILY_LOSS = 14
    RULE_RATE_LIMIT = 15
    N_RULES = 16

cdef enum:
    BREAKER_NONE = 0
    BREAKER_DRAWDOWN = 1
    BREAKER_REJECTS = 2
    BREAKER_MANUAL = 3

cdef enum:
    RISK_EV_KILL = 1
    RISK_EV_RELEASE = 2
    RISK_EV_BREAKER_TRIP = 3
    RISK_EV_BREAKER_RESET = 4
    RISK_EV_DAY_START = 5

cdef enum:
    MAX_BUCKETS = 4
    MAX_REJECT_BURST = 64
    RISK_REJECT_REASON_BASE = 1000     # ORDER_UPDATE reason code of a risk rejection: base + rule

# The outcome of one check: the rule that refused the order (PASSED = 0), the scope whose limit it was
# (a strategy index, or ALL = 65 for a global limit) and the numbers, in user units (sizes and prices
# as decimals, money in account currency, bands in basis points, counts).
cdef struct RiskResult:
    int rule
    int scope
    uint32_t instrument_id
    double limit
    double value

cdef struct ScopeLimits:
    int64_t max_open_orders        # < 0: none
    double max_exposure            # inf: none (account currency)
    double max_order_notional
    double daily_loss              # a loss at or beyond it stops new risk for the day
    double max_drawdown            # equity this far below its peak trips the breaker
    int64_t price_band_bps         # 0: none
    int32_t reject_burst           # this many venue rejects ...
    int64_t reject_window_us       # ... within this window trip the breaker (0 count: none)
    int64_t breaker_cooldown_us    # a reject-burst trip clears itself after this (0: manual reset)

cdef struct ScopeState:
    uint8_t killed
    uint8_t breaker
    int64_t breaker_since
    int64_t breaker_until          # 0: until reset
    double breaker_value
    double breaker_limit
    int64_t day                    # day index of day_start_equity; -1 before the first
    double day_start_equity
    double peak_equity
    uint8_t peak_set
    int64_t reject_ts[MAX_REJECT_BURST]
    int32_t reject_head
    int32_t reject_n
    int64_t checks
    int64_t passed
    int64_t rejected[N_RULES]

cdef struct InstrumentLimits:
    int64_t max_position           # raw size; INT64_MAX: none
    int64_t max_order_qty

# Token bucket with exact integer refill: one token = per_us units, `orders` units come in per
# microsecond, so `orders` tokens refill every `per_us` microseconds; the bucket holds `orders` tokens.
cdef struct Bucket:
    int64_t orders
    int64_t per_us
    int64_t units
    int64_t last_us

cdef struct RiskEvent:
    int kind
    int scope
    int reason
    double value
    double limit
    int64_t ts


cdef class RiskEngine:
    cdef readonly OrderTable orders
    cdef readonly Portfolio portfolio
    cdef ScopeLimits _limits[N_OWNERS]
    cdef ScopeState _state[N_OWNERS]
    cdef InstrumentLimits *_inst       # [instrument id * N_OWNERS + scope]
    cdef uint32_t _inst_n
    cdef Bucket _buckets[MAX_MARKETS][MAX_BUCKETS]
    cdef int _n_buckets[MAX_MARKETS]
    cdef readonly int64_t day_offset_us
    cdef RiskEvent _events[256]
    cdef int _ev_head
    cdef int _ev_n
    cdef readonly int64_t events_lost
    cdef readonly int64_t min_notional_unchecked
    cdef readonly list changes
    cdef object _log

    cdef int check(self, int owner, uint32_t iid, int side, int order_type, int flags, int64_t price,
                   int64_t stop_price, int64_t qty, int64_t now, RiskResult *out) except -1
    cdef int _check(self, int owner, uint32_t iid, int side, int order_type, int flags, int64_t price,
                    int64_t stop_price, int64_t qty, int64_t now, RiskResult *out) except -1
    cdef int _band(self, uint32_t iid, int side, int order_type, int64_t price, int64_t qty, bint has_mark,
                   int64_t m2, int64_t band, RiskResult *out) except -1
    cdef int on_venue_reject(self, int owner, int64_t now) noexcept
    cdef int evaluate_scope(self, int scope, int64_t now) noexcept
    cdef Py_ssize_t kill_ids(self, int scope, int64_t *out, Py_ssize_t cap) noexcept

    cdef int _grow(self, uint32_t iid) except -1
    cdef inline InstrumentLimits *_il(self, uint32_t iid, int scope) noexcept nogil:
        if iid >= self._inst_n:
            return NULL
        return &self._inst[<Py_ssize_t>iid * N_OWNERS + scope]
    cdef double _equity(self, int scope, double *cache) noexcept
    cdef int _breaker(self, int scope, int64_t now, RiskResult *out, double *eq_cache) noexcept
    cdef void _trip(self, int scope, int reason, double value, double limit, int64_t now) noexcept
    cdef void _roll_day(self, int scope, int64_t now, double *eq_cache) noexcept
    cdef double _exposure(self, int scope, uint32_t iid, int side, int64_t qty, int64_t ref2, double *before) noexcept
    cdef int _rate_ok(self, int market, int64_t now, RiskResult *out) noexcept
    cdef void _event(self, int kind, int scope, int reason, double value, double limit, int64_t ts) noexcept
