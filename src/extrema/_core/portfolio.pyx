"""Positions, P&L and balances, per strategy and per venue, fed by fills; exact integer arithmetic.

Positions are kept per (owner, instrument): owner 0..63 is a strategy (the low bits of its client order
ids), 64 (EXTERNAL) the orders this engine did not place, 65 (ALL) the venue-wide aggregate, which every
fill also goes to. An instrument id already names one venue, so ALL is "per venue" position.

Accounting (one method per portfolio):
  * FIFO / LIFO: open lots (price, size); a reducing fill closes the oldest (FIFO) / newest (LIFO) lots
    first and realises (exit - entry) x size per lot, signed by the position's direction;
  * AVERAGE: a running cost basis C for a position Q; closing q realises s x price x q - R with
    R = trunc(C x q / |Q|) (truncated toward zero), C -= R. Whole closes realise exactly.
  A fill larger than the position closes it and opens the rest at the fill price.
Every amount of price x size is an exact int at pp + sp decimals (128-bit); realised P&L in quote units is
that times the contract multiplier. Unrealised P&L is (Q x mark - C) at the mark price, where the mark
is, by priority: an explicit mark (set_mark: e.g. a venue's mark price), the engine's book mid, the
mid of the latest QUOTE, the latest trade, the latest fill. With a mid (half a tick possible) the
unrealised P&L is trunc((Q x (bid + ask) - 2C) / 2).

Fees (FILL aux1, fee asset id in the continuation's p1; fee asset 0 means the instrument's quote asset at
its price precision): kept at 18 decimals; a fee in the quote asset counts as is, one in the base asset is
converted at the fill price (truncated), one in any other asset (e.g. BNB) is valued in account currency
with that asset's rate at the time of the fill.

Balances per (market, asset) at 18 decimals, moved by every fill (from the ALL position): spot fills move
base in and quote out by the notional; option / equity fills move the quote by the premium; perpetual /
future fills move the quote (margin) asset by the realised P&L; every fee leaves its asset. Balances
start at 0: set_balance() (reconciliation) gives them the venue's values.

Account currency: each asset has a rate (default 1.0) that values one unit of it; equity(owner) =
sum over the owner's instruments of (realised + unrealised) x multiplier x rate(quote) - fees, as a
float (this is what the daily loss limit and the drawdown breaker watch).
"""
cimport cython
from cpython.ref cimport PyObject
from libc.stdint cimport int64_t, uint32_t, int32_t, uint8_t
from libc.stdlib cimport calloc, realloc, free, malloc
from libc.string cimport memset, memcpy

import decimal as _decimal
from fractions import Fraction

import numpy as np
cimport numpy as cnp

from extrema._core.types cimport Record, KIND_FILL, FLAG_ASK, CONT_MASK, CONT_SHIFT
from extrema._core.ex_money cimport ex_i128, ex_mul64, ex_scale10, ex_muldiv_trunc, ex_i128_to_f64
from extrema._core.orders cimport OWNER_ALL, OWNER_EXTERNAL, N_OWNERS, MAX_STRATEGY_OWNERS
from extrema._core.book cimport OrderBook
from extrema._core.records cimport as_record_array, record_data
from extrema._core.instruments import asset_id as _process_asset_id, asset_code as _process_asset_code

cnp.import_array()

METHODS = {"fifo": METHOD_FIFO, "lifo": METHOD_LIFO, "average": METHOD_AVERAGE}
EXTERNAL = OWNER_EXTERNAL
ALL = OWNER_ALL

POSITION_DTYPE = np.dtype([
    ("owner", "<i4"), ("instrument_id", "<u4"), ("quantity_raw", "<i8"), ("quantity", "<f8"),
    ("avg_price", "<f8"), ("mark", "<f8"), ("realized", "<f8"), ("unrealized", "<f8"), ("fees", "<f8"),
    ("fees_other", "<f8"), ("net", "<f8"), ("bought", "<f8"), ("sold", "<f8"), ("fills", "<i8")])

DEFAULT_ASSET_PRECISION = 8


