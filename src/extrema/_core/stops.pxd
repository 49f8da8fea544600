from libc.stdint cimport int64_t, uint32_t, int32_t, uint8_t
from extrema._core.book cimport OrderBook

cdef enum:
    STOP_LOSS = 0          # sell: fires at or below the trigger; buy: at or above
    STOP_TAKE_PROFIT = 1   # sell: fires at or above the trigger; buy: at or below
    STOP_TRAILING = 2      # the trigger follows the best price by an offset

cdef enum:
    SOURCE_LAST = 0        # trade prices
    SOURCE_BIDASK = 1      # the price the order would execute at: bid for a sell, ask for a buy

cdef struct Stop:
    int64_t stop_id
    int64_t qty
    int64_t limit_price        # 0: a market order when it fires
    int64_t trigger
    int64_t offset             # trailing: raw price distance ...
    int64_t offset_bps         # ... or basis points of the best price
    int64_t extreme            # trailing: best price seen since armed
    int64_t activation         # trailing: arm once the price reaches it (0: armed at once)
    int64_t fired_price
    int64_t ts_fired
    uint32_t instrument_id
    int32_t owner
    uint8_t side               # side of the order sent when it fires (0 buy, 1 sell)
    uint8_t kind
    uint8_t source
    uint8_t active
    uint8_t armed


cdef class StopManager:
    cdef Stop *_stops
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _used
    cdef int32_t *_free
    cdef Py_ssize_t _n_free
    cdef int32_t **_lists             # per instrument id: slots of its active stops
    cdef int32_t *_list_n
    cdef int32_t *_list_cap
    cdef uint32_t _n_instruments
    cdef int32_t *_fired              # slots fired, not yet drained
    cdef Py_ssize_t _fired_n
    cdef Py_ssize_t _fired_cap
    cdef dict _ids                    # stop id -> slot
    cdef readonly int64_t fired_total

    cdef int on_price(self, uint32_t iid, int64_t bid, int64_t ask, int64_t last, int64_t ts) except -1
    cdef int on_book(self, uint32_t iid, OrderBook book, int64_t ts) except -1
    cdef inline bint watching(self, uint32_t iid) noexcept nogil:
        return iid < self._n_instruments and self._list_n[iid] > 0
    cdef int _grow_instruments(self, uint32_t iid) except -1
    cdef int _fire(self, uint32_t iid, int32_t k, int64_t price, int64_t ts) except -1
