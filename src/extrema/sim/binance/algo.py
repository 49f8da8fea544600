"""USD-M conditional orders in the simulator, as Binance's algo service keeps them (since 2025-12 the
order endpoint answers -4120 for these types).

https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Algo-Order
https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Algo-Order-Update

An algo order waits (NEW) until its trigger condition holds on its working price - the last trade price
(CONTRACT_PRICE, the default) or the mark price (MARK_PRICE): STOP / STOP_MARKET buy when the price is at
or above the trigger, sell at or below; TAKE_PROFIT / TAKE_PROFIT_MARKET the other way round. It then
places its order in the matching engine under the same client id (TRIGGERED, `ai` = that order's id;
REJECTED when the engine refuses it) and is FINISHED once that order is done. TRAILING_STOP_MARKET is not
simulated (refused with -1116). Every change is an ALGO_UPDATE on the user data stream.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..matching import BUY, SIDE_NAMES, Reject

TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT")


@dataclass
class AlgoOrder:
    algo_id: int
    client_id: str
    symbol: str
    side: int
    type: str
    qty: int
    price: int                  # 0 for the market variants
    trigger: int
    tif: str
    working_type: str
    reduce_only: bool
    time: int
    status: str = "NEW"
    update_time: int = 0
    trigger_time: int = 0
    order_id: int = 0           # the triggered order in the matching engine

    def triggered_by(self, price: int) -> bool:
        stop = self.type in ("STOP", "STOP_MARKET")
        rising = (self.side == BUY) == stop      # stop buys and take-profit sells fire on a rise
        return price >= self.trigger if rising else price <= self.trigger


class AlgoBook:
    """The account's algo orders (open and finished) and their triggering."""

    def __init__(self, engine):
        self.engine = engine
        self.orders: dict[int, AlgoOrder] = {}
        self.next_id = 1_000_000_000_000_001   # Binance's algo ids are far from its order ids (16 digits)
        self.updates: list[AlgoOrder] = []       # snapshots to publish as ALGO_UPDATE

    def _changed(self, a: AlgoOrder, status: str):
        a.status = status
        a.update_time = self.engine._now()
        self.updates.append(AlgoOrder(**a.__dict__))

    def find(self, algo_id=None, client_id=None) -> AlgoOrder | None:
        if algo_id is not None:
            return self.orders.get(algo_id)
        for a in reversed(list(self.orders.values())):
            if a.client_id == client_id:
                return a
        return None

    def open(self, symbol=None) -> list[AlgoOrder]:
        return [a for a in self.orders.values() if a.status == "NEW" and (symbol is None or a.symbol == symbol)]

    def place(self, symbol, side, type_, qty, price, trigger, tif, working_type, reduce_only, client_id) -> AlgoOrder:
        if type_ not in TYPES:
            raise Reject(-1116, "Invalid orderType.")
        if trigger is None:
            raise Reject(-1102, "Mandatory parameter 'triggerPrice' was not sent, was empty/null, or malformed.")
        if qty is None:
            raise Reject(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
        limit = type_ in ("STOP", "TAKE_PROFIT")
        if limit and price is None:
            raise Reject(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
        if not limit and price is not None:
            raise Reject(-1106, "Parameter 'price' sent when not required.")
        spec = self.engine.spec(symbol)
        self.engine._check_filters(spec, price, qty, not limit, reduce_only)
        if any(a.client_id == client_id for a in self.orders.values() if a.status in ("NEW", "TRIGGERED")):
            raise Reject(-4116, "ClientOrderId is duplicated.")
        now = self.engine._now()
        a = AlgoOrder(self.next_id, client_id, symbol, side, type_, qty, price or 0, trigger, tif or "GTC",
                      working_type, reduce_only, now, update_time=now)
        self.next_id += 1
        self.orders[a.algo_id] = a
        self._changed(a, "NEW")
        return a

    def cancel(self, algo_id=None, client_id=None) -> AlgoOrder:
        a = self.find(algo_id, client_id)
        if a is None or a.status != "NEW":
            raise Reject(-2011, "Unknown order sent.")
        self._changed(a, "CANCELED")
        return a

    def check(self):
        """Trigger what the current prices reach; finish what the matching engine is done with."""
        e = self.engine
        for a in list(self.orders.values()):
            if a.status == "TRIGGERED":
                o = e.orders.get(a.order_id)
                if o is None or not o.is_open():
                    self._changed(a, "FINISHED")
                continue
            if a.status != "NEW":
                continue
            price = e.mark_price(a.symbol) if a.working_type == "MARK_PRICE" else e.last_prices.get(a.symbol)
            if price is None or not a.triggered_by(price):
                continue
            a.trigger_time = e._now()
            limit = a.type in ("STOP", "TAKE_PROFIT")
            try:
                order, _ = e.submit(a.symbol, a.side, "LIMIT" if limit else "MARKET", qty=a.qty,
                                    price=a.price if limit else None, tif=a.tif if limit else None,
                                    client_id=a.client_id, reduce_only=a.reduce_only)
            except Reject:
                self._changed(a, "REJECTED")
                continue
            a.order_id = order.order_id
            self._changed(a, "TRIGGERED")
            if not order.is_open():
                self._changed(a, "FINISHED")

    def drain(self) -> list[AlgoOrder]:
        out, self.updates = self.updates, []
        return out

    def view(self, fmt, a: AlgoOrder) -> dict:
        """The algo order as New / Query Algo Order and openAlgoOrders answer it."""
        spec = self.engine.specs[a.symbol]
        o = self.engine.orders.get(a.order_id) if a.order_id else None
        return {"algoId": a.algo_id, "clientAlgoId": a.client_id, "algoType": "CONDITIONAL", "orderType": a.type,
                "symbol": a.symbol, "side": SIDE_NAMES[a.side], "positionSide": "BOTH", "timeInForce": a.tif,
                "quantity": fmt.qty(spec, a.qty), "algoStatus": a.status,
                "actualOrderId": str(a.order_id) if a.order_id else "",
                "actualPrice": fmt.avg_price(spec, o) if o is not None and o.filled else "0",
                "triggerPrice": fmt.px(spec, a.trigger), "price": fmt.px(spec, a.price),
                "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": a.working_type, "priceMatch": "NONE",
                "closePosition": False, "priceProtect": False, "reduceOnly": a.reduce_only,
                "createTime": a.time, "updateTime": a.update_time, "triggerTime": a.trigger_time, "goodTillDate": 0}

    def event(self, fmt, a: AlgoOrder, now: int) -> dict:
        """ALGO_UPDATE for one snapshot."""
        spec = self.engine.specs[a.symbol]
        o = self.engine.orders.get(a.order_id) if a.order_id else None
        filled = o.filled if o is not None else 0
        return {"e": "ALGO_UPDATE", "T": a.update_time, "E": now, "o": {
            "caid": a.client_id, "aid": a.algo_id, "at": "CONDITIONAL", "o": a.type, "s": a.symbol,
            "S": SIDE_NAMES[a.side], "ps": "BOTH", "f": a.tif, "q": fmt.qty(spec, a.qty), "X": a.status,
            "ai": str(a.order_id) if a.order_id else "",
            "ap": fmt.avg_price(spec, o) if o is not None and filled else "0", "aq": fmt.qty(spec, filled),
            "act": o.type if o is not None else "0", "tp": fmt.px(spec, a.trigger), "p": fmt.px(spec, a.price),
            "V": "EXPIRE_MAKER", "wt": a.working_type, "pm": "NONE", "cp": False, "pP": False, "R": a.reduce_only,
            "tt": a.trigger_time, "gtd": 0}}
