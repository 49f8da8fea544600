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
    KIND_MARK_PRICE = 10    # derivatives mark price: price = mark, quantity = estimated settle price,
                            # aux0 = index price, aux1 = funding rate (raw at RATE_PRECISION), sequence =
                            # next funding time (us); see records.pyx
    KIND_BALANCE = 11       # one asset's balance; see records.pyx
    KIND_POSITION = 12      # multi-slot, see records.pyx
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

# Precisions of values that belong to no instrument grid (records.pyx documents where they appear).
cdef enum:
    ASSET_PRECISION = 8      # balances, fees, PnL: raw = amount * 10**8 (Binance's wire precision for assets)
    RATE_PRECISION = 8       # funding rates: raw = rate * 10**8

# Order vocabulary shared by every venue decoder and the execution layer (Python: records.OrderStatus...).
# Values are part of the journal format (ORDER_UPDATE / FILL / POSITION payloads): never renumber.
cdef enum:
    # The engine's order states (one state machine for every venue, _core/orders.pyx); decoders map the
    # venue's words onto them (Binance NEW -> ACCEPTED, PENDING_NEW -> SUBMITTED, CANCELED -> CANCELLED,
    # EXPIRED_IN_MATCH -> EXPIRED, NEW_INSURANCE / NEW_ADL -> ACCEPTED; the exec type and the order type
    # keep what the word said).
    ORDER_STATUS_INITIALIZED = 0
    ORDER_STATUS_SUBMITTED = 1
    ORDER_STATUS_ACCEPTED = 2
    ORDER_STATUS_PARTIALLY_FILLED = 3
    ORDER_STATUS_FILLED = 4
    ORDER_STATUS_CANCELLED = 5
    ORDER_STATUS_REJECTED = 6
    ORDER_STATUS_EXPIRED = 7
    ORDER_STATUS_PENDING_CANCEL = 8
    ORDER_STATUS_PENDING_REPLACE = 9
    ORDER_STATUS_UNKNOWN = 10         # a status word the decoder does not know (counted)
    N_ORDER_STATUS = 11

cdef enum:
    ORDER_TYPE_UNKNOWN = 0
    ORDER_TYPE_MARKET = 1
    ORDER_TYPE_LIMIT = 2
    ORDER_TYPE_STOP_MARKET = 3         # Binance spot STOP_LOSS, USD-M STOP_MARKET
    ORDER_TYPE_STOP_LIMIT = 4          # Binance spot STOP_LOSS_LIMIT, USD-M STOP
    ORDER_TYPE_TAKE_PROFIT_MARKET = 5  # Binance spot TAKE_PROFIT, USD-M TAKE_PROFIT_MARKET
    ORDER_TYPE_TAKE_PROFIT_LIMIT = 6   # Binance spot TAKE_PROFIT_LIMIT, USD-M TAKE_PROFIT
    ORDER_TYPE_LIMIT_MAKER = 7         # post-only limit
    ORDER_TYPE_TRAILING_STOP_MARKET = 8
    ORDER_TYPE_LIQUIDATION = 9
    N_ORDER_TYPES = 10

cdef enum:
    TIF_UNKNOWN = 0
    TIF_GTC = 1
    TIF_IOC = 2
    TIF_FOK = 3
    TIF_GTX = 4                        # post-only (good till crossing)
    TIF_GTD = 5
    TIF_RPI = 6                        # retail price improvement (USD-M)

cdef enum:
    EXEC_UNKNOWN = 0
    EXEC_NEW = 1
    EXEC_CANCELED = 2
    EXEC_REPLACED = 3
    EXEC_REJECTED = 4
    EXEC_TRADE = 5
    EXEC_EXPIRED = 6
    EXEC_TRADE_PREVENTION = 7
    EXEC_CALCULATED = 8                # liquidation / ADL execution (USD-M)
    EXEC_AMENDMENT = 9

cdef enum:
    ORDER_REASON_NONE = 0
    ORDER_REASON_OTHER = 1             # a reason text the decoder does not map (counted)
    ORDER_REASON_INSUFFICIENT_BALANCE = 2
    ORDER_REASON_SELF_TRADE_PREVENTION = 3
    ORDER_REASON_POST_ONLY_WOULD_TAKE = 4
    ORDER_REASON_PRICE_QTY_LIMITS = 5
    ORDER_REASON_UNKNOWN_ORDER = 6
    ORDER_REASON_DUPLICATE_ORDER = 7
    ORDER_REASON_MARKET_CLOSED = 8
    ORDER_REASON_INSUFFICIENT_LIQUIDITY = 9

cdef enum:
    POSITION_SIDE_BOTH = 0             # one-way mode
    POSITION_SIDE_LONG = 1
    POSITION_SIDE_SHORT = 2

cdef enum:
    MARGIN_CROSS = 0
    MARGIN_ISOLATED = 1

cdef enum:
    ACCOUNT_REASON_NONE = 0            # the venue gives no reason (spot)
    ACCOUNT_REASON_OTHER = 1           # a reason text the decoder does not map
    ACCOUNT_REASON_DEPOSIT = 2
    ACCOUNT_REASON_WITHDRAW = 3
    ACCOUNT_REASON_ORDER = 4
    ACCOUNT_REASON_FUNDING_FEE = 5
    ACCOUNT_REASON_WITHDRAW_REJECT = 6
    ACCOUNT_REASON_ADJUSTMENT = 7
    ACCOUNT_REASON_INSURANCE_CLEAR = 8
    ACCOUNT_REASON_ADMIN_DEPOSIT = 9
    ACCOUNT_REASON_ADMIN_WITHDRAW = 10
    ACCOUNT_REASON_MARGIN_TRANSFER = 11
    ACCOUNT_REASON_MARGIN_TYPE_CHANGE = 12
    ACCOUNT_REASON_ASSET_TRANSFER = 13
    ACCOUNT_REASON_OPTIONS_PREMIUM_FEE = 14
    ACCOUNT_REASON_OPTIONS_SETTLE_PROFIT = 15
    ACCOUNT_REASON_AUTO_EXCHANGE = 16
    ACCOUNT_REASON_COIN_SWAP_DEPOSIT = 17
    ACCOUNT_REASON_COIN_SWAP_WITHDRAW = 18
