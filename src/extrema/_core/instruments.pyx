"""Instruments: normalised names, venues, and the registry that gives each instrument a small int id.

Normalised names (every name extrema returns has this form; parse_name / format_name round-trip):

    spot            BASE_QUOTE                          BTC_USDT
    perpetual       BASE_QUOTE_PERP                     BTC_USDT_PERP
    dated future    BASE_QUOTE_FUT_YYYYMMDD             BTC_USDT_FUT_20261225
    option          BASE_QUOTE_OPT_YYYYMMDD_STRIKE_C|P  BTC_USD_OPT_20261225_100000_C
    equity          SYMBOL_EXCHANGE_EQ                  AAPL_NASDAQ_EQ

Asset codes and exchange codes are letters and digits (case kept: Hyperliquid's `kPEPE` is not
`KPEPE`); an equity symbol may also contain '.' (`BRK.B_NYSE_EQ`). A strike is a plain decimal with no
exponent, no leading zeros and no trailing fractional zeros (`0.5`, `100000`), so each instrument has
exactly one name. The words PERP, FUT, OPT and EQ are reserved and cannot be asset codes.
"""
import datetime as _dt
import decimal as _pydecimal
import enum
import re
import threading

from libc.stdint cimport int64_t, uint32_t
from extrema._core.fixedpoint cimport value_to_raw


class Market(enum.IntEnum):
    """A venue (and, where a venue runs several engines with different rules, the engine)."""
    SIM = 0
    BINANCE_SPOT = 1
    BINANCE_USDM = 2
    BINANCE_COINM = 3
    OKX = 4
    BYBIT = 5
    HYPERLIQUID = 6
    DERIBIT = 7
    COINBASE = 8
    POLYMARKET = 9


class InstrumentKind(enum.IntEnum):
    SPOT = 0
    PERPETUAL = 1
    FUTURE = 2
    OPTION = 3
    EQUITY = 4


class UnknownInstrumentError(KeyError):
    """The registry has no instrument by that id, name or venue symbol."""

    def __str__(self):
        return str(self.args[0]) if self.args else "unknown instrument"


_RESERVED = frozenset({"PERP", "FUT", "OPT", "EQ"})
_CODE = re.compile(r"[A-Za-z0-9]+\Z")
_EQ_SYMBOL = re.compile(r"[A-Za-z0-9]+(?:\.[A-Za-z0-9]+)*\Z")
_STRIKE = re.compile(r"(?:0|[1-9][0-9]*)(?:\.[0-9]*[1-9])?\Z")
_DATE = re.compile(r"[0-9]{8}\Z")
_FORMS = ("BTC_USDT, BTC_USDT_PERP, BTC_USDT_FUT_20261225, BTC_USD_OPT_20261225_100000_C "
          "or AAPL_NASDAQ_EQ")


class InstrumentName:
    """The parts of a normalised instrument name. str() gives the name; parse_name() builds one."""

    __slots__ = ("kind", "base", "quote", "expiry", "strike", "right", "exchange")

    def __init__(self, kind, base, quote=None, *, expiry=None, strike=None, right=None, exchange=None):
        self.kind = InstrumentKind(kind)
        self.base = base
        self.quote = quote
        self.expiry = expiry
        self.strike = None if strike is None else _pydecimal.Decimal(strike)
        self.right = right
        self.exchange = exchange
        _validate(self)

    def __str__(self):
        return format_name(self)

    def __repr__(self):
        return f"InstrumentName({format_name(self)!r})"

    def __eq__(self, other):
        if not isinstance(other, InstrumentName):
            return NotImplemented
        return all(getattr(self, f) == getattr(other, f) for f in self.__slots__)

    def __hash__(self):
        return hash(tuple(getattr(self, f) for f in self.__slots__))


def _bad(name, why):
    return ValueError(f"instrument name {name!r} does not parse: {why}; expected a form like {_FORMS}")


def _check_code(name, what, code, pattern=_CODE):
    if not isinstance(code, str) or not pattern.match(code):
        raise _bad(name, f"{what} {code!r} must be letters and digits")
    if code in _RESERVED:
        raise _bad(name, f"{what} {code!r} is a reserved word")


