"""Binance wire formats: the JSON text of every stream event and REST body the simulator sends.

Field sets and their order follow the real messages (fixtures/binance captures and nautilus fixtures)
and the docs:

spot streams   https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams
spot user data https://developers.binance.com/docs/binance-spot-api-docs/user-data-stream
USD-M streams  https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams
USD-M user     https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams

Numbers that Binance sends as strings are strings here (prices, sizes, amounts), written with the
symbol's wire decimals: spot always 8, USD-M the symbol's pricePrecision / quantityPrecision.
"""

from __future__ import annotations

import json

from ..matching import (ASSET_DP, BUY, SIDE_NAMES, SPOT, Fill, MatchingEngine, Order, SymbolSpec, Trade,
                        fmt_raw, rescale)

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def dumps(obj) -> str:
    return _dumps(obj)


class Formatter:
    """Formats one market's numbers: `px` / `qty` / `notional` / `amount` for a symbol."""

    def __init__(self, market: str, engine: MatchingEngine):
        self.market = market
        self.engine = engine

    def px(self, spec: SymbolSpec, raw: int) -> str:
        return fmt_raw(raw, spec.price_dp, spec.wire_price_dp(self.market))

    def qty(self, spec: SymbolSpec, raw: int) -> str:
        return fmt_raw(raw, spec.qty_dp, spec.wire_qty_dp(self.market))

    def notional(self, spec: SymbolSpec, raw: int) -> str:
        # spot writes quote amounts with 8 decimals; USD-M cumQuote with the quote precision (8 here)
        return fmt_raw(rescale(raw, spec.notional_dp, ASSET_DP), ASSET_DP)

    def amount(self, raw: int) -> str:
        return fmt_raw(raw, ASSET_DP)

    def avg_price(self, spec: SymbolSpec, order: Order) -> str:
        if not order.filled:
            return fmt_raw(0, spec.price_dp, spec.wire_price_dp(self.market))
        # quote_filled (price_dp + qty_dp decimals) / filled (qty_dp) is a price at price_dp decimals;
        # written with 8 decimals, rounded down, as Binance shows averages finer than the tick
        avg = order.quote_filled * 10 ** (ASSET_DP - spec.price_dp) // order.filled
        return fmt_raw(avg, ASSET_DP)

    def levels(self, spec: SymbolSpec, levels) -> list[list[str]]:
        return [[self.px(spec, p), self.qty(spec, q)] for p, q in levels]

    # --------------------------------------------------------------------------- market streams

    def depth_update(self, spec: SymbolSpec, event_ms: int, tx_ms: int, first_id: int, last_id: int,
                     prev_id: int, bids, asks) -> dict:
        if self.market == SPOT:
            return {"e": "depthUpdate", "E": event_ms, "s": spec.symbol, "U": first_id, "u": last_id,
                    "b": self.levels(spec, bids), "a": self.levels(spec, asks)}
        return {"e": "depthUpdate", "E": event_ms, "T": tx_ms, "s": spec.symbol, "U": first_id, "u": last_id,
                "pu": prev_id, "b": self.levels(spec, bids), "a": self.levels(spec, asks)}

    def book_ticker(self, spec: SymbolSpec, update_id: int, bid, ask, event_ms: int, tx_ms: int) -> dict:
        bp, bq = bid if bid else (0, 0)
        ap, aq = ask if ask else (0, 0)
        if self.market == SPOT:
            return {"u": update_id, "s": spec.symbol, "b": self.px(spec, bp), "B": self.qty(spec, bq),
                    "a": self.px(spec, ap), "A": self.qty(spec, aq)}
        return {"e": "bookTicker", "u": update_id, "s": spec.symbol, "b": self.px(spec, bp), "B": self.qty(spec, bq),
                "a": self.px(spec, ap), "A": self.qty(spec, aq), "T": tx_ms, "E": event_ms}

    def trade(self, spec: SymbolSpec, t: Trade, event_ms: int) -> dict:
        buyer_maker = t.taker_side != BUY
        if self.market == SPOT:
            return {"e": "trade", "E": event_ms, "s": spec.symbol, "t": t.trade_id, "p": self.px(spec, t.price),
                    "q": self.qty(spec, t.qty), "T": t.time, "m": buyer_maker, "M": True}
        return {"e": "trade", "E": event_ms, "s": spec.symbol, "t": t.trade_id, "p": self.px(spec, t.price),
                "q": self.qty(spec, t.qty), "T": t.time, "m": buyer_maker}

    def agg_trade(self, spec: SymbolSpec, agg_id: int, trades: list[Trade], event_ms: int) -> dict:
        first, last = trades[0], trades[-1]
        qty = sum(t.qty for t in trades)
        buyer_maker = first.taker_side != BUY
        if self.market == SPOT:
            return {"e": "aggTrade", "E": event_ms, "s": spec.symbol, "a": agg_id, "p": self.px(spec, first.price),
                    "q": self.qty(spec, qty), "f": first.trade_id, "l": last.trade_id, "T": last.time,
                    "m": buyer_maker, "M": True}
        return {"e": "aggTrade", "E": event_ms, "a": agg_id, "s": spec.symbol, "p": self.px(spec, first.price),
                "q": self.qty(spec, qty), "f": first.trade_id, "l": last.trade_id, "T": last.time, "m": buyer_maker}

    def kline(self, spec: SymbolSpec, k: "Kline", event_ms: int, closed: bool) -> dict:
        return {"e": "kline", "E": event_ms, "s": spec.symbol, "k": {
            "t": k.open_time, "T": k.close_time, "s": spec.symbol, "i": k.interval, "f": k.first_trade,
            "L": k.last_trade, "o": self.px(spec, k.open), "c": self.px(spec, k.close), "h": self.px(spec, k.high),
            "l": self.px(spec, k.low), "v": self.qty(spec, k.volume), "n": k.trades, "x": closed,
            "q": self.notional(spec, k.quote_volume), "V": self.qty(spec, k.taker_volume),
            "Q": self.notional(spec, k.taker_quote_volume), "B": "0"}}

    def kline_row(self, spec: SymbolSpec, k: "Kline") -> list:
        """One row of GET klines."""
        return [k.open_time, self.px(spec, k.open), self.px(spec, k.high), self.px(spec, k.low), self.px(spec, k.close),
                self.qty(spec, k.volume), k.close_time, self.notional(spec, k.quote_volume), k.trades,
                self.qty(spec, k.taker_volume), self.notional(spec, k.taker_quote_volume), "0"]

    def mark_price(self, spec: SymbolSpec, mark: int, index: int, funding_rate: str, next_funding_ms: int,
                   event_ms: int) -> dict:
        return {"e": "markPriceUpdate", "E": event_ms, "s": spec.symbol, "p": fmt_raw(mark, spec.price_dp, 8),
                "i": fmt_raw(index, spec.price_dp, 8), "P": fmt_raw(mark, spec.price_dp, 8), "r": funding_rate,
                "T": next_funding_ms}

    # ------------------------------------------------------------------------------ user data

    def execution_report(self, order: Order, exec_type: str, fill: Fill | None, event_ms: int,
                         reject_reason: str = "NONE") -> dict:
        """Spot `executionReport` (https://developers.binance.com/docs/binance-spot-api-docs/user-data-stream)."""
        spec = self.engine.specs[order.symbol]
        last_qty = fill.qty if fill else 0
        last_px = fill.price if fill else 0
        # A cancel reports the cancel request's id in "c" and the order's own id in "C".
        if exec_type == "CANCELED":
            c, orig = order.orig_client_id or order.client_id, order.client_id
        else:
            c, orig = order.client_id, ""
        msg = {
            "e": "executionReport", "E": event_ms, "s": order.symbol, "c": c,
            "S": SIDE_NAMES[order.side], "o": order.type, "f": order.tif, "q": self.qty(spec, order.qty),
            "p": self.px(spec, order.price), "P": self.px(spec, 0), "F": self.qty(spec, 0), "g": -1,
            "C": orig,
            "x": exec_type, "X": order.status, "r": reject_reason, "i": order.order_id,
            "l": self.qty(spec, last_qty), "z": self.qty(spec, order.filled), "L": self.px(spec, last_px),
            "n": self.amount(fill.commission) if fill else "0", "N": fill.commission_asset if fill else None,
            "T": order.update_time, "t": fill.trade_id if fill else -1, "I": order.order_id * 2 + (1 if fill else 0),
            "w": order.is_open() and order.working_time >= 0, "m": bool(fill and fill.maker), "M": False,
            "O": order.time, "Z": self.notional(spec, order.quote_filled),
            "Y": self.notional(spec, fill.quote if fill else 0),
            "Q": self.notional(spec, order.quote_qty),
        }
        if order.working_time >= 0:
            msg["W"] = order.working_time
        msg["V"] = "NONE"
        return msg

    def account_position(self, assets, event_ms: int) -> dict:
        """Spot `outboundAccountPosition`: the assets this change touched."""
        b = self.engine.balances
        return {"e": "outboundAccountPosition", "E": event_ms, "u": self.engine.account_update_time,
                "B": [{"a": a, "f": self.amount(b[a][0]), "l": self.amount(b[a][1])} for a in assets]}

    def order_trade_update(self, order: Order, exec_type: str, fill: Fill | None, event_ms: int) -> dict:
        """USD-M `ORDER_TRADE_UPDATE`
        (https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Order-Update)."""
        spec = self.engine.specs[order.symbol]
        o = {
            "s": order.symbol, "c": order.client_id, "S": SIDE_NAMES[order.side], "o": order.type, "f": order.tif,
            "q": self.qty(spec, order.qty), "p": self.px(spec, order.price), "ap": self.avg_price(spec, order),
            "sp": "0", "x": exec_type, "X": order.status, "i": order.order_id,
            "l": self.qty(spec, fill.qty if fill else 0), "z": self.qty(spec, order.filled),
            "L": self.px(spec, fill.price if fill else 0),
        }
        if fill:  # "will not push if no commission"
            o["N"] = fill.commission_asset
            o["n"] = self.amount(fill.commission)
        o.update({
            "T": order.update_time, "t": fill.trade_id if fill else 0,
            "b": "0", "a": "0", "m": bool(fill and fill.maker), "R": order.reduce_only, "wt": "CONTRACT_PRICE",
            "ot": order.type, "ps": "BOTH", "cp": False, "rp": self.amount(fill.realized_pnl if fill else 0),
            "pP": False, "si": 0, "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0,
        })
        # b / a: the account's open bid / ask notional on this symbol after the event
        bid = ask = 0
        for oo in self.engine.open_orders(order.symbol):
            if oo.side == BUY:
                bid += oo.price * oo.remaining
            else:
                ask += oo.price * oo.remaining
        o["b"], o["a"] = self.notional(spec, bid), self.notional(spec, ask)
        return {"e": "ORDER_TRADE_UPDATE", "E": event_ms, "T": order.update_time, "o": o}

    def position_entry(self, symbol: str) -> dict:
        spec = self.engine.specs[symbol]
        pos = self.engine.positions[symbol]
        return {"s": symbol, "pa": self.qty(spec, pos.amount), "ep": self.entry_price(symbol),
                "bep": self.entry_price(symbol), "cr": self.amount(pos.realized),
                "up": self.amount(self.engine.unrealized(symbol)), "mt": "cross", "iw": "0", "ps": "BOTH"}

    def entry_price(self, symbol: str) -> str:
        spec = self.engine.specs[symbol]
        pos = self.engine.positions[symbol]
        if not pos.amount:
            return "0.0"
        # cost / |amount| is a price at price_dp; written with 8 decimals, rounded down
        raw = pos.cost * 10 ** (ASSET_DP - spec.price_dp) // abs(pos.amount) if ASSET_DP >= spec.price_dp else 0
        return fmt_raw(raw, ASSET_DP)

    def account_update(self, symbols, event_ms: int, tx_ms: int, reason: str = "ORDER") -> dict:
        """USD-M `ACCOUNT_UPDATE`: the margin balance and the positions this event changed."""
        wallet = self.engine.balances["USDT"][0]
        return {"e": "ACCOUNT_UPDATE", "E": event_ms, "T": tx_ms, "a": {
            "m": reason,
            "B": [{"a": "USDT", "wb": self.amount(wallet), "cw": self.amount(wallet), "bc": "0"}],
            "P": [self.position_entry(s) for s in symbols]}}


