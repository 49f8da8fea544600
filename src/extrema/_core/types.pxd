# Shared C data model of extrema: declarations only, no code.
#
# One 64-byte record is the unit of everything that flows through the engine: it is the ring slot,
# the journal format, the backtest input, the ZeroMQ frame and a row of extrema.RECORD_DTYPE.
# The field order here and in records.pyx's RECORD_DTYPE must stay identical (tests/unit/test_records.py
# compares offsetof() of every field with the dtype).
from libc.stdint cimport uint16_t, uint32_t, int64_t

cdef extern from "ex_record.h":
    ctypedef struct Record "ex_record":
        uint16_t kind
        uint16_t flags
        uint32_t instrument_id
        int64_t ts_exchange
        int64_t ts_local
        int64_t sequence
        int64_t price
        int64_t quantity
        int64_t aux0
        int64_t aux1

# Record kinds. Values are part of the journal format: never renumber, only append.
cdef enum:
    KIND_NONE = 0
    KIND_BOOK_DELTA = 1     # one L2 level: price, quantity (0 = delete); sequence = update id (Binance u),
                            # aux0 = first update id of the message (U), aux1 = previous update id (pu) or 0
    KIND_TRADE = 2          # price, quantity, sequence = trade id; FLAG_ASK = seller was the aggressor
    KIND_QUOTE = 3          # top of book: price/quantity = bid, aux0/aux1 = ask price/size; sequence = update id
    KIND_BOOK_RESET = 4     # the book of instrument_id is void (gap, reconnect); aux0 = reason code
    KIND_CANDLE = 5         # multi-slot, see records.pyx
    KIND_ORDER_UPDATE = 6   # multi-slot, see records.pyx
    KIND_FILL = 7           # multi-slot, see records.pyx
    KIND_TIMER = 8          # sequence = timer id, aux0 = scheduled time (us)
    KIND_PREDICTION = 9     # multi-slot, see records.pyx
    KIND_CONTINUATION = 15  # payload slot of a multi-slot event
    KIND_MAX = 15

# Record flag bits.
cdef enum:
    FLAG_ASK = 0x0001                # book side ask / trade aggressor was the seller / order side sell
    FLAG_SNAPSHOT = 0x0002           # part of a full snapshot (the first one clears the book)
    FLAG_LAST = 0x0004               # last record of one venue message: the book is consistent after it
    FLAG_AGGRESSOR_UNKNOWN = 0x0008  # trade without a known aggressor side
    FLAG_MAKER = 0x0010              # fill: we were the maker
    CONT_SHIFT = 12                  # bits 12..15: number of continuation slots that follow this head
    CONT_MASK = 0xF000