def _exact_decimal(value, int exponent):
    """The int `value` x 10**-exponent as an exact Decimal (no context rounding)."""
    value = int(value)
    sign = 1 if value < 0 else 0
    digits = tuple(int(c) for c in str(abs(value)))
    return _decimal.Decimal((sign, digits, -exponent))


cdef class AssetRegistry:
    """The assets (BTC, USDT, BNB...) a portfolio holds amounts of, each with the precision its raw
    amounts use. Ids are the process-wide asset ids (extrema.asset_id) the decoders write into FILL
    and BALANCE records, so a record's fee asset id means the same asset here; 0 in a FILL's fee asset
    field means "the instrument's quote asset at its price precision". An asset first seen in a record
    takes the decoders' amount precision (8 decimals, Binance's)."""

    def __cinit__(self):
        self._ids = {}
        self._codes = []
        self._cap = 16
        self._precision = <int32_t *>malloc(self._cap * sizeof(int32_t))
        if self._precision == NULL:
            raise MemoryError()
        memset(self._precision, 0xFF, self._cap * sizeof(int32_t))     # -1: not registered here
        self.max_id = 0

    def __dealloc__(self):
        free(self._precision)

    cdef int _reserve(self, int32_t aid) except -1:
        cdef Py_ssize_t cap = self._cap
        cdef int32_t *p
        if aid < cap:
            return 0
        while cap <= aid:
            cap *= 2
        p = <int32_t *>realloc(self._precision, cap * sizeof(int32_t))
        if p == NULL:
            raise MemoryError()
        memset(p + self._cap, 0xFF, (cap - self._cap) * sizeof(int32_t))
        self._precision = p
        self._cap = cap
        return 0

    cdef int32_t id_of(self, str code, int precision) except -1:
        cdef int32_t aid = self._ids.get(code, 0)
        if aid:
            if precision >= 0 and precision != self._precision[aid]:
                raise ValueError(f"asset {code} is registered with precision {self._precision[aid]}, not {precision}")
            return aid
        if not code or not code.isalnum():
            raise ValueError(f"an asset code is letters and digits, got {code!r}")
        if precision < 0:
            precision = DEFAULT_ASSET_PRECISION
        if precision > 18:
            raise ValueError(f"asset precision must be 0..18, got {precision}")
        aid = _process_asset_id(code)
        self._reserve(aid)
        self._precision[aid] = precision
        self._codes.append(code)
        self._ids[code] = aid
        if aid > self.max_id:
            self.max_id = aid
        return aid

    cdef int32_t known(self, int32_t aid) except -1:
        """`aid` registered here (an id the process knows but this registry has not seen is registered
        now, at the decoders' precision); 0 if no asset has that id (ids start at 1)."""
        if 0 < aid < self._cap and self._precision[aid] >= 0:
            return aid
        try:
            code = _process_asset_code(aid)
        except (KeyError, IndexError, ValueError):
            return 0
        return self.id_of(code, -1)

    def register(self, str code, int precision=-1):
        """The id of an asset (registering it, with `precision` decimals, default 8, if new)."""
        return self.id_of(code, precision)

    def code(self, int asset_id):
        if not (0 < asset_id < self._cap and self._precision[asset_id] >= 0):
            raise KeyError(f"no asset with id {asset_id}")
        return _process_asset_code(asset_id)

    def precision(self, int asset_id):
        if not (0 < asset_id < self._cap and self._precision[asset_id] >= 0):
            raise KeyError(f"no asset with id {asset_id}")
        return self._precision[asset_id]

    def get(self, str code):
        """The id of a registered asset, or None."""
        return self._ids.get(code)

    def ids(self):
        """The ids of the registered assets, in registration order."""
        return [self._ids[c] for c in self._codes]

    def __len__(self):
        return len(self._codes)

    def __iter__(self):
        return iter(list(self._codes))