def _validate(p):
    name = f"<{p.kind.name}>"
    kind = p.kind
    if kind == InstrumentKind.EQUITY:
        _check_code(name, "equity symbol", p.base, _EQ_SYMBOL)
        _check_code(name, "exchange", p.exchange)
        if p.quote is not None or p.expiry is not None or p.strike is not None or p.right is not None:
            raise _bad(name, "an equity has only a symbol and an exchange")
        return
    _check_code(name, "base asset", p.base)
    _check_code(name, "quote asset", p.quote)
    if p.exchange is not None:
        raise _bad(name, "only equities name an exchange")
    if kind in (InstrumentKind.FUTURE, InstrumentKind.OPTION):
        if not isinstance(p.expiry, _dt.date):
            raise _bad(name, "a future or option needs an expiry date")
    elif p.expiry is not None:
        raise _bad(name, "only futures and options expire")
    if kind == InstrumentKind.OPTION:
        if p.strike is None or not p.strike.is_finite() or p.strike < 0 or not _STRIKE.match(_strike_text(p.strike)):
            raise _bad(name, f"option strike {p.strike!r} must be a non-negative decimal")
        if p.right not in ("C", "P"):
            raise _bad(name, f"option right {p.right!r} must be 'C' or 'P'")
    elif p.strike is not None or p.right is not None:
        raise _bad(name, "only options have a strike and a right")


