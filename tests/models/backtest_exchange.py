"""Plain-Python reference of the backtest's simulated exchange (extrema._core.backtest.SimExchange) with
zero latency: the same matching rules written the obvious way, for the differential test.

Rules (see _core/backtest.pyx): a marketable order walks the book (taker, one fill per level); GTC
remainders rest behind everything at their price; a trade at the order's price consumes the queue ahead
first and the rest fills the order; a trade through the price, or the other side of the book moving
through it (checked at the end of a book message), fills it fully; the queue ahead never exceeds the
level's size; the probabilistic model moves the queue by the expected share of non-trade decreases.

Conditional orders (submit with kind "stop_market", "stop_limit", "tp_market", "tp_limit" and a stop price):
refused when the last trade price already meets the condition; otherwise held until a trade meets it
(a stop buys at price >= stop and sells at <= stop, a take-profit the other way round), checked after the
trade has filled resting orders, oldest first; then a market order walks the whole book (the remainder
expires) and a limit order is submitted as a GTC limit.
"""
import math


class ReferenceExchange:
    def __init__(self, lot, queue="conservative", n=2.0, function="power"):
        self.lot = lot
        self.queue = queue
        self.n = n
        self.function = function
        self.bids = {}
        self.asks = {}
        self.resting = []          # dicts, newest first (the compiled list pushes at the head)
        self.fills = []            # (order index, price, qty, maker)
        self.last = None           # last trade price
        self.armed = []            # conditional orders, oldest first
        self.rejected = []         # order indexes refused at arrival

    def _side(self, ask):
        return self.asks if ask else self.bids

    def _f(self, x):
        x = max(x, 0.0)
        return x ** self.n if self.function == "power" else math.log1p(x)

    def book(self, ask, price, qty, last):
        side = self._side(ask)
        prev = side.get(price, 0)
        if qty:
            side[price] = qty
        else:
            side.pop(price, None)
        if prev != qty:
            for o in self.resting:
                if o["side"] == (1 if ask else 0) and o["price"] == price:
                    chg = prev - qty
                    if chg > 0 and o["traded"] > 0:
                        chg = 0 if chg <= o["traded"] else chg - o["traded"]
                    o["traded"] = 0
                    if self.queue == "probabilistic" and chg > 0:
                        front = o["front"]
                        back = prev - front
                        fb, ff = self._f(back), self._f(front)
                        p = 1.0 if fb + ff <= 0 else fb / (fb + ff)
                        est = front - (1.0 - p) * chg
                        if back - p * chg < 0:
                            est += back - p * chg
                        o["front"] = est
                    o["front"] = min(o["front"], float(qty))
                    o["front"] = max(o["front"], 0.0)
        if last:
            self._cross()

    def _cross(self):
        bid = max(self.bids) if self.bids else None
        ask = min(self.asks) if self.asks else None
        for o in list(self.resting):
            if (o["side"] == 0 and ask is not None and ask < o["price"]) or \
                    (o["side"] == 1 and bid is not None and bid > o["price"]):
                leaves = o["qty"] - o["filled"]
                leaves -= leaves % self.lot
                if leaves > 0:
                    self._fill(o, o["price"], leaves, True)
                if o in self.resting:
                    self.resting.remove(o)

    def trade(self, price, qty, seller_aggressor):
        for o in list(self.resting):
            if o["side"] == 0 and seller_aggressor and price <= o["price"]:
                pass
            elif o["side"] == 1 and not seller_aggressor and price >= o["price"]:
                pass
            else:
                continue
            leaves = o["qty"] - o["filled"]
            if price != o["price"]:
                q = leaves
            else:
                o["traded"] += qty
                o["front"] -= qty
                if o["front"] >= 0:
                    continue
                q = min(int(-o["front"]), leaves)
                o["front"] = 0.0
            q -= q % self.lot
            if q > 0:
                self._fill(o, o["price"], q, True)
        self.last = price
        for o in list(self.armed):
            if self._triggers(o, price):
                self.armed.remove(o)
                if o["kind"].endswith("market"):
                    self._walk(o, None)
                else:
                    self.submit(o["index"], o["side"], o["price"], o["qty"])

    @staticmethod
    def _triggers(o, px):
        if o["kind"].startswith("stop"):
            return px >= o["stop"] if o["side"] == 0 else px <= o["stop"]
        return px <= o["stop"] if o["side"] == 0 else px >= o["stop"]

    def _fill(self, o, price, qty, maker):
        o["filled"] += qty
        self.fills.append((o["index"], price, qty, maker))
        if o["filled"] >= o["qty"] and o in self.resting:
            self.resting.remove(o)

    def _walk(self, o, limit):
        """Take from the opposite side up to limit (None: any price), one fill per level."""
        levels = sorted(self.asks.items()) if o["side"] == 0 else sorted(self.bids.items(), reverse=True)
        for px, q in levels:
            if limit is not None and ((o["side"] == 0 and px > limit) or (o["side"] == 1 and px < limit)):
                break
            take = min(q, o["qty"] - o["filled"])
            take -= take % self.lot
            if take > 0:
                self._fill(o, px, take, False)
            if o["filled"] >= o["qty"]:
                return

    def submit(self, index, side, price, qty, kind="limit", stop=None):
        """An order (raw price / size) arriving now: a GTC limit, or a conditional one (module doc)."""
        o = {"index": index, "side": side, "price": price, "qty": qty, "filled": 0, "front": 0.0, "traded": 0,
             "kind": kind, "stop": stop}
        if kind != "limit":
            if self.last is not None and self._triggers(o, self.last):
                self.rejected.append(index)
            else:
                self.armed.append(o)
            return
        self._walk(o, price)
        if o["filled"] >= qty:
            return
        o["front"] = float((self.bids if side == 0 else self.asks).get(price, 0))
        self.resting.insert(0, o)
