"""Binance symbols <-> normalised instrument names, and instrument registration from exchangeInfo.

    spot                         BTCUSDT          <-> BTC_USDT
    USD-M perpetual              BTCUSDT          <-> BTC_USDT_PERP
    USD-M delivery (quarterly)   BTCUSDT_231229   <-> BTC_USDT_FUT_20231229

Base and quote come from exchangeInfo's `baseAsset` / `quoteAsset`, the kind from `contractType` and the
expiry from `deliveryDate` (UTC). Without exchangeInfo, `guess_name` splits a symbol on a known quote
asset - a fallback for logs and captures only; `name_for_symbol` with a registry (filled from
exchangeInfo) is the authoritative way back from a venue symbol.

Grid (https://developers.binance.com/docs/binance-spot-api-docs/filters,
https://developers.binance.com/docs/derivatives/usds-margined-futures/common-definition):
tick = PRICE_FILTER.tickSize, lot = LOT_SIZE.stepSize, min notional = spot NOTIONAL.minNotional (or the
older MIN_NOTIONAL.minNotional), USD-M MIN_NOTIONAL.notional. MARKET_LOT_SIZE applies to market orders
only and may be disabled (stepSize 0); it is kept in SymbolRules, not used for the instrument's lot.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import re
from decimal import Decimal, InvalidOperation
from typing import List, Optional, Tuple

from extrema._core.instruments import InstrumentKind, InstrumentName, Market, format_name, parse_name

__all__ = ["SymbolRules", "SkippedSymbol", "name_from_symbol_info", "venue_symbol_for_name", "guess_name",
           "name_for_symbol", "parse_exchange_info", "register_exchange_info", "strip_decimal"]

log = logging.getLogger("extrema.adapters.binance.symbols")

# USD-M contractType values (https://developers.binance.com/docs/derivatives/usds-margined-futures/common-definition).
_PERPETUAL_TYPES = frozenset({"PERPETUAL", "PERPETUAL_DELIVERING", "TRADIFI_PERPETUAL"})
_DELIVERY_TYPES = frozenset({"CURRENT_MONTH", "NEXT_MONTH", "CURRENT_QUARTER", "NEXT_QUARTER"})
_DELIVERY_SUFFIX = re.compile(r"^(?P<pair>[A-Za-z0-9]+)_(?P<yymmdd>[0-9]{6})$")

# Quote assets tried, longest first, when a symbol must be split without exchangeInfo (guess_name only).
_KNOWN_QUOTES = tuple(sorted((
    "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "USDP", "DAI", "UST", "PAX", "USD1", "XUSD", "USDS",
    "BTC", "ETH", "BNB", "XRP", "TRX", "DOGE", "DOT", "SOL",
    "EUR", "GBP", "TRY", "BRL", "AUD", "RUB", "UAH", "NGN", "ZAR", "IDRT", "BIDR", "BVND", "PLN", "RON",
    "ARS", "JPY", "MXN", "COP", "CZK", "AEUR",
), key=len, reverse=True))


def _market(market) -> Market:
    m = Market(market)
    if m not in (Market.BINANCE_SPOT, Market.BINANCE_USDM):
        raise ValueError(f"{m.name} is not a Binance market this adapter handles (BINANCE_SPOT, BINANCE_USDM)")
    return m


def strip_decimal(text) -> Decimal:
    """A venue decimal string as a Decimal without trailing zeros and with a non-positive exponent, so
    format(d, 'f') writes it plainly: '0.01000000' -> 0.01, '10.00000000' -> 10, '1E+3' -> 1000."""
    try:
        d = Decimal(str(text))
    except InvalidOperation:
        raise ValueError(f"{text!r} is not a decimal number") from None
    if not d.is_finite():
        raise ValueError(f"{text!r} is not a finite decimal")
    if d == d.to_integral_value():
        return d.quantize(Decimal(1))
    return d.normalize()


def _delivery_date(info: dict) -> _dt.date:
    ms = info.get("deliveryDate")
    if not isinstance(ms, int) or ms <= 0:
        raise ValueError(f"{info.get('symbol')!r}: delivery contract without a deliveryDate")
    return _dt.datetime.fromtimestamp(ms / 1000, tz=_dt.timezone.utc).date()


def name_from_symbol_info(market, info: dict) -> str:
    """The normalised name of one exchangeInfo `symbols[]` entry. ValueError when it cannot have one
    (unknown contract type, asset codes outside letters and digits, inconsistent delivery date)."""
    m = _market(market)
    symbol, base, quote = info.get("symbol"), info.get("baseAsset"), info.get("quoteAsset")
    if not symbol or not base or not quote:
        raise ValueError(f"exchangeInfo entry without symbol / baseAsset / quoteAsset: {info!r:.200}")
    if m == Market.BINANCE_SPOT:
        return format_name(InstrumentName(InstrumentKind.SPOT, base, quote))
    contract = info.get("contractType")
    if contract in _PERPETUAL_TYPES:
        return format_name(InstrumentName(InstrumentKind.PERPETUAL, base, quote))
    if contract in _DELIVERY_TYPES:
        expiry = _delivery_date(info)
        match = _DELIVERY_SUFFIX.match(symbol)
        if match and match.group("yymmdd") != f"{expiry:%y%m%d}":
            raise ValueError(f"{symbol}: deliveryDate {expiry} does not match the symbol's date suffix")
        return format_name(InstrumentName(InstrumentKind.FUTURE, base, quote, expiry=expiry))
    raise ValueError(f"{symbol}: unsupported contractType {contract!r}")


def venue_symbol_for_name(market, name: str) -> str:
    """The Binance symbol of a normalised name on `market`: BTC_USDT -> BTCUSDT (spot), BTC_USDT_PERP ->
    BTCUSDT, BTC_USDT_FUT_20231229 -> BTCUSDT_231229 (USD-M)."""
    m = _market(market)
    parts = parse_name(name)
    if m == Market.BINANCE_SPOT:
        if parts.kind != InstrumentKind.SPOT:
            raise ValueError(f"{name} is not a spot instrument; Binance spot lists only BASE_QUOTE names")
        return f"{parts.base}{parts.quote}"
    if parts.kind == InstrumentKind.PERPETUAL:
        return f"{parts.base}{parts.quote}"
    if parts.kind == InstrumentKind.FUTURE:
        return f"{parts.base}{parts.quote}_{parts.expiry:%y%m%d}"
    raise ValueError(f"{name}: Binance USD-M lists perpetuals (_PERP) and dated futures (_FUT_YYYYMMDD)")


def guess_name(market, symbol: str) -> str:
    """Split a venue symbol on a known quote asset - only for when no exchangeInfo is at hand (captures,
    logs). Wrong for symbols whose quote is not in the known list; ValueError when nothing matches."""
    m = _market(market)
    pair, expiry = symbol, None
    match = _DELIVERY_SUFFIX.match(symbol)
    if match:
        if m == Market.BINANCE_SPOT:
            raise ValueError(f"{symbol!r} looks like a delivery contract, not a spot symbol")
        pair = match.group("pair")
        yymmdd = match.group("yymmdd")
        try:
            expiry = _dt.date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
        except ValueError:
            raise ValueError(f"{symbol!r}: {yymmdd} is not a date") from None
    for quote in _KNOWN_QUOTES:
        if pair.endswith(quote) and len(pair) > len(quote):
            base = pair[: -len(quote)]
            if m == Market.BINANCE_SPOT:
                kind = InstrumentKind.SPOT
            else:
                kind = InstrumentKind.FUTURE if expiry else InstrumentKind.PERPETUAL
            return format_name(InstrumentName(kind, base, quote, expiry=expiry))
    raise ValueError(f"cannot split {symbol!r} into base and quote without exchangeInfo")


def name_for_symbol(registry, market, symbol: str) -> str:
    """The normalised name of a venue symbol registered from exchangeInfo (UnknownInstrumentError if not)."""
    return registry.by_venue_symbol(_market(market), symbol).name


@dataclasses.dataclass(frozen=True)
class SymbolRules:
    """One symbol's trading rules from exchangeInfo, with trailing zeros stripped. Fields a symbol does
    not have are None (e.g. a disabled MARKET_LOT_SIZE)."""
    venue_symbol: str
    name: str
    market: Market
    status: str
    tick_size: Decimal
    lot_size: Decimal
    min_price: Optional[Decimal] = None
    max_price: Optional[Decimal] = None
    min_qty: Optional[Decimal] = None
    max_qty: Optional[Decimal] = None
    market_lot_size: Optional[Decimal] = None
    market_min_qty: Optional[Decimal] = None
    market_max_qty: Optional[Decimal] = None
    min_notional: Decimal = Decimal(0)
    max_notional: Optional[Decimal] = None
    min_notional_applies_to_market: bool = True
    max_num_orders: Optional[int] = None

    @property
    def price_precision(self) -> int:
        """Decimals of the raw price grid: enough for the tick and the min notional."""
        return max(_decimals(self.tick_size), _decimals(self.min_notional))


@dataclasses.dataclass(frozen=True)
class SkippedSymbol:
    venue_symbol: str
    reason: str


def _decimals(d: Decimal) -> int:
    return max(0, -d.as_tuple().exponent)


def _positive(d: Optional[Decimal]) -> Optional[Decimal]:
    return d if d is not None and d > 0 else None


def _rules(m: Market, info: dict, name: str) -> SymbolRules:
    filters = {f.get("filterType"): f for f in info.get("filters") or ()}
    price, lot = filters.get("PRICE_FILTER"), filters.get("LOT_SIZE")
    if price is None or lot is None:
        raise ValueError("no PRICE_FILTER / LOT_SIZE filter: the price and size grid is unknown")
    tick, step = strip_decimal(price.get("tickSize", "0")), strip_decimal(lot.get("stepSize", "0"))
    if tick <= 0:
        raise ValueError("PRICE_FILTER.tickSize is 0 (price filter disabled): no price grid")
    if step <= 0:
        raise ValueError("LOT_SIZE.stepSize is 0: no size grid")
    market_lot = filters.get("MARKET_LOT_SIZE") or {}
    min_notional, max_notional, applies_to_market = Decimal(0), None, True
    if m == Market.BINANCE_SPOT:
        notional = filters.get("NOTIONAL")
        if notional is not None:          # current spot filter (min and max, per order type flags)
            min_notional = strip_decimal(notional.get("minNotional", "0"))
            max_notional = _positive(strip_decimal(notional.get("maxNotional", "0")))
            applies_to_market = bool(notional.get("applyMinToMarket", True))
        elif "MIN_NOTIONAL" in filters:   # the older spot filter, still in older captures
            old = filters["MIN_NOTIONAL"]
            min_notional = strip_decimal(old.get("minNotional", "0"))
            applies_to_market = bool(old.get("applyToMarket", True))
    elif "MIN_NOTIONAL" in filters:
        min_notional = strip_decimal(filters["MIN_NOTIONAL"].get("notional", "0"))
    max_orders = filters.get("MAX_NUM_ORDERS") or {}
    return SymbolRules(
        venue_symbol=info["symbol"], name=name, market=m, status=info.get("status", ""),
        tick_size=tick, lot_size=step,
        min_price=_positive(strip_decimal(price.get("minPrice", "0"))),
        max_price=_positive(strip_decimal(price.get("maxPrice", "0"))),
        min_qty=_positive(strip_decimal(lot.get("minQty", "0"))),
        max_qty=_positive(strip_decimal(lot.get("maxQty", "0"))),
        market_lot_size=_positive(strip_decimal(market_lot.get("stepSize", "0"))),
        market_min_qty=_positive(strip_decimal(market_lot.get("minQty", "0"))),
        market_max_qty=_positive(strip_decimal(market_lot.get("maxQty", "0"))),
        min_notional=min_notional, max_notional=max_notional,
        min_notional_applies_to_market=applies_to_market,
        max_num_orders=max_orders.get("maxNumOrders", max_orders.get("limit")),
    )


def parse_exchange_info(market, exchange_info: dict, *, trading_only: bool = True
                        ) -> Tuple[List[SymbolRules], List[SkippedSymbol]]:
    """Rules for every symbol of an exchangeInfo response, and the symbols left out with the reason
    (status not TRADING when trading_only, no normalised name, no usable grid)."""
    m = _market(market)
    symbols = exchange_info.get("symbols")
    if not isinstance(symbols, list):
        raise ValueError("not an exchangeInfo response: no 'symbols' list")
    rules, skipped = [], []
    for info in symbols:
        symbol = info.get("symbol", "?")
        if trading_only and info.get("status") != "TRADING":
            skipped.append(SkippedSymbol(symbol, f"status {info.get('status')!r} is not TRADING"))
            continue
        try:
            name = name_from_symbol_info(m, info)
            rules.append(_rules(m, info, name))
        except ValueError as e:
            skipped.append(SkippedSymbol(symbol, str(e)))
    return rules, skipped


def register_exchange_info(registry, market, exchange_info: dict, *, replace: bool = False) -> list:
    """Register every TRADING symbol of an exchangeInfo response in `registry` (an InstrumentRegistry)
    with its tick, lot, min notional and venue symbol; returns the Instruments. Symbols that cannot be
    registered are logged with the reason and left out. replace=True accepts changed grids (same id)."""
    m = _market(market)
    rules, skipped = parse_exchange_info(m, exchange_info)
    for s in skipped:
        log.warning("%s %s not registered: %s", m.name, s.venue_symbol, s.reason)
    out = []
    for r in rules:
        # format(..., 'f'): str(Decimal('0.00000001')) would be '1E-8', which the exact parser refuses.
        out.append(registry.register(
            r.name, m, format(r.tick_size, "f"), format(r.lot_size, "f"), min_notional=format(r.min_notional, "f"),
            venue_symbol=r.venue_symbol, price_precision=r.price_precision, replace=replace))
    if skipped:
        log.info("%s exchangeInfo: %d instruments registered, %d symbols skipped", m.name, len(out), len(skipped))
    return out
