"""Price-time-priority matching engine of the bundled exchange simulator.

Plain Python over integers, written so a later issue can compile it for backtests: every price is a raw
int (value * 10**price_dp), every size a raw int (value * 10**qty_dp), notionals are raw ints at
10**(price_dp + qty_dp), and account amounts are raw ints at 10**ASSET_DP (Binance keeps 8 decimals for
balances and commissions). No floats anywhere in the matching or the accounting.

What lives here
---------------
* `Book` - one per instrument: each price level is a FIFO queue of resting orders. Orders belong either
  to the *user* (the account trading through the REST API) or to the *background* (the simulated rest of
  the market, fed by a generator or a capture replay). The public depth at a price is the sum of both.
* `MatchingEngine` - the user's order API (`submit`, `cancel`, `modify`) with Binance's validation rules
  and error codes, the market-flow API the data sources drive (`add_liquidity`, `cancel_liquidity`,
  `set_level`, `market_flow`, `replay_trade`), the accounts (spot balances free/locked per asset,
  USD-M one-way positions with entry price, realized P&L and a margin check), and an event list the
  server drains after each call (`drain()`): trades, user order updates, account changes.

How user orders meet the simulated market (the documented interaction model)
----------------------------------------------------------------------------
* A user order that crosses takes liquidity from the visible levels, best price first, FIFO inside a
  level - background and other user orders alike. What it does not fill rests (GTC) or expires
  (IOC / MARKET), FOK fills entirely or not at all, post-only (spot LIMIT_MAKER, USD-M GTX) is rejected
  if it would take.
* A resting user order joins the back of its level's queue. It fills when aggressive flow reaches it:
  a generated market order (`market_flow`) or a generated limit order that crosses (`add_liquidity`)
  consumes the queue from the front; a replayed trade (`replay_trade`) at the order's price consumes the
  queue in front of it first, and a replayed trade *through* the order's price fills it completely
  (the recorded aggressor would have met it first).
* Background cancellations (`cancel_liquidity`, and the size decreases of `set_level` when a replay
  sets a level's recorded size) remove background quantity from the back of the queue, never user
  quantity: the user's queue position improves only through trades in front of it. This is the
  conservative ("risk-averse") queue model; it never fills the user earlier than the market would.
* In generated mode user orders are part of the public book (they appear in depth and bookTicker). A
  replay re-sends the recorded text, so there the user's orders are shadow orders the public stream
  does not show.

Binance rules followed (links are the docs these codes and messages come from)
-----------------------------------------------------------------------------
spot errors   https://developers.binance.com/docs/binance-spot-api-docs/errors
spot filters  https://developers.binance.com/docs/binance-spot-api-docs/filters
USD-M errors  https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

SPOT, USDM = "spot", "usdm"
BUY, SELL = 0, 1
SIDE_NAMES = ("BUY", "SELL")
USER, BACKGROUND = 1, 0
ASSET_DP = 8  # account amounts: raw ints at 10**8, as Binance reports balances and commissions
PPM = 1_000_000  # fee rates are parts per million (0.1% == 1000)

# Order statuses and execution types as Binance spells them.
NEW, PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED, EXPIRED_IN_MATCH = (
    "NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED", "EXPIRED_IN_MATCH")
OPEN_STATUSES = (NEW, PARTIALLY_FILLED)


class Reject(Exception):
    """An order request refused with a Binance error code; nothing changed in the engine."""

    def __init__(self, code: int, msg: str, http_status: int = 400):
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status


def decimals_of(text: str) -> int:
    """Digits after the point once trailing zeros are dropped ("0.0100" -> 2, "10" -> 0)."""
    frac = text.partition(".")[2].rstrip("0")
    return len(frac)


def parse_raw(text: str, dp: int) -> int | None:
    """A wire decimal string as a raw int at `dp` decimals, exactly; None when it has more precision
    than `dp` or is not a finite decimal."""
    try:
        d = Decimal(text)
    except (InvalidOperation, TypeError, ValueError):
        return None
    if not d.is_finite():
        return None
    scaled = d.scaleb(dp)
    if scaled != scaled.to_integral_value():
        return None
    return int(scaled)


def fmt_raw(raw: int, dp: int, out_dp: int | None = None) -> str:
    """A raw int as a fixed-point decimal string with `out_dp` decimals (default `dp`)."""
    if out_dp is None:
        out_dp = dp
    if out_dp < dp:
        raw //= 10 ** (dp - out_dp) if raw >= 0 else -((-raw) // 10 ** (dp - out_dp))
    else:
        raw *= 10 ** (out_dp - dp)
    sign = "-" if raw < 0 else ""
    raw = abs(raw)
    if out_dp == 0:
        return f"{sign}{raw}"
    whole, frac = divmod(raw, 10 ** out_dp)
    return f"{sign}{whole}.{frac:0{out_dp}d}"


def rescale(raw: int, from_dp: int, to_dp: int) -> int:
    """Raw int moved between scales; going to fewer decimals rounds toward zero."""
    if to_dp >= from_dp:
        return raw * 10 ** (to_dp - from_dp)
    q = abs(raw) // 10 ** (from_dp - to_dp)
    return q if raw >= 0 else -q


@dataclass
class SymbolSpec:
    """One tradable instrument as the simulator lists it in exchangeInfo.

    `tick` / `step` / `min_qty` / `max_qty` / `min_notional` are decimal strings as Binance writes them.
    `price_precision` / `qty_precision` are the decimals written on the wire: spot always writes 8,
    USD-M writes the symbol's pricePrecision / quantityPrecision (None: the tick's / step's decimals).
    """

    symbol: str
    base: str
    quote: str
    tick: str = "0.01"
    step: str = "0.00001"
    min_qty: str | None = None
    max_qty: str = "9000"
    min_notional: str = "5"
    price_precision: int | None = None
    qty_precision: int | None = None
    min_price: str | None = None
    max_price: str = "1000000"

    def __post_init__(self):
        self.symbol = self.symbol.upper()
        self.price_dp = decimals_of(self.tick)
        self.qty_dp = decimals_of(self.step)
        self.tick_raw = parse_raw(self.tick, self.price_dp)
        self.step_raw = parse_raw(self.step, self.qty_dp)
        if not self.tick_raw or not self.step_raw or self.tick_raw < 0 or self.step_raw < 0:
            raise ValueError(f"{self.symbol}: tick and step must be positive decimals")
        if self.min_qty is None:
            self.min_qty = self.step
        if self.min_price is None:
            self.min_price = self.tick
        self.min_qty_raw = parse_raw(self.min_qty, self.qty_dp)
        self.max_qty_raw = parse_raw(self.max_qty, self.qty_dp)
        self.min_price_raw = parse_raw(self.min_price, self.price_dp)
        self.max_price_raw = parse_raw(self.max_price, self.price_dp)
        self.notional_dp = self.price_dp + self.qty_dp
        self.min_notional_raw = parse_raw(self.min_notional, self.notional_dp)
        for name in ("min_qty_raw", "max_qty_raw", "min_price_raw", "max_price_raw", "min_notional_raw"):
            if getattr(self, name) is None:
                raise ValueError(f"{self.symbol}: {name[:-4]} is not a multiple of the precision")

    def wire_price_dp(self, market: str) -> int:
        if market == SPOT:
            return 8
        return self.price_dp if self.price_precision is None else self.price_precision

    def wire_qty_dp(self, market: str) -> int:
        if market == SPOT:
            return 8
        return self.qty_dp if self.qty_precision is None else self.qty_precision


class Order:
    """A resting or finished order (user or background). Quantities are raw ints."""

    __slots__ = ("order_id", "client_id", "symbol", "side", "type", "tif", "price", "qty", "filled",
                 "quote_filled", "owner", "status", "reduce_only", "time", "update_time", "working_time",
                 "orig_client_id", "quote_qty", "locked", "margin", "commission", "last_trade_id", "leverage")

    def __init__(self, order_id, symbol, side, type_, tif, price, qty, owner, client_id="", time=0):
        self.order_id = order_id
        self.client_id = client_id
        self.symbol = symbol
        self.side = side
        self.type = type_
        self.tif = tif
        self.price = price  # raw; 0 for a market order
        self.qty = qty
        self.filled = 0
        self.quote_filled = 0  # raw notional at price_dp + qty_dp
        self.owner = owner
        self.status = NEW
        self.reduce_only = False
        self.time = time
        self.update_time = time
        self.working_time = -1
        self.orig_client_id = ""
        self.quote_qty = 0  # spot MARKET quoteOrderQty, raw notional; 0 when quantity was given
        self.locked = 0  # spot: asset amount (ASSET_DP) still locked for this order
        self.margin = 0  # USD-M: initial margin (ASSET_DP) reserved for the open part
        self.commission = 0
        self.last_trade_id = -1
        self.leverage = 0

    def snapshot(self) -> "Order":
        """A copy of the order as it is now (events carry these: the order keeps changing)."""
        twin = Order.__new__(Order)
        for name in Order.__slots__:
            setattr(twin, name, getattr(self, name))
        return twin

    @property
    def remaining(self) -> int:
        return self.qty - self.filled

    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass
class Fill:
    trade_id: int
    price: int
    qty: int
    quote: int  # price * qty, raw notional
    commission: int  # ASSET_DP raw, in commission_asset
    commission_asset: str
    maker: bool
    realized_pnl: int = 0  # USD-M, ASSET_DP raw


@dataclass
class Trade:
    """One match between a taker and one resting (maker) order."""

    trade_id: int
    symbol: str
    price: int
    qty: int
    taker_side: int
    taker: Order
    maker: Order
    time: int


@dataclass
class Position:
    """USD-M one-way position: signed amount, cost of the open part (raw notional), realized P&L."""

    amount: int = 0
    cost: int = 0  # sum of price*qty of the open part, raw notional (always >= 0)
    realized: int = 0  # ASSET_DP raw, cumulative
    leverage: int = 20
    update_time: int = 0


class Book:
    """Price levels of one instrument, each a FIFO deque of orders, with sorted price lists."""

    __slots__ = ("levels", "totals", "prices", "update_id", "changed", "last_change_time")

    def __init__(self):
        self.levels = ({}, {})  # side -> {price: deque[Order]}
        self.totals = ({}, {})  # side -> {price: total resting qty}
        self.prices = ([], [])  # side -> ascending list of prices with a level
        self.update_id = 0
        self.changed: list[tuple[int, int, int]] = []  # (update_id, side, price) since last drain
        self.last_change_time = 0

    def best(self, side: int) -> int | None:
        prices = self.prices[side]
        if not prices:
            return None
        return prices[-1] if side == BUY else prices[0]

    def qty_at(self, side: int, price: int) -> int:
        return self.totals[side].get(price, 0)

    def iter_prices(self, side: int):
        """Prices of one side, best first."""
        prices = self.prices[side]
        return reversed(prices) if side == BUY else iter(prices)

    def top(self, side: int, n: int) -> list[tuple[int, int]]:
        out = []
        for p in self.iter_prices(side):
            out.append((p, self.totals[side][p]))
            if len(out) >= n:
                break
        return out

    def _touch(self, side: int, price: int):
        self.changed.append((self.update_id, side, price))

    def push(self, order: Order):
        side, price = order.side, order.price
        level = self.levels[side].get(price)
        if level is None:
            level = self.levels[side][price] = deque()
            self.totals[side][price] = 0
            bisect.insort(self.prices[side], price)
        level.append(order)
        self.totals[side][price] += order.remaining
        self._touch(side, price)

    def reduce(self, order: Order, qty: int):
        """`qty` of a resting order left the book (fill or cancel); drop emptied orders and levels."""
        side, price = order.side, order.price
        self.totals[side][price] -= qty
        self._touch(side, price)
        if order.remaining == 0 or not order.is_open():
            level = self.levels[side][price]
            try:
                level.remove(order)
            except ValueError:
                pass
            if not level:
                self._drop_level(side, price)

    def remove(self, order: Order):
        """Take a resting order off the book entirely (its remaining quantity)."""
        side, price = order.side, order.price
        level = self.levels[side].get(price)
        if level is None or order not in level:
            return
        level.remove(order)
        self.totals[side][price] -= order.remaining
        self._touch(side, price)
        if not level:
            self._drop_level(side, price)

    def _drop_level(self, side: int, price: int):
        del self.levels[side][price]
        del self.totals[side][price]
        prices = self.prices[side]
        i = bisect.bisect_left(prices, price)
        del prices[i]


def crosses(taker_side: int, limit: int | None, level_price: int) -> bool:
    if limit is None:
        return True
    return level_price <= limit if taker_side == BUY else level_price >= limit


class MatchingEngine:
    """All instruments of one simulated market (spot or USD-M) and the one user account trading on it.

    `clock_ms` returns the current time in ms (the server's clock); `fees` are (maker, taker) rates in
    parts per million; `balances` the starting account: spot {asset: decimal string}, USD-M
    {"USDT": wallet balance}.
    """

    def __init__(self, market: str, symbols: list[SymbolSpec], *, clock_ms=None, fees: tuple[int, int] | None = None,
                 balances: dict[str, str] | None = None, leverage: int = 20, max_open_orders: int = 200):
        if market not in (SPOT, USDM):
            raise ValueError(f"market must be {SPOT!r} or {USDM!r}, got {market!r}")
        self.market = market
        self.specs = {s.symbol: s for s in symbols}
        self.books = {s.symbol: Book() for s in symbols}
        self.clock_ms = clock_ms or (lambda: 0)
        self.maker_fee, self.taker_fee = fees if fees is not None else ((1000, 1000) if market == SPOT else (200, 500))
        self.max_open_orders = max_open_orders
        self.next_order_id = 1
        self.next_bg_id = -1
        self.next_trade_id = {s.symbol: 1 for s in symbols}
        self.orders: dict[int, Order] = {}  # user orders by id (open and finished)
        self.open_by_client: dict[tuple[str, str], Order] = {}  # (symbol, clientOrderId) of open user orders
        self.events: list[tuple] = []
        self.account_update_time = 0
        if balances is None:
            balances = {"USDT": "100000"} if market == USDM else {"USDT": "100000", **{s.base: "10" for s in symbols}}
        # spot: asset -> [free, locked]; USD-M: only the margin asset's wallet balance
        self.balances: dict[str, list[int]] = {}
        for asset, amount in balances.items():
            raw = parse_raw(str(amount), ASSET_DP)
            if raw is None or raw < 0:
                raise ValueError(f"balance of {asset} must be a non-negative decimal with <= 8 decimals")
            self.balances[asset] = [raw, 0]
        if market == SPOT:
            for s in symbols:
                self.balances.setdefault(s.base, [0, 0])
                self.balances.setdefault(s.quote, [0, 0])
        else:
            self.balances.setdefault("USDT", [0, 0])
        self.positions = {s.symbol: Position(leverage=leverage) for s in symbols}
        self.mark_prices: dict[str, int] = {}
        self.last_prices: dict[str, int] = {}
        # The account's trades per symbol, oldest first (served by GET /api/v3/myTrades and
        # /fapi/v1/userTrades): (order snapshot after the trade, its Fill, time).
        self.user_trades: dict[str, list[tuple[Order, Fill, int]]] = {s.symbol: [] for s in symbols}

    # ------------------------------------------------------------------------------------ helpers

    def spec(self, symbol: str) -> SymbolSpec:
        spec = self.specs.get(symbol)
        if spec is None:
            raise Reject(-1121, "Invalid symbol.")
        return spec

    def _now(self) -> int:
        return int(self.clock_ms())

    def _touch_book(self, book: Book):
        book.update_id += 1
        book.last_change_time = self._now()

    def drain(self) -> list[tuple]:
        events, self.events = self.events, []
        return events

    def notional_to_asset(self, spec: SymbolSpec, notional: int) -> int:
        return rescale(notional, spec.notional_dp, ASSET_DP)

    def qty_to_asset(self, spec: SymbolSpec, qty: int) -> int:
        return rescale(qty, spec.qty_dp, ASSET_DP)

    def mark_price(self, symbol: str) -> int | None:
        """Mark price: the last one set by the feed, else the book's mid (rounded down to a tick)."""
        mark = self.mark_prices.get(symbol)
        if mark is not None:
            return mark
        book = self.books[symbol]
        bid, ask = book.best(BUY), book.best(SELL)
        if bid is None or ask is None:
            return bid if ask is None else ask
        tick = self.specs[symbol].tick_raw
        return (bid + ask) // 2 // tick * tick

    # ------------------------------------------------------------------------ validation (filters)

    def _check_filters(self, spec: SymbolSpec, price: int | None, qty: int | None, is_market: bool, reduce_only: bool):
        spot = self.market == SPOT
        if qty is not None:
            if spot:
                if qty <= 0 or qty < spec.min_qty_raw or qty > spec.max_qty_raw or qty % spec.step_raw:
                    raise Reject(-1013, "Filter failure: MARKET_LOT_SIZE" if is_market else "Filter failure: LOT_SIZE")
            else:
                if qty <= 0:
                    raise Reject(-4003, "Quantity less than or equal to zero.")
                if qty % spec.step_raw:
                    raise Reject(-4023, "Qty not increased by step size.")
                if qty < spec.min_qty_raw:
                    raise Reject(-1013, "Filter failure: LOT_SIZE")
                if qty > spec.max_qty_raw:
                    raise Reject(-4005, "Quantity greater than max quantity.")
        if price is not None:
            if spot:
                if price <= 0 or price % spec.tick_raw or not spec.min_price_raw <= price <= spec.max_price_raw:
                    raise Reject(-1013, "Filter failure: PRICE_FILTER")
            else:
                if price <= 0:
                    raise Reject(-4001, "Price less than 0.")
                if price % spec.tick_raw:
                    raise Reject(-4014, "Price not increased by tick size.")
                if price > spec.max_price_raw:
                    raise Reject(-4016, f"Limit price can't be higher than {spec.max_price}.")
                if price < spec.min_price_raw:
                    raise Reject(-4024, f"Limit price can't be lower than {spec.min_price}.")

    def _check_notional(self, spec: SymbolSpec, notional: int, reduce_only: bool):
        if notional < spec.min_notional_raw:
            if self.market == SPOT:
                raise Reject(-1013, "Filter failure: NOTIONAL")
            if not reduce_only:
                raise Reject(-4164, f"Order's notional must be no smaller than {spec.min_notional} (unless you choose reduce only).")

    # -------------------------------------------------------------------------------- user orders

    def submit(self, symbol: str, side: int, type_: str, *, qty: int | None = None, price: int | None = None,
               tif: str | None = None, client_id: str | None = None, reduce_only: bool = False,
               quote_qty: int | None = None) -> tuple[Order, list[Fill]]:
        """Place a user order. Returns the order (final or resting state) and its immediate fills.

        Raises Reject (nothing changed) for any refused request. Types: LIMIT (tif GTC/IOC/FOK, USD-M also
        GTX), MARKET (qty, or spot quote_qty), LIMIT_MAKER (spot post-only).
        """
        spec = self.spec(symbol)
        book = self.books[symbol]
        spot = self.market == SPOT
        if side not in (BUY, SELL):
            raise Reject(-1117, "Invalid side.")
        allowed = ("LIMIT", "MARKET", "LIMIT_MAKER") if spot else ("LIMIT", "MARKET")
        if type_ not in allowed:
            raise Reject(-1116, "Invalid orderType.")
        if reduce_only and spot:
            raise Reject(-1106, "Parameter 'reduceOnly' sent when not required.")
        is_market = type_ == "MARKET"
        if type_ == "LIMIT":
            if tif is None:
                raise Reject(-1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.")
            if tif not in (("GTC", "IOC", "FOK") if spot else ("GTC", "IOC", "FOK", "GTX")):
                raise Reject(-1115, "Invalid timeInForce.")
            if price is None:
                raise Reject(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
        elif type_ == "LIMIT_MAKER":
            if tif is not None:
                raise Reject(-1106, "Parameter 'timeInForce' sent when not required.")
            if price is None:
                raise Reject(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
            tif = "GTC"
        else:
            if price is not None:
                raise Reject(-1106, "Parameter 'price' sent when not required.")
            if tif is not None and spot:
                raise Reject(-1106, "Parameter 'timeInForce' sent when not required.")
            tif = "GTC"
        if quote_qty is not None:
            if not (spot and is_market):
                raise Reject(-1106, "Parameter 'quoteOrderQty' sent when not required.")
            if qty is not None:
                raise Reject(-1128, "Combination of optional parameters invalid.")
            if quote_qty <= 0:
                raise Reject(-1013, "Filter failure: NOTIONAL")
        elif qty is None:
            raise Reject(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
        self._check_filters(spec, price, qty, is_market, reduce_only)
        if client_id:
            dup = self.open_by_client.get((symbol, client_id))
            if dup is not None:
                raise Reject(-2010, "Duplicate order sent.") if spot else Reject(-4116, "ClientOrderId is duplicated.")
        if sum(1 for o in self.open_by_client.values() if o.symbol == symbol) >= self.max_open_orders:
            raise Reject(-2010, "Account has too many open orders on the symbol.") if spot else \
                Reject(-2025, "Reach max open order limit.")

        # What the order would take now (price levels it crosses), for FOK, post-only, margin and balance checks.
        opposite = SELL if side == BUY else BUY
        best_opp = book.best(opposite)
        would_take = best_opp is not None and crosses(side, price if not is_market else None, best_opp)
        if (type_ == "LIMIT_MAKER" or tif == "GTX") and would_take:
            raise Reject(-2010, "Order would immediately match and take.") if spot else \
                Reject(-5022, "Due to the order could not be executed as maker, the Post Only order will be rejected. "
                              "The order will not be recorded in the order history")

        # Reduce-only (USD-M one-way): must shrink the current position, never open or flip it.
        pos = self.positions[symbol]
        if reduce_only:
            if pos.amount == 0 or (pos.amount > 0) == (side == BUY):
                raise Reject(-2022, "ReduceOnly Order is rejected.")
            qty = min(qty, abs(pos.amount))

        # Notional check (spot NOTIONAL filter, USD-M MIN_NOTIONAL): at the limit price, or for a market
        # order at the price it would fill at (Binance uses the average price; the book is what we have).
        if quote_qty is not None:
            # quoteOrderQty: the quantity is what the budget buys (or what selling yields it) on the book now.
            qty = self._walk(book, side, None, None, quote_budget=quote_qty, step=spec.step_raw)[0]
        if is_market:
            if quote_qty is None:
                est = self._walk(book, side, qty, None)[1]
                if est and est < spec.min_notional_raw and self.market == SPOT:
                    raise Reject(-1013, "Filter failure: NOTIONAL")
                if not spot and est and not reduce_only:
                    self._check_notional(spec, est, reduce_only)
            elif quote_qty < spec.min_notional_raw:
                raise Reject(-1013, "Filter failure: NOTIONAL")
        else:
            self._check_notional(spec, price * qty, reduce_only)

        now = self._now()
        order = Order(self.next_order_id, symbol, side, type_, tif, price or 0, qty or 0, USER,
                      client_id or self._auto_client_id(), now)
        order.reduce_only = reduce_only
        if quote_qty is not None:
            order.quote_qty = quote_qty
        # Balance / margin: reserve what the order can cost, or refuse with the real error.
        if spot:
            self._spot_reserve(spec, order, book)
        else:
            order.leverage = pos.leverage
            self._usdm_reserve(spec, order, book)
        self.next_order_id += 1
        self.orders[order.order_id] = order
        self.open_by_client[(symbol, order.client_id)] = order

        fills: list[Fill] = []
        if tif == "FOK":
            available = self._walk(book, side, order.qty, price)[0]
            if available < order.qty:
                self.events.append(("order", order.snapshot(), "NEW", None))
                self._finish(order, EXPIRED)
                return order, fills
        self.events.append(("order", order.snapshot(), "NEW", None))
        fills = self._take(book, spec, order, None if is_market else price)
        if order.is_open():
            if is_market or tif in ("IOC", "FOK"):
                self._finish(order, EXPIRED)
            else:
                order.working_time = self._now()
                self._touch_book(book)
                book.push(order)
        return order, fills

    def _auto_client_id(self) -> str:
        # Binance generates a 22-character id when newClientOrderId is absent.
        n = self.next_order_id
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        out = []
        x = n * 2654435761 % (62 ** 12) + 62 ** 12
        while x:
            x, r = divmod(x, 62)
            out.append(alphabet[r])
        return ("sim" + "".join(out)).ljust(22, "0")[:22]

    def _walk(self, book: Book, side: int, qty: int | None, limit: int | None, quote_budget: int | None = None,
              step: int = 1):
        """(fillable qty, its notional) if `side` took `qty` (or spent `quote_budget`) now, up to `limit`."""
        opposite = SELL if side == BUY else BUY
        got = notional = 0
        for p in book.iter_prices(opposite):
            if not crosses(side, limit, p):
                break
            avail = book.totals[opposite][p]
            if quote_budget is not None:
                take = min(avail, (quote_budget - notional) // p)
                take -= take % step
            else:
                take = min(avail, qty - got)
            got += take
            notional += take * p
            if (quote_budget is None and got >= qty) or (quote_budget is not None and take < avail):
                break
        return got, notional

    def _spot_reserve(self, spec: SymbolSpec, order: Order, book: Book):
        if order.side == BUY:
            asset = spec.quote
            if order.type == "MARKET":
                notional = self._walk(book, BUY, order.qty, None)[1]
            else:
                notional = order.price * order.qty
            need = rescale(notional, spec.notional_dp, ASSET_DP)
            if spec.notional_dp > ASSET_DP and notional % 10 ** (spec.notional_dp - ASSET_DP):
                need += 1  # lock what covers the exact cost
        else:
            asset = spec.base
            need = self.qty_to_asset(spec, order.qty)
        bal = self.balances[asset]
        if need > bal[0]:
            raise Reject(-2010, "Account has insufficient balance for requested action.")
        bal[0] -= need
        bal[1] += need
        order.locked = need
        self._account_changed([asset])

    def _increase_qty(self, symbol: str, side: int, qty: int) -> int:
        """Part of an order of `qty` on `side` that would open or grow the position (not reduce it)."""
        amount = self.positions[symbol].amount
        if amount == 0 or (amount > 0) == (side == BUY):
            return qty
        return max(0, qty - abs(amount))

    def available_margin(self) -> int:
        """USD-M available balance: wallet + unrealized P&L - position margin - open order margin."""
        wallet = self.balances["USDT"][0]
        upnl = pos_margin = 0
        for symbol, pos in self.positions.items():
            if pos.amount:
                mark = self.mark_price(symbol) or 0
                spec = self.specs[symbol]
                upnl += self.unrealized(symbol)
                pos_margin += self.notional_to_asset(spec, abs(pos.amount) * mark) // pos.leverage
        # an order's reserved margin covers its whole quantity; only the unfilled part still needs it
        order_margin = sum(o.margin * o.remaining // o.qty for o in self.open_by_client.values() if o.qty)
        return wallet + upnl - pos_margin - order_margin

    def unrealized(self, symbol: str) -> int:
        pos = self.positions[symbol]
        if not pos.amount:
            return 0
        mark = self.mark_price(symbol) or 0
        spec = self.specs[symbol]
        value = abs(pos.amount) * mark
        pnl = value - pos.cost if pos.amount > 0 else pos.cost - value
        return self.notional_to_asset(spec, pnl)

    def _usdm_reserve(self, spec: SymbolSpec, order: Order, book: Book):
        increase = 0 if order.reduce_only else self._increase_qty(order.symbol, order.side, order.qty)
        if not increase:
            return
        price = order.price
        if order.type == "MARKET":
            got, notional = self._walk(book, order.side, order.qty, None)
            price = -(-notional // got) if got else (self.mark_price(order.symbol) or 0)
        pos = self.positions[order.symbol]
        need = self.notional_to_asset(spec, price * increase) // pos.leverage
        if need > self.available_margin():
            raise Reject(-2019, "Margin is insufficient.")
        order.margin = need

    def _take(self, book: Book, spec: SymbolSpec, taker: Order, limit: int | None) -> list[Fill]:
        """Match `taker` against the opposite side up to `limit`; returns the taker's fills (if user)."""
        side = taker.side
        opposite = SELL if side == BUY else BUY
        fills = []
        touched = False
        while taker.remaining > 0:
            best = book.best(opposite)
            if best is None or not crosses(side, limit, best):
                break
            maker = book.levels[opposite][best][0]
            qty = min(taker.remaining, maker.remaining)
            if not touched:
                self._touch_book(book)
                touched = True
            fills_pair = self._execute(spec, book, taker, maker, best, qty)
            if fills_pair is not None:
                fills.append(fills_pair)
        return fills

    def _execute(self, spec: SymbolSpec, book: Book, taker: Order, maker: Order, price: int, qty: int) -> Fill | None:
        symbol = spec.symbol
        trade_id = self.next_trade_id[symbol]
        self.next_trade_id[symbol] = trade_id + 1
        now = self._now()
        for o in (taker, maker):
            o.filled += qty
            o.quote_filled += price * qty
            o.update_time = now
            o.last_trade_id = trade_id
            o.status = FILLED if o.remaining == 0 else PARTIALLY_FILLED
        book.reduce(maker, qty)
        self.last_prices[symbol] = price
        trade = Trade(trade_id, symbol, price, qty, taker.side, taker, maker, now)
        self.events.append(("trade", trade))
        taker_fill = None
        for o, is_maker in ((maker, True), (taker, False)):
            if o.owner != USER:
                continue
            fill = self._settle(spec, o, price, qty, is_maker, trade_id)
            snap = o.snapshot()
            self.user_trades[symbol].append((snap, fill, now))
            self.events.append(("order", snap, "TRADE", fill))
            if o.status == FILLED:
                self._closed(o)
            if not is_maker:
                taker_fill = fill
        if maker.owner == USER or taker.owner == USER:
            if self.market == USDM:
                self._expire_reduce_only(symbol)
        return taker_fill

    def _settle(self, spec: SymbolSpec, order: Order, price: int, qty: int, maker: bool, trade_id: int) -> Fill:
        rate = self.maker_fee if maker else self.taker_fee
        notional = price * qty
        quote_amt = self.notional_to_asset(spec, notional)
        if self.market == SPOT:
            base_amt = self.qty_to_asset(spec, qty)
            b, q = self.balances[spec.base], self.balances[spec.quote]
            if order.side == BUY:
                commission, asset = base_amt * rate // PPM, spec.base
                spend = min(quote_amt, order.locked)
                order.locked -= spend
                q[1] -= spend
                b[0] += base_amt - commission
                if order.remaining == 0:
                    self._release(spec, order)
            else:
                commission, asset = quote_amt * rate // PPM, spec.quote
                spend = min(base_amt, order.locked)
                order.locked -= spend
                b[1] -= spend
                q[0] += quote_amt - commission
                if order.remaining == 0:
                    self._release(spec, order)
            order.commission += commission
            self._account_changed([spec.base, spec.quote])
            return Fill(trade_id, price, qty, notional, commission, asset, maker)
        # USD-M: fee and realized P&L go to the USDT wallet; the position moves.
        commission = quote_amt * rate // PPM
        pos = self.positions[spec.symbol]
        signed = qty if order.side == BUY else -qty
        pnl = 0
        if pos.amount == 0 or (pos.amount > 0) == (signed > 0):
            pos.amount += signed
            pos.cost += notional
        else:
            close = min(qty, abs(pos.amount))
            cost_closed = pos.cost * close // abs(pos.amount)
            value = price * close
            pnl_raw = value - cost_closed if pos.amount > 0 else cost_closed - value
            pnl = self.notional_to_asset(spec, pnl_raw)
            pos.cost -= cost_closed
            pos.amount += signed
            if abs(signed) > close:  # flipped: the rest opens a new position at this price
                pos.cost = price * (abs(signed) - close)
        if pos.amount == 0:
            pos.cost = 0
        pos.realized += pnl
        pos.update_time = self._now()
        wallet = self.balances["USDT"]
        wallet[0] += pnl - commission
        order.commission += commission
        self.events.append(("position", spec.symbol))
        self._account_changed(["USDT"])
        return Fill(trade_id, price, qty, notional, commission, "USDT", maker, pnl)

    def _release(self, spec: SymbolSpec, order: Order):
        """Give back what a finished spot order still had locked."""
        if not order.locked:
            return
        asset = spec.quote if order.side == BUY else spec.base
        bal = self.balances[asset]
        bal[1] -= order.locked
        bal[0] += order.locked
        order.locked = 0
        self._account_changed([asset])

    def _account_changed(self, assets):
        self.account_update_time = self._now()
        self.events.append(("balance", tuple(assets)))

    def _closed(self, order: Order):
        self.open_by_client.pop((order.symbol, order.client_id), None)
        order.margin = 0

    def _finish(self, order: Order, status: str, exec_type: str | None = None):
        """End a user order that is not filled: CANCELED by the user, EXPIRED by its rules."""
        order.status = status
        order.update_time = self._now()
        if self.market == SPOT:
            self._release(self.specs[order.symbol], order)
        self._closed(order)
        self.events.append(("order", order.snapshot(), exec_type or status, None))

    def _expire_reduce_only(self, symbol: str):
        """Resting reduce-only orders that can no longer reduce the position expire (Binance does the same)."""
        pos = self.positions[symbol]
        for o in list(self.open_by_client.values()):
            if o.symbol != symbol or not o.reduce_only:
                continue
            if pos.amount == 0 or (pos.amount > 0) == (o.side == BUY):
                self._touch_book(self.books[symbol])
                self.books[symbol].remove(o)
                self._finish(o, EXPIRED)

    def find(self, symbol: str, order_id: int | None = None, client_id: str | None = None) -> Order | None:
        if order_id is not None:
            o = self.orders.get(order_id)
            return o if o is not None and o.symbol == symbol else None
        if client_id:
            o = self.open_by_client.get((symbol, client_id))
            if o is not None:
                return o
            for o in reversed(list(self.orders.values())):  # finished orders keep their id
                if o.symbol == symbol and o.client_id == client_id:
                    return o
        return None

    def cancel(self, symbol: str, order_id: int | None = None, client_id: str | None = None) -> Order:
        self.spec(symbol)
        if order_id is None and not client_id:
            raise Reject(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        order = self.find(symbol, order_id, client_id)
        if order is None or not order.is_open():
            raise Reject(-2011, "Unknown order sent.")
        book = self.books[symbol]
        self._touch_book(book)
        book.remove(order)
        self._finish(order, CANCELED)
        return order

    def cancel_all(self, symbol: str) -> list[Order]:
        self.spec(symbol)
        out = [o for o in list(self.open_by_client.values()) if o.symbol == symbol]
        for o in out:
            self.cancel(symbol, o.order_id)
        return out

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        return sorted((o for o in self.open_by_client.values() if symbol is None or o.symbol == symbol),
                      key=lambda o: o.order_id)

    def modify(self, symbol: str, side: int, qty: int, price: int, order_id: int | None = None,
               client_id: str | None = None) -> Order:
        """USD-M order modification (PUT /fapi/v1/order): new price and/or quantity of a resting LIMIT.

        Binance: a price change or a quantity increase sends the order to the back of the queue; a quantity
        decrease at the same price keeps its place. A new quantity at or under the executed one is refused.
        """
        if self.market != USDM:
            raise Reject(-1020, "This operation is not supported.")
        spec = self.spec(symbol)
        order = self.find(symbol, order_id, client_id)
        if order is None or not order.is_open():
            raise Reject(-2013, "Order does not exist.")
        if order.side != side:
            raise Reject(-1117, "Invalid side.")
        self._check_filters(spec, price, qty, False, order.reduce_only)
        if qty <= order.filled:
            raise Reject(-4003, "Quantity less than or equal to zero.")
        if qty == order.qty and price == order.price:
            raise Reject(-5027, "No need to modify the order.")
        book = self.books[symbol]
        opposite = SELL if side == BUY else BUY
        best_opp = book.best(opposite)
        if order.tif == "GTX" and best_opp is not None and crosses(side, price, best_opp):
            raise Reject(-5022, "Due to the order could not be executed as maker, the Post Only order will be rejected. "
                                "The order will not be recorded in the order history")
        self._check_notional(spec, price * qty, order.reduce_only)
        keep_place = price == order.price and qty < order.qty
        old = (order.qty, order.price, order.margin)
        order.margin = 0
        increase = 0 if order.reduce_only else self._increase_qty(symbol, side, qty - order.filled)
        need = self.notional_to_asset(spec, price * increase) // self.positions[symbol].leverage
        if need > self.available_margin():
            order.margin = old[2]
            raise Reject(-2019, "Margin is insufficient.")
        self._touch_book(book)
        if keep_place:
            book.totals[side][price] -= order.qty - qty
            book._touch(side, price)
            order.qty = qty
        else:
            book.remove(order)
            order.qty, order.price = qty, price
        order.margin = need
        order.update_time = self._now()
        self.events.append(("order", order.snapshot(), "AMENDMENT", None))
        if not keep_place:
            self._take(book, spec, order, price)
            if order.is_open():
                if order.tif in ("IOC", "FOK"):
                    self._finish(order, EXPIRED)
                else:
                    book.push(order)
        return order

    def set_leverage(self, symbol: str, leverage: int) -> Position:
        self.spec(symbol)
        if not 1 <= leverage <= 125:
            raise Reject(-4028, f"Leverage {leverage} is not valid")
        pos = self.positions[symbol]
        old = pos.leverage
        pos.leverage = leverage
        if self.available_margin() < 0:
            pos.leverage = old
            raise Reject(-2027, "Exceeded the maximum allowable position at current leverage.")
        return pos

    # ----------------------------------------------------------------------- market flow (sources)

    def add_liquidity(self, symbol: str, side: int, price: int, qty: int) -> list[Trade]:
        """A background limit order: it first trades with any (user) order it crosses, then rests."""
        book = self.books[symbol]
        spec = self.specs[symbol]
        order = Order(self.next_bg_id, symbol, side, "LIMIT", "GTC", price, qty, BACKGROUND, time=self._now())
        self.next_bg_id -= 1
        n = len(self.events)
        self._take(book, spec, order, price)
        if order.remaining > 0:
            self._touch_book(book)
            book.push(order)
        return [e[1] for e in self.events[n:] if e[0] == "trade"]

    def cancel_liquidity(self, symbol: str, side: int, price: int, qty: int) -> int:
        """Remove up to `qty` of background size at a level, newest first; returns what was removed."""
        book = self.books[symbol]
        level = book.levels[side].get(price)
        if not level or qty <= 0:
            return 0
        removed = 0
        self._touch_book(book)
        for order in reversed(list(level)):
            if order.owner != BACKGROUND:
                continue
            take = min(order.remaining, qty - removed)
            order.qty -= take
            removed += take
            if order.remaining == 0:
                order.status = CANCELED
            book.reduce(order, take)
            if removed >= qty:
                break
        return removed

    def background_qty(self, symbol: str, side: int, price: int) -> int:
        level = self.books[symbol].levels[side].get(price)
        return sum(o.remaining for o in level if o.owner == BACKGROUND) if level else 0

    def set_level(self, symbol: str, side: int, price: int, qty: int) -> list[Trade]:
        """Replay: make the background size at a level equal the recorded size `qty`."""
        have = self.background_qty(symbol, side, price)
        if qty > have:
            return self.add_liquidity(symbol, side, price, qty - have)
        if qty < have:
            self.cancel_liquidity(symbol, side, price, have - qty)
        return []

    def market_flow(self, symbol: str, taker_side: int, qty: int) -> list[Trade]:
        """A background market order: takes `qty` from the opposite side, FIFO, user orders included."""
        book = self.books[symbol]
        spec = self.specs[symbol]
        order = Order(self.next_bg_id, symbol, taker_side, "MARKET", "IOC", 0, qty, BACKGROUND, time=self._now())
        self.next_bg_id -= 1
        n = len(self.events)
        self._take(book, spec, order, None)
        return [e[1] for e in self.events[n:] if e[0] == "trade"]

    def replay_trade(self, symbol: str, taker_side: int, price: int, qty: int) -> list[Trade]:
        """Replay: a recorded trade of `qty` at `price`. User orders at better prices fill completely (the
        recorded aggressor passed them), then the queue at `price` is consumed from the front."""
        book = self.books[symbol]
        spec = self.specs[symbol]
        maker_side = SELL if taker_side == BUY else BUY
        n = len(self.events)
        # Users strictly better than the print.
        for p in list(book.iter_prices(maker_side)):
            better = p < price if maker_side == SELL else p > price
            if not better:
                break
            for o in [o for o in book.levels[maker_side].get(p, ()) if o.owner == USER]:
                self._touch_book(book)
                taker = Order(self.next_bg_id, symbol, taker_side, "MARKET", "IOC", 0, o.remaining, BACKGROUND,
                              time=self._now())
                self.next_bg_id -= 1
                self._execute(spec, book, taker, o, p, o.remaining)
        # The queue at the print.
        level = book.levels[maker_side].get(price)
        if level and any(o.owner == USER for o in level):
            taker = Order(self.next_bg_id, symbol, taker_side, "LIMIT", "IOC", price, qty, BACKGROUND, time=self._now())
            self.next_bg_id -= 1
            remaining_users = True
            self._touch_book(book)
            while taker.remaining > 0 and remaining_users:
                level = book.levels[maker_side].get(price)
                if not level:
                    break
                maker = level[0]
                self._execute(spec, book, taker, maker, price, min(taker.remaining, maker.remaining))
                level = book.levels[maker_side].get(price)
                remaining_users = bool(level) and any(o.owner == USER for o in level)
        return [e[1] for e in self.events[n:] if e[0] == "trade"]

    def book_snapshot(self, symbol: str, limit: int) -> tuple[int, list[tuple[int, int]], list[tuple[int, int]]]:
        book = self.books[symbol]
        return book.update_id, book.top(BUY, limit), book.top(SELL, limit)
