from libc.stdint cimport int64_t, uint32_t, uint64_t

cdef class Instrument:
    cdef readonly uint32_t id
    cdef readonly str name
    cdef readonly object market           # Market
    cdef readonly object parts            # InstrumentName
    cdef readonly str venue_symbol
    cdef readonly int price_precision
    cdef readonly int size_precision
    cdef readonly int64_t tick_raw
    cdef readonly int64_t lot_raw
    cdef readonly int64_t min_notional_raw
    cdef readonly object multiplier       # Decimal
    cdef dict _spec(self)

cdef class InstrumentRegistry:
    # Bumped by every register() that adds or replaces an instrument: compiled caches keyed by venue
    # symbol (the decoders') compare it to know when to forget what they resolved. Read without the GIL.
    cdef readonly uint64_t version
    cdef list _by_id
    cdef dict _by_name
    cdef dict _by_plain_name
    cdef dict _by_symbol
    cdef object _lock