def _strike_text(strike):
    # Plain notation, no exponent, no trailing fractional zeros: Decimal('1E+5') -> '100000'.
    text = format(strike, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _parse_date(name, text):
    if not _DATE.match(text):
        raise _bad(name, f"expiry {text!r} must be YYYYMMDD")
    try:
        return _dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as e:
        raise _bad(name, f"expiry {text!r} is not a date ({e})") from None


def parse_name(str name):
    """Parse a normalised instrument name into its parts; ValueError saying what is wrong otherwise."""
    parts = name.split("_")
    n = len(parts)
    if n == 3 and parts[2] == "EQ":
        _check_code(name, "equity symbol", parts[0], _EQ_SYMBOL)
        _check_code(name, "exchange", parts[1])
        return InstrumentName(InstrumentKind.EQUITY, parts[0], exchange=parts[1])
    if n < 2:
        raise _bad(name, "too few parts separated by '_'")
    _check_code(name, "base asset", parts[0])
    _check_code(name, "quote asset", parts[1])
    base, quote = parts[0], parts[1]
    if n == 2:
        return InstrumentName(InstrumentKind.SPOT, base, quote)
    tag = parts[2]
    if tag == "PERP" and n == 3:
        return InstrumentName(InstrumentKind.PERPETUAL, base, quote)
    if tag == "FUT" and n == 4:
        return InstrumentName(InstrumentKind.FUTURE, base, quote, expiry=_parse_date(name, parts[3]))
    if tag == "OPT" and n == 6:
        if not _STRIKE.match(parts[4]):
            raise _bad(name, f"strike {parts[4]!r} must be a plain decimal like 100000 or 0.5")
        if parts[5] not in ("C", "P"):
            raise _bad(name, f"option right {parts[5]!r} must be C or P")
        return InstrumentName(InstrumentKind.OPTION, base, quote, expiry=_parse_date(name, parts[3]),
                              strike=_pydecimal.Decimal(parts[4]), right=parts[5])
    if tag in ("PERP", "FUT", "OPT", "EQ"):
        raise _bad(name, f"wrong number of parts for {tag}")
    raise _bad(name, f"unknown instrument type {tag!r}")


def format_name(parts):
    """The normalised name of an InstrumentName."""
    cdef object k = parts.kind
    if k == InstrumentKind.EQUITY:
        return f"{parts.base}_{parts.exchange}_EQ"
    if k == InstrumentKind.SPOT:
        return f"{parts.base}_{parts.quote}"
    if k == InstrumentKind.PERPETUAL:
        return f"{parts.base}_{parts.quote}_PERP"
    if k == InstrumentKind.FUTURE:
        return f"{parts.base}_{parts.quote}_FUT_{parts.expiry:%Y%m%d}"
    return f"{parts.base}_{parts.quote}_OPT_{parts.expiry:%Y%m%d}_{_strike_text(parts.strike)}_{parts.right}"


def _decimals(value):
    """Number of decimals needed to write a positive decimal exactly (Decimal('0.010') -> 2)."""
    d = _pydecimal.Decimal(str(value)).normalize()
    exp = d.as_tuple().exponent
    return max(0, -exp)


def _positive_decimal(what, value):
    try:
        d = _pydecimal.Decimal(str(value))
    except _pydecimal.InvalidOperation:
        raise ValueError(f"{what} {value!r} is not a decimal number") from None
    if not d.is_finite() or d <= 0:
        raise ValueError(f"{what} must be a positive decimal, got {value!r}")
    return d


cdef class Instrument:
    """A tradable instrument on one venue, with its exact price and size grid.

    Created by InstrumentRegistry.register (which assigns `id`). Prices are int64 raw values at
    `price_precision` decimals, sizes at `size_precision`; `tick_raw` / `lot_raw` are the tick and lot
    sizes in those raw units, and `min_notional_raw` is the minimum order value in raw price units.
    """

    def __init__(self, str name, market, tick_size, lot_size, *, min_notional="0", multiplier="1",
                 venue_symbol=None, price_precision=None, size_precision=None, uint32_t id=0):
        cdef object tick = _positive_decimal("tick_size", tick_size)
        cdef object lot = _positive_decimal("lot_size", lot_size)
        cdef object mult = _positive_decimal("multiplier", multiplier)
        self.parts = parse_name(name)
        self.name = name
        self.market = Market(market)
        self.id = id
        self.venue_symbol = venue_symbol if venue_symbol is not None else name
        self.price_precision = _decimals(tick) if price_precision is None else price_precision
        self.size_precision = _decimals(lot) if size_precision is None else size_precision
        if self.price_precision < _decimals(tick):
            raise ValueError(f"{name}: price_precision {price_precision} cannot represent tick_size {tick}")
        if self.size_precision < _decimals(lot):
            raise ValueError(f"{name}: size_precision {size_precision} cannot represent lot_size {lot}")
        self.tick_raw = value_to_raw(str(tick), self.price_precision, False)
        self.lot_raw = value_to_raw(str(lot), self.size_precision, False)
        self.min_notional_raw = value_to_raw(str(min_notional), self.price_precision, False)
        self.multiplier = mult

    @property
    def kind(self):
        return self.parts.kind

    @property
    def base(self):
        return self.parts.base

    @property
    def quote(self):
        return self.parts.quote

    @property
    def tick_size(self):
        """Tick size as an exact Decimal."""
        return _pydecimal.Decimal(self.tick_raw).scaleb(-self.price_precision)

    @property
    def lot_size(self):
        """Lot size as an exact Decimal."""
        return _pydecimal.Decimal(self.lot_raw).scaleb(-self.size_precision)

    @property
    def min_notional(self):
        """Minimum order value (price x size) as an exact Decimal."""
        return _pydecimal.Decimal(self.min_notional_raw).scaleb(-self.price_precision)

    cdef dict _spec(self):
        return {"tick_size": self.tick_size, "lot_size": self.lot_size, "min_notional": self.min_notional,
                "multiplier": self.multiplier, "venue_symbol": self.venue_symbol,
                "price_precision": self.price_precision, "size_precision": self.size_precision}

    def __reduce__(self):
        return (_rebuild_instrument, (self.name, int(self.market), self.id, self._spec()))

    def __eq__(self, other):
        if not isinstance(other, Instrument):
            return NotImplemented
        cdef Instrument o = other
        return (self.name == o.name and self.market == o.market and self.id == o.id
                and self._spec() == o._spec())

    def __hash__(self):
        return hash((self.name, int(self.market), self.id))

    def __repr__(self):
        return (f"Instrument({self.name!r}, {self.market.name}, id={self.id}, tick={self.tick_size}, "
                f"lot={self.lot_size}, min_notional={self.min_notional}, multiplier={self.multiplier}, "
                f"venue_symbol={self.venue_symbol!r})")


def _rebuild_instrument(name, market, id, spec):
    return Instrument(name, market, spec.pop("tick_size"), spec.pop("lot_size"), id=id, **spec)


cdef class InstrumentRegistry:
    """Instruments by small int id (from 1; 0 means none), by (market, name) and by (market, venue symbol).

    Registering the same instrument twice returns the first one; registering a different specification
    under a name already taken is an error (change a specification with replace=True, which keeps the id).
    `version` counts the registrations that changed the registry (compiled symbol caches watch it).
    """

    def __init__(self):
        self._by_id = [None]               # index = id; slot 0 is "no instrument"
        self._by_name = {}
        self._by_plain_name = {}           # name -> [instrument, ...] (one per market that has it)
        self._by_symbol = {}
        self._lock = threading.Lock()

    def register(self, str name, market, tick_size, lot_size, *, bint replace=False, **spec):
        """Create (or return the identical existing) instrument; see Instrument for the fields."""
        market = Market(market)
        with self._lock:
            existing = self._by_name.get((market, name))
            new_id = existing.id if existing is not None else len(self._by_id)
            if new_id > 0xFFFFFFFF:
                raise OverflowError("instrument ids are exhausted (uint32)")
            inst = Instrument(name, market, tick_size, lot_size, id=new_id, **spec)
            if existing is not None:
                if existing == inst:
                    return existing
                if not replace:
                    raise ValueError(f"{name} on {market.name} is already registered with a different "
                                     f"specification: {existing!r}; pass replace=True to change it")
                del self._by_symbol[(market, existing.venue_symbol)]
                self._by_id[new_id] = inst
            else:
                if (market, inst.venue_symbol) in self._by_symbol:
                    raise ValueError(f"venue symbol {inst.venue_symbol!r} on {market.name} already belongs "
                                     f"to {self._by_symbol[(market, inst.venue_symbol)].name}")
                self._by_id.append(inst)
            self._by_name[(market, name)] = inst
            self._by_symbol[(market, inst.venue_symbol)] = inst
            same = self._by_plain_name.setdefault(name, [])
            if existing is not None:
                same.remove(existing)
            same.append(inst)
            self.version += 1
            return inst

    def __getitem__(self, id):
        """The instrument with this id."""
        if isinstance(id, bool) or not isinstance(id, int) or not 0 < id < len(self._by_id):
            raise UnknownInstrumentError(f"no instrument with id {id!r} (registered ids are 1..{len(self._by_id) - 1})")
        return self._by_id[id]

    def get(self, market, str name):
        """The instrument named `name` (normalised) on `market`."""
        try:
            return self._by_name[(Market(market), name)]
        except KeyError:
            parse_name(name)     # a malformed name gets the parser's explanation
            raise UnknownInstrumentError(f"no instrument {name!r} on {Market(market).name}") from None

    def find(self, name, market=None):
        """The instrument called `name` (normalised) on `market`, or on whichever market has it when
        `market` is None; UnknownInstrumentError when none or several do (then `market` must say which)."""
        if market is not None:
            return self.get(market, name)
        found = self._by_plain_name.get(name) if isinstance(name, str) else None
        if found is not None and len(found) == 1:
            return found[0]
        if not found:
            raise UnknownInstrumentError(f"no instrument {name!r} is registered")
        raise UnknownInstrumentError(f"{name!r} trades on several markets "
                                     f"({', '.join(i.market.name for i in found)}): say which with market=")

    def by_venue_symbol(self, market, str symbol):
        """The instrument the venue calls `symbol` (e.g. 'BTCUSDT' on BINANCE_SPOT)."""
        try:
            return self._by_symbol[(Market(market), symbol)]
        except KeyError:
            raise UnknownInstrumentError(
                f"no instrument with venue symbol {symbol!r} on {Market(market).name}") from None

    def __contains__(self, key):
        if isinstance(key, Instrument):
            return self._by_name.get((key.market, key.name)) is key
        return isinstance(key, int) and not isinstance(key, bool) and 0 < key < len(self._by_id)

    def __len__(self):
        return len(self._by_id) - 1

    def __iter__(self):
        return iter(self._by_id[1:])

    def __repr__(self):
        return f"<InstrumentRegistry {len(self)} instruments>"


# ------------------------------------------------------------------------------------------- assets

# Assets (currencies, coins) get small int ids, process-wide, so the same code has the same id in every
# record whatever venue decoder produced it (BALANCE sequence, FILL fee asset). Id 0 means "none".
_asset_lock = threading.Lock()
_asset_ids = {}
_asset_codes = [None]


def asset_id(str code):
    """The id of asset `code` ("USDT"), assigned on first use (from 1)."""
    try:
        return _asset_ids[code]
    except KeyError:
        pass
    if not code or len(code) > 32 or not code.isprintable():
        raise ValueError(f"an asset code is 1..32 printable characters, got {code!r}")
    with _asset_lock:
        found = _asset_ids.get(code)
        if found is None:
            found = len(_asset_codes)
            _asset_codes.append(code)
            _asset_ids[code] = found
        return found


def asset_code(id):
    """The code of the asset with this id (asset_id's inverse)."""
    if isinstance(id, bool) or not isinstance(id, int) or not 0 < id < len(_asset_codes):
        raise KeyError(f"no asset with id {id!r}")
    return _asset_codes[id]
