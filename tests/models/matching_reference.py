"""Plain reference of the simulator's matching rules (extrema.sim.matching), for differential tests.

Deliberately naive: every resting order is a row in one list, matching scans the whole list for the
best price and the earliest arrival, and spot balances are recomputed step by step with the same
integer rules. It covers what the differential test drives: background liquidity (add / cancel newest
first / market flow), user LIMIT GTC / IOC / FOK and MARKET orders, cancels, fees and spot balances.
"""

from __future__ import annotations

BUY, SELL = 0, 1
PPM = 1_000_000
ASSET_DP = 8


class RefOrder:
    def __init__(self, seq, owner, side, price, qty, oid=None):
        self.seq, self.owner, self.side, self.price, self.qty = seq, owner, side, price, qty
        self.filled = 0
        self.oid = oid
        self.status = "NEW"
        self.locked = 0

    @property
    def remaining(self):
        return self.qty - self.filled


class ReferenceMatching:
    """One spot symbol with price_dp / qty_dp decimals; balances as {asset: [free, locked]} at 8 dp."""

    def __init__(self, price_dp, qty_dp, base, quote, balances, maker_fee, taker_fee):
        self.pdp, self.qdp = price_dp, qty_dp
        self.base, self.quote = base, quote
        self.balances = {a: list(v) for a, v in balances.items()}
        self.maker_fee, self.taker_fee = maker_fee, taker_fee
        self.resting: list[RefOrder] = []
        self.seq = 0
        self.next_oid = 1
        self.orders: dict[int, RefOrder] = {}

    # scale helpers (same integer rules as the engine)
    def _to8(self, raw, dp):
        return raw * 10 ** (ASSET_DP - dp) if dp <= ASSET_DP else raw // 10 ** (dp - ASSET_DP)

    def levels(self, side):
        out = {}
        for o in self.resting:
            if o.side == side:
                out[o.price] = out.get(o.price, 0) + o.remaining
        return out

    def _best_maker(self, taker_side, limit):
        side = SELL if taker_side == BUY else BUY
        cands = [o for o in self.resting if o.side == side and
                 (limit is None or (o.price <= limit if taker_side == BUY else o.price >= limit))]
        if not cands:
            return None
        best_price = min(o.price for o in cands) if side == SELL else max(o.price for o in cands)
        return min((o for o in cands if o.price == best_price), key=lambda o: o.seq)

    def _available(self, taker_side, limit):
        side = SELL if taker_side == BUY else BUY
        return sum(o.remaining for o in self.resting if o.side == side and
                   (limit is None or (o.price <= limit if taker_side == BUY else o.price >= limit)))

    def _settle(self, o: RefOrder, price, qty, maker):
        rate = self.maker_fee if maker else self.taker_fee
        quote_amt = self._to8(price * qty, self.pdp + self.qdp)
        base_amt = self._to8(qty, self.qdp)
        b, q = self.balances[self.base], self.balances[self.quote]
        if o.side == BUY:
            spend = min(quote_amt, o.locked)
            o.locked -= spend
            q[1] -= spend
            b[0] += base_amt - base_amt * rate // PPM
        else:
            spend = min(base_amt, o.locked)
            o.locked -= spend
            b[1] -= spend
            q[0] += quote_amt - quote_amt * rate // PPM
        if o.remaining == 0:
            self._release(o)

    def _release(self, o):
        asset = self.quote if o.side == BUY else self.base
        self.balances[asset][1] -= o.locked
        self.balances[asset][0] += o.locked
        o.locked = 0

    def _match(self, taker: RefOrder, limit):
        while taker.remaining > 0:
            maker = self._best_maker(taker.side, limit)
            if maker is None:
                return
            qty = min(taker.remaining, maker.remaining)
            price = maker.price
            taker.filled += qty
            maker.filled += qty
            for o in (taker, maker):
                o.status = "FILLED" if o.remaining == 0 else "PARTIALLY_FILLED"
            if maker.remaining == 0:
                self.resting.remove(maker)
            if maker.owner == "user":
                self._settle(maker, price, qty, True)
            if taker.owner == "user":
                self._settle(taker, price, qty, False)

    def add_liquidity(self, side, price, qty):
        self.seq += 1
        o = RefOrder(self.seq, "bg", side, price, qty)
        self._match(o, price)
        if o.remaining > 0:
            self.resting.append(o)

    def cancel_liquidity(self, side, price, qty):
        for o in sorted((o for o in self.resting if o.side == side and o.price == price and o.owner == "bg"),
                        key=lambda o: -o.seq):
            take = min(o.remaining, qty)
            o.qty -= take
            qty -= take
            if o.remaining == 0:
                self.resting.remove(o)
            if qty == 0:
                break

    def market_flow(self, taker_side, qty):
        self.seq += 1
        self._match(RefOrder(self.seq, "bg", taker_side, 0, qty), None)

    def submit(self, side, type_, qty, price=None, tif="GTC"):
        """Returns (order id, status) or a rejection code."""
        if type_ == "MARKET":
            opp = self.levels(SELL if side == BUY else BUY)
            got = cost = 0
            for p in sorted(opp, reverse=side == SELL):
                take = min(opp[p], qty - got)
                got += take
                cost += take * p
                if got >= qty:
                    break
            notional = cost
        else:
            notional = price * qty
        if side == BUY:
            need = self._to8(notional, self.pdp + self.qdp)
            if self.pdp + self.qdp > ASSET_DP and notional % 10 ** (self.pdp + self.qdp - ASSET_DP):
                need += 1
            asset = self.quote
        else:
            need = self._to8(qty, self.qdp)
            asset = self.base
        if need > self.balances[asset][0]:
            return -2010
        self.balances[asset][0] -= need
        self.balances[asset][1] += need
        self.seq += 1
        o = RefOrder(self.seq, "user", side, price or 0, qty, self.next_oid)
        o.locked = need
        self.orders[self.next_oid] = o
        self.next_oid += 1
        if tif == "FOK" and self._available(side, price) < qty:
            o.status = "EXPIRED"
            self._release(o)
            return o.oid
        self._match(o, price if type_ != "MARKET" else None)
        if o.remaining > 0:
            if type_ == "MARKET" or tif in ("IOC", "FOK"):
                o.status = "EXPIRED"
                self._release(o)
            else:
                self.resting.append(o)
        return o.oid

    def cancel(self, oid):
        o = self.orders.get(oid)
        if o is None or o.status not in ("NEW", "PARTIALLY_FILLED"):
            return -2011
        self.resting.remove(o)
        o.status = "CANCELED"
        self._release(o)
        return oid
