"""Plain-Python reference of positions, P&L, fees and balances (the oracle for
extrema._core.portfolio.Portfolio). Nothing here imports extrema.

Conventions (portfolio.pyx's module doc): sizes and prices are raw ints; price x size amounts are exact
ints at pp + sp decimals ("native"); fees and balances are ints at 18 decimals; every division truncates
toward zero (`tdiv`). Lots are plain lists; FIFO closes from the front, LIFO from the back.
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction

EXTERNAL, ALL = 64, 65
MONEY = 18


def tdiv(a, b):
    """a / b truncated toward zero (C semantics), b != 0."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q


def scale10(x, e):
    return x * 10 ** e if e >= 0 else tdiv(x, 10 ** -e)


@dataclasses.dataclass
class Spec:
    price_precision: int
    size_precision: int
    multiplier: int = 1          # raw
    mult_precision: int = 0
    cash: str = "spot"           # "spot" | "premium" | "margin"
    market: int = 0
    base: str = "BTC"
    quote: str = "USDT"

    @property
    def value_factor(self):
        return float(Fraction(self.multiplier, 10 ** (self.price_precision + self.size_precision + self.mult_precision)))

    def to_money(self, native):
        return scale10(native * self.multiplier,
                       MONEY - self.price_precision - self.size_precision - self.mult_precision)


@dataclasses.dataclass
class Pos:
    qty: int = 0
    cost: int = 0
    realized: int = 0
    fees_quote: int = 0
    fees_other: float = 0.0
    bought: int = 0
    sold: int = 0
    fills: int = 0
    lots: list = dataclasses.field(default_factory=list)   # [price, size]


class ReferencePortfolio:
    def __init__(self, specs: dict[int, Spec], method="average", asset_precision=None):
        self.specs = specs
        self.method = method
        self.positions: dict[tuple[int, int], Pos] = {}
        self.touch_order: dict[int, list[int]] = {}
        self.balances: dict[tuple[int, str], int] = {}
        self.rates: dict[str, float] = {}
        self.asset_precision = dict(asset_precision or {})   # fee asset code -> precision
        self.marks: dict[int, int] = {}          # instrument -> 2 x explicit mark price
        self.last_fill: dict[int, int] = {}      # instrument -> 2 x last fill price
        self.books: dict[int, object] = {}       # instrument -> reference book (best_bid_raw / best_ask_raw)
        self.quote_mid: dict[int, int] = {}      # instrument -> bid + ask of the latest quote
        self.last_trade: dict[int, int] = {}     # instrument -> 2 x latest trade price

    def pos(self, owner, iid):
        key = (owner, iid)
        if key not in self.positions:
            self.positions[key] = Pos()
            self.touch_order.setdefault(owner, []).append(iid)
        return self.positions[key]

    def rate(self, asset):
        return self.rates.get(asset, 1.0)

    def _fill_one(self, p, price, f):
        q = abs(f)
        realized = 0
        close_q = 0
        if p.qty != 0 and (p.qty > 0) != (f > 0):
            held = abs(p.qty)
            close_q = min(q, held)
            s = 1 if p.qty > 0 else -1
            if self.method == "average":
                removed = tdiv(p.cost * close_q, held)
                realized = s * price * close_q - removed
                p.cost -= removed
            else:
                take = close_q
                while take:
                    lot = p.lots[0] if self.method == "fifo" else p.lots[-1]
                    t = min(lot[1], take)
                    realized += s * (price - lot[0]) * t
                    p.cost -= s * lot[0] * t
                    lot[1] -= t
                    take -= t
                    if lot[1] == 0:
                        p.lots.remove(lot) if self.method == "fifo" else p.lots.pop()
            p.qty -= s * close_q
            p.realized += realized
        rest = q - close_q
        if rest:
            signed = rest if f > 0 else -rest
            p.qty += signed
            p.cost += price * signed
            if self.method != "average":
                p.lots.append([price, rest])
        if f > 0:
            p.bought += q
        else:
            p.sold += q
        p.fills += 1
        return realized

    def fill(self, owner, iid, side, price, qty, fee=0, fee_asset=None):
        """fee_asset None: the quote asset at the price precision; else an asset code."""
        spec = self.specs[iid]
        po = self.pos(owner, iid)
        pa = self.pos(ALL, iid)
        fee_q, fee_other, fee_m18, asset = 0, 0.0, 0, None
        if fee:
            if fee_asset is None:
                asset, fp = spec.quote, spec.price_precision
            else:
                asset, fp = fee_asset, self.asset_precision[fee_asset]
            fee_m18 = scale10(fee, MONEY - fp)
            if asset == spec.quote:
                fee_q = fee_m18
            elif asset == spec.base:
                fee_q = scale10(fee_m18 * price, -spec.price_precision)
            else:
                fee_other = fee_m18 / 1e18 * self.rate(asset)
        f = qty if side == 0 else -qty
        self._fill_one(po, price, f)
        r_all = self._fill_one(pa, price, f)
        for p in (po, pa):
            p.fees_quote += fee_q
            p.fees_other += fee_other
        self.last_fill[iid] = 2 * price
        m = spec.market
        bal = self.balances
        if spec.cash == "spot":
            bal[(m, spec.base)] = bal.get((m, spec.base), 0) + scale10(f, MONEY - spec.size_precision)
            bal[(m, spec.quote)] = bal.get((m, spec.quote), 0) - spec.to_money(price * f)
        elif spec.cash == "premium":
            bal[(m, spec.quote)] = bal.get((m, spec.quote), 0) - spec.to_money(price * f)
        else:
            bal[(m, spec.quote)] = bal.get((m, spec.quote), 0) + spec.to_money(r_all)
        if fee:
            bal[(m, asset)] = bal.get((m, asset), 0) - fee_m18

    def mark2(self, iid):
        """2 x the mark: explicit mark, book mid, quote mid, last trade, last fill (first that exists)."""
        if self.marks.get(iid):
            return self.marks[iid]
        book = self.books.get(iid)
        if book is not None and book.best_bid_raw is not None and book.best_ask_raw is not None:
            return book.best_bid_raw + book.best_ask_raw
        for source in (self.quote_mid, self.last_trade, self.last_fill):
            if source.get(iid):
                return source[iid]
        return None

    def unrealized(self, owner, iid):
        p = self.positions[(owner, iid)]
        m2 = self.mark2(iid)
        if m2 is None:
            return 0
        return tdiv(p.qty * m2 - 2 * p.cost, 2)

    def equity(self, owner):
        total = 0.0
        for iid in self.touch_order.get(owner, []):
            p = self.positions[(owner, iid)]
            spec = self.specs[iid]
            pnl = p.realized
            if p.qty != 0 and self.mark2(iid) is not None:
                pnl += self.unrealized(owner, iid)
            rq = self.rate(spec.quote)
            total += float(pnl) * spec.value_factor * rq - float(p.fees_quote) / 1e18 * rq - p.fees_other
        return total