@cython.final
cdef class Portfolio:
    """Positions, P&L and balances (see the module doc).

    Portfolio(registry, method="average", assets=None): `registry` is the engine's InstrumentRegistry
    (instrument ids -> precisions, multiplier, base / quote assets), `assets` an AssetRegistry shared with
    the decoders that write fee asset ids (a new one if None).
    """

    def __cinit__(self, registry, method="average", AssetRegistry assets=None):
        if method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
        self.registry = registry
        self.method = METHODS[method]
        self.assets = assets if assets is not None else AssetRegistry()
        self._books = []
        cdef int o
        for o in range(N_OWNERS):
            self._active_cap[o] = 8
            self._active[o] = <uint32_t *>malloc(8 * sizeof(uint32_t))
            if self._active[o] == NULL:
                raise MemoryError()
        self._grow(16)
        self._grow_assets(16)

    def __dealloc__(self):
        cdef uint32_t i
        cdef int o
        if self._blocks != NULL:
            for i in range(self._n_instruments):
                if self._blocks[i] != NULL:
                    for o in range(N_OWNERS):
                        free(self._blocks[i][o].lots)
                    free(self._blocks[i])
        free(self._blocks)
        free(self._specs)
        for o in range(N_OWNERS):
            free(self._active[o])
        free(self._balances)
        free(self._rates)

    # ---- storage ---------------------------------------------------------------------------------

    cdef int _grow(self, uint32_t iid) except -1:
        cdef uint32_t n = self._n_instruments
        cdef uint32_t new_n = 16 if n == 0 else n
        while new_n <= iid:
            new_n *= 2
        cdef InstrumentSpec *s = <InstrumentSpec *>realloc(self._specs, new_n * sizeof(InstrumentSpec))
        if s == NULL:
            raise MemoryError()
        memset(&s[n], 0, (new_n - n) * sizeof(InstrumentSpec))
        self._specs = s
        cdef Position **b = <Position **>realloc(self._blocks, new_n * sizeof(Position *))
        if b == NULL:
            raise MemoryError()
        memset(&b[n], 0, (new_n - n) * sizeof(Position *))
        self._blocks = b
        self._n_instruments = new_n
        return 0

    cdef int _grow_assets(self, Py_ssize_t n) except -1:
        cdef Py_ssize_t old = self._bal_assets, new_n = 16 if old == 0 else old, m, a
        while new_n < n:
            new_n *= 2
        if new_n == old:
            return 0
        cdef ex_i128 *bal = <ex_i128 *>calloc(MAX_MARKETS * new_n, sizeof(ex_i128))
        cdef double *rates = <double *>malloc(new_n * sizeof(double))
        if bal == NULL or rates == NULL:
            free(bal)
            free(rates)
            raise MemoryError()
        for m in range(MAX_MARKETS):
            for a in range(old):
                bal[m * new_n + a] = self._balances[m * old + a]
        for a in range(new_n):
            rates[a] = self._rates[a] if a < self._rates_n else 1.0
        free(self._balances)
        free(self._rates)
        self._balances = bal
        self._rates = rates
        self._bal_assets = new_n
        self._rates_n = new_n
        return 0

    cdef int ensure_instrument(self, uint32_t iid) except -1:
        """Load an instrument's specification from the registry the first time it is used."""
        cdef InstrumentSpec *s
        if iid == 0:
            raise ValueError("instrument id 0 is 'no instrument'")
        if iid >= self._n_instruments:
            self._grow(iid)
        s = &self._specs[iid]
        if s.loaded:
            return 0
        inst = self.registry[iid]
        mult = _decimal.Decimal(inst.multiplier).normalize()
        exp = mult.as_tuple().exponent
        mp = -exp if exp < 0 else 0
        mult_raw = int(mult.scaleb(mp))
        kind = int(inst.kind)
        market = int(inst.market)
        if not 0 <= market < MAX_MARKETS:
            raise ValueError(f"market {market} out of range")
        s.price_precision = inst.price_precision
        s.size_precision = inst.size_precision
        s.mult_precision = mp
        s.multiplier_raw = mult_raw
        s.tick = inst.tick_raw
        s.lot = inst.lot_raw
        s.min_notional = inst.min_notional_raw
        s.market = market
        s.cash_kind = CASH_SPOT if kind == 0 else (CASH_MARGIN if kind in (1, 2) else CASH_PREMIUM)
        base = inst.base
        quote = inst.quote if inst.quote is not None else "USD"
        s.base_asset = self.assets.id_of(base.replace(".", ""), -1)
        s.quote_asset = self.assets.id_of(quote, -1)
        self._grow_assets(self.assets.max_id + 1)
        s.value_factor = float(Fraction(mult_raw, 10 ** (s.price_precision + s.size_precision + mp)))
        s.loaded = 1
        return 0

    cdef Position *touch(self, uint32_t iid, int owner) except NULL:
        """The position of (instrument, owner), created (and listed as the owner's) on first use."""
        cdef Position *blk
        cdef Position *p
        cdef uint32_t *grown
        self.ensure_instrument(iid)
        blk = self._blocks[iid]
        if blk == NULL:
            blk = <Position *>calloc(N_OWNERS, sizeof(Position))
            if blk == NULL:
                raise MemoryError()
            self._blocks[iid] = blk
        p = &blk[owner]
        if not p.touched:
            if self._active_n[owner] == self._active_cap[owner]:
                grown = <uint32_t *>realloc(self._active[owner], 2 * self._active_cap[owner] * sizeof(uint32_t))
                if grown == NULL:
                    raise MemoryError()
                self._active[owner] = grown
                self._active_cap[owner] *= 2
            self._active[owner][self._active_n[owner]] = iid
            self._active_n[owner] += 1
            p.touched = 1
        return p

    # ---- fills -----------------------------------------------------------------------------------

    cdef int _push_lot(self, Position *p, int64_t price, int64_t qty) except -1:
        cdef Lot *lots
        cdef int32_t i, cap
        if p.lot_n == p.lot_cap:
            cap = 4 if p.lot_cap == 0 else p.lot_cap * 2
            lots = <Lot *>malloc(cap * sizeof(Lot))
            if lots == NULL:
                raise MemoryError()
            for i in range(p.lot_n):
                lots[i] = p.lots[(p.lot_head + i) % p.lot_cap]
            free(p.lots)
            p.lots = lots
            p.lot_cap = cap
            p.lot_head = 0
        p.lots[(p.lot_head + p.lot_n) % p.lot_cap].price = price
        p.lots[(p.lot_head + p.lot_n) % p.lot_cap].qty = qty
        p.lot_n += 1
        return 0

    cdef int _fill_one(self, Position *p, int64_t price, int64_t f, ex_i128 *realized) except -1:
        """Apply a signed fill f (> 0 buy) at price to one position; realized receives the P&L it realised."""
        cdef int64_t q = f if f > 0 else -f
        cdef int64_t held, close_q, take
        cdef int s
        cdef ex_i128 r = 0, removed
        cdef Lot *lot
        if p.qty == 0 or (p.qty > 0) == (f > 0):
            close_q = 0
        else:
            held = p.qty if p.qty > 0 else -p.qty
            close_q = q if q < held else held
            s = 1 if p.qty > 0 else -1
            if self.method == METHOD_AVERAGE:
                removed = ex_muldiv_trunc(p.cost, close_q, held)
                r = s * ex_mul64(price, close_q) - removed
                p.cost -= removed
            else:
                take = close_q
                while take > 0:
                    if self.method == METHOD_FIFO:
                        lot = &p.lots[p.lot_head]
                    else:
                        lot = &p.lots[(p.lot_head + p.lot_n - 1) % p.lot_cap]
                    held = lot.qty if lot.qty < take else take
                    r += s * ex_mul64(price - lot.price, held)
                    p.cost -= s * ex_mul64(lot.price, held)
                    lot.qty -= held
                    take -= held
                    if lot.qty == 0:
                        if self.method == METHOD_FIFO:
                            p.lot_head = (p.lot_head + 1) % p.lot_cap
                        p.lot_n -= 1
            p.qty -= s * close_q
            p.realized += r
        if q > close_q:
            # open (or flip into) the rest at the fill price
            p.qty += (q - close_q) if f > 0 else -(q - close_q)
            p.cost += ex_mul64(price, (q - close_q) if f > 0 else -(q - close_q))
            if self.method != METHOD_AVERAGE:
                self._push_lot(p, price, q - close_q)
        if f > 0:
            p.bought += q
        else:
            p.sold += q
        p.n_fills += 1
        p.last_price = price
        realized[0] = r
        return 0

    cdef ex_i128 _to_money(self, const InstrumentSpec *s, ex_i128 native) noexcept nogil:
        """A native (pp + sp decimals) amount in quote units at 18 decimals, multiplier applied."""
        return ex_scale10(native * s.multiplier_raw,
                          MONEY_PRECISION - s.price_precision - s.size_precision - s.mult_precision)

    cdef int apply_fill(self, int owner, uint32_t iid, int side, int64_t price, int64_t qty, int64_t fee,
                        int32_t fee_asset, int64_t ts) except -1:
        """Apply one fill to the owner's position, the ALL position, the venue's balances and fees."""
        cdef InstrumentSpec *s
        cdef Position *po
        cdef Position *pa
        cdef int64_t f
        cdef ex_i128 r_own, r_all, fee_m18 = 0, fee_q = 0
        cdef double fee_other = 0.0
        cdef int32_t asset
        cdef int fp
        cdef ex_i128 *bal
        if qty <= 0:
            raise ValueError(f"a fill size must be > 0, got {qty}")
        if not 0 <= owner < OWNER_ALL:
            raise ValueError(f"owner must be 0..{OWNER_ALL - 1}, got {owner}")
        if side != 0 and side != 1:
            raise ValueError(f"side must be 0 (buy) or 1 (sell), got {side}")
        po = self.touch(iid, owner)
        pa = self.touch(iid, OWNER_ALL)
        s = &self._specs[iid]
        if fee != 0:
            if fee_asset == 0:
                asset = s.quote_asset
                fp = s.price_precision
            else:
                asset = self.assets.known(fee_asset)
                if asset == 0:
                    raise ValueError(f"unknown fee asset id {fee_asset}")
                fp = self.assets.precision_of(asset)
                self._grow_assets(self.assets.max_id + 1)
            fee_m18 = ex_scale10(fee, MONEY_PRECISION - fp)
            if asset == s.quote_asset:
                fee_q = fee_m18
            elif asset == s.base_asset:
                fee_q = ex_scale10(fee_m18 * price, -s.price_precision)
            else:
                fee_other = (<double>fee_m18) / 1e18 * self.rate(asset)
        f = qty if side == 0 else -qty
        self._fill_one(po, price, f, &r_own)
        self._fill_one(pa, price, f, &r_all)
        po.fees_quote += fee_q
        pa.fees_quote += fee_q
        po.fees_other += fee_other
        pa.fees_other += fee_other
        po.ts_last = ts
        pa.ts_last = ts
        s.last_fill2 = 2 * price
        # venue balances, from the venue-wide position
        bal = &self._balances[s.market * self._bal_assets]
        if s.cash_kind == CASH_SPOT:
            bal[s.base_asset] += ex_scale10(<ex_i128>f, MONEY_PRECISION - s.size_precision)
            bal[s.quote_asset] -= self._to_money(s, ex_mul64(price, f))
        elif s.cash_kind == CASH_PREMIUM:
            bal[s.quote_asset] -= self._to_money(s, ex_mul64(price, f))
        else:
            bal[s.quote_asset] += self._to_money(s, r_all)
        if fee != 0:
            bal[asset] -= fee_m18
        self.fills_applied += 1
        return 0

    cdef int apply_fill_record(self, const Record *r, int owner) except -1:
        """apply_fill from a FILL record (head r[0], continuation r[1])."""
        return self.apply_fill(owner, r.instrument_id, 1 if r.flags & FLAG_ASK else 0, r.price, r.quantity,
                               r.aux1, <int32_t>r[1].ts_local, r.ts_exchange)

    # ---- marks and equity --------------------------------------------------------------------------

    cdef bint mark2(self, uint32_t iid, int64_t *out) noexcept:
        """Twice the mark price of an instrument (see the module doc for the priority); False if none."""
        cdef InstrumentSpec *s
        if iid >= self._n_instruments:
            return False
        s = &self._specs[iid]
        if not self._mark_caching:
            return self._mark2(s, out)
        if s.cache_epoch != self._mark_epoch:
            s.cache_ok = self._mark2(s, &s.cache_m2)
            s.cache_epoch = self._mark_epoch
        out[0] = s.cache_m2
        return s.cache_ok

    cdef bint _mark2(self, InstrumentSpec *s, int64_t *out) noexcept:
        cdef OrderBook book
        if s.mark2 != 0:
            out[0] = s.mark2
            return True
        if s.book != NULL:
            book = <OrderBook>s.book
            if book.has_best(0) and book.has_best(1):
                out[0] = book.best_price_raw(0) + book.best_price_raw(1)
                return True
        if s.quote_mid2 != 0:
            out[0] = s.quote_mid2
        elif s.last_trade2 != 0:
            out[0] = s.last_trade2
        elif s.last_fill2 != 0:
            out[0] = s.last_fill2
        else:
            return False
        return True

    cdef ex_i128 unrealized(self, const Position *p, int64_t mark2) noexcept nogil:
        """Unrealised P&L of a position at a mark (x2), native decimals, truncated toward zero."""
        return (ex_mul64(p.qty, mark2) - 2 * p.cost) / 2

    cdef double equity_of(self, int owner) noexcept:
        """Realised + unrealised P&L - fees of an owner, in account currency (see the module doc)."""
        cdef double total = 0.0, rq
        cdef Py_ssize_t k
        cdef uint32_t iid
        cdef Position *p
        cdef InstrumentSpec *s
        cdef ex_i128 pnl
        cdef int64_t m2
        for k in range(self._active_n[owner]):
            iid = self._active[owner][k]
            p = &self._blocks[iid][owner]
            s = &self._specs[iid]
            pnl = p.realized
            if p.qty != 0 and self.mark2(iid, &m2):
                pnl += self.unrealized(p, m2)
            rq = self.rate(s.quote_asset)
            total += (<double>pnl) * s.value_factor * rq - (<double>p.fees_quote) / 1e18 * rq - p.fees_other
        return total

    # ---- Python API ------------------------------------------------------------------------------

    def fill(self, int owner, uint32_t instrument_id, side, int64_t price_raw, int64_t quantity_raw,
             int64_t fee_raw=0, int fee_asset=0, int64_t ts=0):
        """Apply one fill (side 0 / "buy", 1 / "sell")."""
        self.apply_fill(owner, instrument_id, _side(side), price_raw, quantity_raw, fee_raw, fee_asset, ts)

    def apply(self, records):
        """Apply every FILL record of a RECORD_DTYPE array, each to the owner its client order id names
        (no order table, no duplicate check: ExecutionCore is the engine's path). Returns how many."""
        cdef cnp.ndarray arr = as_record_array(records, "Portfolio.apply")
        cdef const Record *recs = record_data(arr)
        cdef Py_ssize_t n = cnp.PyArray_DIM(arr, 0), i = 0, done = 0
        cdef int64_t coid
        while i < n:
            if recs[i].kind == KIND_FILL:
                if i + 1 >= n or (recs[i].flags & CONT_MASK) >> CONT_SHIFT < 1:
                    raise ValueError(f"record {i}: a FILL needs its continuation slot")
                coid = recs[i].aux0
                self.apply_fill_record(&recs[i], <int>(coid & 63) if 0 < coid < (1 << 62) else OWNER_EXTERNAL)
                done += 1
                i += 1 + ((recs[i].flags & CONT_MASK) >> CONT_SHIFT)
            else:
                i += 1
        return done

    def set_book(self, uint32_t instrument_id, OrderBook book):
        """Mark an instrument from this (the engine's live) book; None stops it."""
        self.ensure_instrument(instrument_id)
        self._specs[instrument_id].book = <PyObject *>book if book is not None else NULL
        if book is not None:
            self._books.append(book)

    def set_mark(self, uint32_t instrument_id, int64_t price_raw):
        """An explicit mark price (raw), ahead of the book (e.g. a venue's mark price); 0 clears it."""
        self.ensure_instrument(instrument_id)
        self._specs[instrument_id].mark2 = 2 * price_raw

    def on_trade(self, uint32_t instrument_id, int64_t price_raw):
        self.ensure_instrument(instrument_id)
        self._specs[instrument_id].last_trade2 = 2 * price_raw

    def on_quote(self, uint32_t instrument_id, int64_t bid_raw, int64_t ask_raw):
        self.ensure_instrument(instrument_id)
        self._specs[instrument_id].quote_mid2 = bid_raw + ask_raw if bid_raw > 0 and ask_raw > 0 else 0

    def mark(self, uint32_t instrument_id):
        """The mark price (float) used for unrealised P&L, NaN if there is none."""
        cdef int64_t m2
        if instrument_id >= self._n_instruments or not self._specs[instrument_id].loaded:
            return float("nan")
        if not self.mark2(instrument_id, &m2):
            return float("nan")
        return ex_i128_to_f64(m2, self._specs[instrument_id].price_precision) / 2

    def set_rate(self, str asset, rate):
        """Value of one unit of `asset` in account currency (default 1.0 for every asset)."""
        cdef int32_t aid = self.assets.id_of(asset, -1)
        self._grow_assets(aid + 1)
        self._rates[aid] = float(rate)

    def set_balance(self, market, str asset, amount):
        """Set a venue balance (a decimal: str / Decimal / int), e.g. from a reconciliation snapshot."""
        cdef int m = int(market)
        cdef int32_t aid = self.assets.id_of(asset, -1)
        if not 0 <= m < MAX_MARKETS:
            raise ValueError(f"market {market} out of range")
        self._grow_assets(aid + 1)
        d = _decimal.Decimal(str(amount))
        if not d.is_finite():
            raise ValueError(f"a balance must be finite, got {amount!r}")
        scaled = d.scaleb(MONEY_PRECISION)
        if scaled != scaled.to_integral_value():
            raise ValueError(f"balance {amount} has more than {MONEY_PRECISION} decimals")
        self._balances[m * self._bal_assets + aid] = <ex_i128>int(scaled)

    def balance(self, market, str asset):
        """A venue balance as an exact Decimal (0 if never touched)."""
        cdef int m = int(market)
        aid = self.assets.get(asset)
        if aid is None or aid >= self._bal_assets:
            return _decimal.Decimal(0)
        return _exact_decimal(<object>self._balances[m * self._bal_assets + aid], MONEY_PRECISION)

    def balances(self):
        """{(Market, asset code): Decimal} of every nonzero balance."""
        from extrema._core.instruments import Market
        out = {}
        cdef Py_ssize_t m, a
        for m in range(MAX_MARKETS):
            for a in self.assets.ids():
                if a < self._bal_assets and self._balances[m * self._bal_assets + a] != 0:
                    out[(Market(m), self.assets.code(a))] = _exact_decimal(
                        <object>self._balances[m * self._bal_assets + a], MONEY_PRECISION)
        return out

    def equity(self, int owner=OWNER_ALL):
        """Realised + unrealised P&L - fees of an owner, in account currency (float)."""
        if not 0 <= owner < N_OWNERS:
            raise ValueError(f"owner must be 0..{N_OWNERS - 1}, got {owner}")
        return self.equity_of(owner)

    def position(self, int owner, uint32_t instrument_id):
        """One position as a dict (exact Decimals for sizes and P&L), or None if it was never touched."""
        if not 0 <= owner < N_OWNERS:
            raise ValueError(f"owner must be 0..{N_OWNERS - 1}, got {owner}")
        cdef Position *p = self.position_ptr(instrument_id, owner)
        if p == NULL or not p.touched:
            return None
        return self._position_dict(owner, instrument_id)

    cdef object _position_dict(self, int owner, uint32_t iid):
        cdef Position *p = &self._blocks[iid][owner]
        cdef InstrumentSpec *s = &self._specs[iid]
        cdef int64_t m2
        cdef bint has_mark = self.mark2(iid, &m2)
        cdef ex_i128 u = self.unrealized(p, m2) if has_mark else 0
        cdef int e = s.price_precision + s.size_precision + s.mult_precision
        cdef int32_t k
        realized = _exact_decimal(<object>(p.realized * s.multiplier_raw), e)
        unrealized = _exact_decimal(<object>(u * s.multiplier_raw), e)
        fees = _exact_decimal(<object>p.fees_quote, MONEY_PRECISION)
        lots = [(p.lots[(p.lot_head + k) % p.lot_cap].price, p.lots[(p.lot_head + k) % p.lot_cap].qty)
                for k in range(p.lot_n)]
        return {
            "owner": owner, "instrument_id": iid, "quantity_raw": p.qty,
            "quantity": _exact_decimal(p.qty, s.size_precision),
            "cost_raw": <object>p.cost, "realized_raw": <object>p.realized, "unrealized_raw": <object>u,
            "fees_raw": <object>p.fees_quote,
            "avg_price": (float(Fraction(<object>p.cost, p.qty) / 10 ** s.price_precision) if p.qty else 0.0),
            "mark": ex_i128_to_f64(m2, s.price_precision) / 2 if has_mark else float("nan"),
            "realized": realized, "unrealized": unrealized, "fees": fees, "fees_other": p.fees_other,
            "net": realized + unrealized - fees,
            "bought": _exact_decimal(p.bought, s.size_precision), "sold": _exact_decimal(p.sold, s.size_precision),
            "fills": p.n_fills, "lots": lots, "ts_last": p.ts_last}

    def positions(self, owner=None):
        """Every touched position (of one owner, or all owners including ALL) as a POSITION_DTYPE array:
        floats in the instrument's quote currency."""
        cdef int o
        cdef Py_ssize_t k
        rows = []
        owners = range(N_OWNERS) if owner is None else [owner]
        for o in owners:
            for k in range(self._active_n[o]):
                d = self._position_dict(o, self._active[o][k])
                rows.append((o, d["instrument_id"], d["quantity_raw"], float(d["quantity"]), d["avg_price"], d["mark"],
                             float(d["realized"]), float(d["unrealized"]), float(d["fees"]), d["fees_other"],
                             float(d["net"]), float(d["bought"]), float(d["sold"]), d["fills"]))
        return np.array(rows, dtype=POSITION_DTYPE)

    def snapshot(self, names=None):
        """{"positions": {owner name: {instrument name: position dict}}, "balances": ..., "equity": ...}.
        `names` maps owner index -> strategy name (EXTERNAL / ALL are named "external" / "all")."""
        cdef int o
        cdef Py_ssize_t k
        names = dict(names or {})
        names.setdefault(OWNER_EXTERNAL, "external")
        names.setdefault(OWNER_ALL, "all")
        positions = {}
        equity = {}
        for o in range(N_OWNERS):
            if self._active_n[o] == 0:
                continue
            who = names.get(o, o)
            positions[who] = {}
            for k in range(self._active_n[o]):
                iid = self._active[o][k]
                positions[who][self.registry[iid].name] = self._position_dict(o, iid)
            equity[who] = self.equity_of(o)
        return {"positions": positions, "equity": equity,
                "balances": {f"{m.name}:{a}": v for (m, a), v in self.balances().items()}}

    def active_instruments(self, int owner):
        cdef Py_ssize_t k
        return [self._active[owner][k] for k in range(self._active_n[owner])]

    def __repr__(self):
        return f"<Portfolio {[k for k, v in METHODS.items() if v == self.method][0]}, {self.fills_applied} fills>"


cdef int _side(object side) except -1:
    if side == 0 or side == "buy":
        return 0
    if side == 1 or side == "sell":
        return 1
    raise ValueError(f"side must be 0 / 'buy' or 1 / 'sell', got {side!r}")