class Kline:
    __slots__ = ("interval", "open_time", "close_time", "open", "high", "low", "close", "volume", "quote_volume",
                 "taker_volume", "taker_quote_volume", "trades", "first_trade", "last_trade")

    def __init__(self, interval: str, open_time: int, close_time: int, price: int):
        self.interval = interval
        self.open_time = open_time
        self.close_time = close_time
        self.open = self.high = self.low = self.close = price
        self.volume = self.quote_volume = self.taker_volume = self.taker_quote_volume = 0
        self.trades = 0
        self.first_trade = self.last_trade = -1

    def add(self, t: Trade):
        if self.trades == 0:
            self.open = self.high = self.low = t.price
            self.first_trade = t.trade_id
        self.high = max(self.high, t.price)
        self.low = min(self.low, t.price)
        self.close = t.price
        self.volume += t.qty
        self.quote_volume += t.price * t.qty
        if t.taker_side == BUY:
            self.taker_volume += t.qty
            self.taker_quote_volume += t.price * t.qty
        self.trades += 1
        self.last_trade = t.trade_id


INTERVALS_MS = {"1s": 1000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
                "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
                "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000}


class KlineSeries:
    """Klines of one symbol and interval, built from trades; keeps the last `keep` closed ones."""

    def __init__(self, interval: str, keep: int = 1500):
        self.interval = interval
        self.ms = INTERVALS_MS[interval]
        self.keep = keep
        self.closed: list[Kline] = []
        self.current: Kline | None = None
        self.dirty = False

    def roll(self, now_ms: int) -> Kline | None:
        """Close the current kline when its time is over; returns the closed one."""
        cur = self.current
        if cur is not None and now_ms > cur.close_time:
            self.closed.append(cur)
            if len(self.closed) > self.keep:
                del self.closed[: len(self.closed) - self.keep]
            self.current = None
            return cur
        return None

    def add(self, t: Trade) -> Kline | None:
        closed = self.roll(t.time)
        if self.current is None:
            start = t.time // self.ms * self.ms
            self.current = Kline(self.interval, start, start + self.ms - 1, t.price)
        self.current.add(t)
        self.dirty = True
        return closed

    def history(self, start: int | None, end: int | None, limit: int) -> list[Kline]:
        rows = self.closed + ([self.current] if self.current else [])
        rows = [k for k in rows if (start is None or k.open_time >= start) and (end is None or k.open_time <= end)]
        return rows[:limit] if start is not None else rows[-limit:]


