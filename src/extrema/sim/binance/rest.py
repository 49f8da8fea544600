"""REST endpoints of the simulated Binance markets: parameters, weights, and response bodies.

spot   https://developers.binance.com/docs/binance-spot-api-docs/rest-api (general, market, trading,
       account, user data stream endpoints)
USD-M  https://developers.binance.com/docs/derivatives/usds-margined-futures (market-data, trade,
       account, user-data-streams REST endpoints)

Every handler takes (simulator, params) and returns the JSON body (or (body, http status)); a refused
request raises Reject with Binance's code and message. Weights are the documented request weights.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Callable

from ..matching import (ASSET_DP, SIDE_NAMES, SPOT, USDM, Order, Reject, SymbolSpec, decimals_of, fmt_raw,
                        parse_raw)
from ..replay import CaptureReplay
from .formats import INTERVALS_MS

NONE, USER_STREAM, SIGNED = 0, 1, 2
# Binance's answer when the matching engine's reply did not come back (spot errors.md -1006); the
# simulator's http_5xx fault sends it.
UNKNOWN_5XX = {"code": -1006, "msg": "An unexpected response was received from the message bus. Execution status "
                                     "unknown."}
_CLIENT_ID_CHARS = set(".ABCDEFGHIJKLMNOPQRSTUVWXYZ:/abcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class Route:
    fn: Callable
    weight: Callable
    security: int = NONE
    orders: int = 0


def w(n: int):
    return lambda sim, params: n


# ------------------------------------------------------------------------------------ parameters

def _mandatory(params: dict, name: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise Reject(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def _symbol(sim, params: dict, required: bool = True) -> SymbolSpec | None:
    if not required and not params.get("symbol"):
        return None
    name = _mandatory(params, "symbol")
    spec = sim.engine.specs.get(name)
    if spec is None:
        raise Reject(-1121, "Invalid symbol.")
    return spec


def _int(params: dict, name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise Reject(-1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.")


def _decimal(sim, spec: SymbolSpec, params: dict, name: str, kind: str) -> int | None:
    """A price / quantity parameter as a raw int, with Binance's precision and filter errors."""
    text = params.get(name)
    if text is None or text == "":
        return None
    whole, dot, frac = text.partition(".")
    if not whole.isdigit() or len(whole) > 20 or (dot and (not frac.isdigit() or len(frac) > 20)):
        raise Reject(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                            "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
    places = decimals_of(text)
    market = sim.market
    if kind == "price":
        dp, wire = spec.price_dp, spec.wire_price_dp(market)
    else:
        dp, wire = spec.qty_dp, spec.wire_qty_dp(market)
    if kind == "quote":
        dp = wire = spec.notional_dp
    if places > max(wire, dp):
        raise Reject(-1111, "Precision is over the maximum defined for this asset.")
    if places > dp:
        if market == SPOT:
            raise Reject(-1013, "Filter failure: PRICE_FILTER" if kind == "price" else "Filter failure: LOT_SIZE")
        raise Reject(-4014, "Price not increased by tick size.") if kind == "price" else \
            Reject(-4023, "Qty not increased by step size.")
    return parse_raw(text, dp)


def _side(params: dict) -> int:
    side = _mandatory(params, "side")
    if side not in SIDE_NAMES:
        raise Reject(-1117, "Invalid side.")
    return SIDE_NAMES.index(side)


def _client_id(params: dict, name: str) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    if len(value) > 36 or not set(value) <= _CLIENT_ID_CHARS:
        raise Reject(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                            "'^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
    return value


def _order_ref(params: dict) -> tuple[int | None, str | None]:
    order_id = _int(params, "orderId")
    client_id = params.get("origClientOrderId") or None
    if order_id is None and client_id is None:
        raise Reject(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    return order_id, client_id


def _bool(params: dict, name: str) -> bool:
    value = params.get(name, "false")
    if value not in ("true", "false", "TRUE", "FALSE", "True", "False"):
        raise Reject(-1100, f"Illegal characters found in parameter '{name}'; legal range is 'true, false'.")
    return value.lower() == "true"


def _new_id() -> str:
    return "web_" + secrets.token_hex(9)


# ------------------------------------------------------------------------------------- market data

def ping(sim, params):
    return {}


def server_time(sim, params):
    return {"serverTime": sim.now_ms()}


def _depth_limit(sim, params) -> int:
    limit = _int(params, "limit", 100 if sim.market == SPOT else 500)
    if not 1 <= limit <= (5000 if sim.market == SPOT else 1000):
        raise Reject(-1100, "Illegal characters found in parameter 'limit'; legal range is "
                            f"'1-{5000 if sim.market == SPOT else 1000}'.")
    return limit


def depth_weight(sim, params) -> int:
    from .server import _depth_weight
    return _depth_weight(sim.market, _depth_limit(sim, params))


def depth(sim, params):
    spec = _symbol(sim, params)
    limit = _depth_limit(sim, params)
    if isinstance(sim.source, CaptureReplay) and spec.symbol in sim.source.snapshots:
        # the recorded snapshot, verbatim (see extrema.sim.replay)
        return RawBody(sim.source.snapshots[spec.symbol].text)
    last_id, bids, asks = sim.engine.book_snapshot(spec.symbol, limit)
    body = {"lastUpdateId": last_id}
    if sim.market == USDM:
        now = sim.now_ms()
        body["E"] = now
        body["T"] = sim.engine.books[spec.symbol].last_change_time or now
    body["bids"] = sim.fmt.levels(spec, bids)
    body["asks"] = sim.fmt.levels(spec, asks)
    return body


class RawBody(str):
    """A response body to send exactly as it is (recorded text)."""


def klines_weight(sim, params) -> int:
    from .server import _klines_weight
    return _klines_weight(sim.market, _int(params, "limit", 500) or 500)


def klines(sim, params):
    spec = _symbol(sim, params)
    interval = _mandatory(params, "interval")
    if interval not in INTERVALS_MS:
        raise Reject(-1120, "Invalid interval.")
    limit = _int(params, "limit", 500)
    if not 1 <= limit <= (1000 if sim.market == SPOT else 1500):
        raise Reject(-1100, "Illegal characters found in parameter 'limit'.")
    series = sim._kline_series(spec.symbol, interval)
    series.roll(sim.now_ms())
    rows = series.history(_int(params, "startTime"), _int(params, "endTime"), limit)
    return [sim.fmt.kline_row(spec, k) for k in rows]


def exchange_info(sim, params):
    lim = sim.limiter.limits
    now = sim.now_ms()
    if sim.market == SPOT:
        rate_limits = [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": lim.weight_per_minute},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": lim.orders_per_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": lim.orders_per_long},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000}]
        symbols = []
        for s in sim.specs:
            p8 = lambda text, dp: fmt_raw(parse_raw(text, dp), dp, 8)  # noqa: E731 - spot writes 8 decimals
            symbols.append({
                "symbol": s.symbol, "status": "TRADING", "baseAsset": s.base, "baseAssetPrecision": 8,
                "quoteAsset": s.quote, "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False, "quoteOrderQtyMarketAllowed": True,
                "allowTrailingStop": False, "cancelReplaceAllowed": True, "amendAllowed": False,
                "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": p8(s.min_price, s.price_dp),
                     "maxPrice": p8(s.max_price, s.price_dp), "tickSize": p8(s.tick, s.price_dp)},
                    {"filterType": "LOT_SIZE", "minQty": p8(s.min_qty, s.qty_dp), "maxQty": p8(s.max_qty, s.qty_dp),
                     "stepSize": p8(s.step, s.qty_dp)},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": p8(s.min_qty, s.qty_dp),
                     "maxQty": p8(s.max_qty, s.qty_dp), "stepSize": p8(s.step, s.qty_dp)},
                    {"filterType": "NOTIONAL", "minNotional": p8(s.min_notional, s.notional_dp),
                     "applyMinToMarket": True, "maxNotional": "9000000.00000000", "applyMaxToMarket": False,
                     "avgPriceMins": 5},
                    {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": sim.engine.max_open_orders}],
                "permissions": [], "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "NONE", "allowedSelfTradePreventionModes": ["NONE"]})
        return {"timezone": "UTC", "serverTime": now, "rateLimits": rate_limits, "exchangeFilters": [],
                "symbols": symbols}
    rate_limits = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": lim.weight_per_minute},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": lim.orders_per_long},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": lim.orders_per_10s}]
    symbols = []
    for s in sim.specs:
        symbols.append({
            "symbol": s.symbol, "pair": s.symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000", "baseAsset": s.base, "quoteAsset": s.quote, "marginAsset": "USDT",
            "pricePrecision": s.wire_price_dp(USDM), "quantityPrecision": s.wire_qty_dp(USDM),
            "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN", "underlyingSubType": [],
            "settlePlan": 0, "triggerProtect": "0.0500", "liquidationFee": "0.012500", "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {"minPrice": s.min_price, "maxPrice": s.max_price, "filterType": "PRICE_FILTER", "tickSize": s.tick},
                {"stepSize": s.step, "filterType": "LOT_SIZE", "maxQty": s.max_qty, "minQty": s.min_qty},
                {"stepSize": s.step, "filterType": "MARKET_LOT_SIZE", "maxQty": s.max_qty, "minQty": s.min_qty},
                {"limit": sim.engine.max_open_orders, "filterType": "MAX_NUM_ORDERS"},
                {"notional": s.min_notional, "filterType": "MIN_NOTIONAL"}],
            "orderTypes": ["LIMIT", "MARKET"], "timeInForce": ["GTC", "IOC", "FOK", "GTX"]})
    return {"timezone": "UTC", "serverTime": now, "futuresType": "U_MARGINED", "rateLimits": rate_limits,
            "exchangeFilters": [], "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": symbols}


# ----------------------------------------------------------------------------------------- spot

def _spot_common(sim, o: Order) -> dict:
    spec = sim.engine.specs[o.symbol]
    f = sim.fmt
    return {"price": f.px(spec, o.price), "origQty": f.qty(spec, o.qty), "executedQty": f.qty(spec, o.filled),
            "origQuoteOrderQty": f.notional(spec, o.quote_qty), "cummulativeQuoteQty": f.notional(spec, o.quote_filled),
            "status": o.status, "timeInForce": o.tif, "type": o.type, "side": SIDE_NAMES[o.side]}


def spot_order_view(sim, o: Order) -> dict:
    """GET /api/v3/order and openOrders rows."""
    spec = sim.engine.specs[o.symbol]
    c = _spot_common(sim, o)
    return {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id,
            "price": c["price"], "origQty": c["origQty"], "executedQty": c["executedQty"],
            "cummulativeQuoteQty": c["cummulativeQuoteQty"], "status": o.status, "timeInForce": o.tif,
            "type": o.type, "side": c["side"], "stopPrice": sim.fmt.px(spec, 0), "icebergQty": sim.fmt.qty(spec, 0),
            "time": o.time, "updateTime": o.update_time, "isWorking": o.working_time >= 0,
            "workingTime": o.working_time if o.working_time >= 0 else -1,
            "origQuoteOrderQty": c["origQuoteOrderQty"], "selfTradePreventionMode": "NONE"}


def spot_new_order_body(sim, o: Order, fills, resp_type: str) -> dict:
    body = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id,
            "transactTime": o.time}
    if resp_type == "ACK":
        return body
    body.update(_spot_common(sim, o))
    body["workingTime"] = o.working_time if o.working_time >= 0 else o.time
    body["selfTradePreventionMode"] = "NONE"
    if resp_type == "FULL":
        spec = sim.engine.specs[o.symbol]
        body["fills"] = [{"price": sim.fmt.px(spec, f.price), "qty": sim.fmt.qty(spec, f.qty),
                          "commission": sim.fmt.amount(f.commission), "commissionAsset": f.commission_asset,
                          "tradeId": f.trade_id} for f in fills]
    return body


def spot_cancel_body(sim, o: Order, cancel_id: str) -> dict:
    c = _spot_common(sim, o)
    return {"symbol": o.symbol, "origClientOrderId": o.client_id, "orderId": o.order_id, "orderListId": -1,
            "clientOrderId": cancel_id, "transactTime": o.update_time, **c, "selfTradePreventionMode": "NONE"}


def _spot_place(sim, params, prefix: str = "") -> tuple[Order, list, str]:
    spec = _symbol(sim, params)
    side = _side(params)
    type_ = _mandatory(params, "type")
    if type_ not in ("LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT",
                     "LIMIT_MAKER"):
        raise Reject(-1116, "Invalid orderType.")
    if type_ not in ("LIMIT", "MARKET", "LIMIT_MAKER"):
        # listed in exchangeInfo orderTypes: only these three are offered by the simulator
        raise Reject(-2010, "Order type not supported for this symbol.")
    tif = params.get("timeInForce") or None
    resp_type = params.get("newOrderRespType") or ("FULL" if type_ in ("LIMIT", "MARKET") else "ACK")
    if resp_type not in ("ACK", "RESULT", "FULL"):
        raise Reject(-1100, "Illegal characters found in parameter 'newOrderRespType'.")
    for unsupported in ("stopPrice", "icebergQty", "trailingDelta"):
        if params.get(unsupported):
            raise Reject(-1106, f"Parameter '{unsupported}' sent when not required.")
    order, fills = sim.engine.submit(
        spec.symbol, side, type_, qty=_decimal(sim, spec, params, "quantity", "qty"),
        price=_decimal(sim, spec, params, "price", "price"), tif=tif,
        client_id=_client_id(params, "newClientOrderId"),
        quote_qty=_decimal(sim, spec, params, "quoteOrderQty", "quote"))
    return order, fills, resp_type


def spot_new_order(sim, params):
    order, fills, resp_type = _spot_place(sim, params)
    return spot_new_order_body(sim, order, fills, resp_type)


def _spot_cancel(sim, params, id_key="orderId", cid_key="origClientOrderId", new_key="newClientOrderId"):
    spec = _symbol(sim, params)
    order_id = _int(params, id_key)
    client_id = params.get(cid_key) or None
    if order_id is None and client_id is None:
        raise Reject(-1102, f"Param '{cid_key}' or '{id_key}' must be sent, but both were empty/null!")
    order = sim.engine.find(spec.symbol, order_id, client_id)
    if order is None or not order.is_open():
        raise Reject(-2011, "Unknown order sent.")
    cancel_id = _client_id(params, new_key) or _new_id()
    order.orig_client_id = cancel_id
    sim.engine.cancel(spec.symbol, order.order_id)
    return spot_cancel_body(sim, order, cancel_id)


def spot_cancel_order(sim, params):
    return _spot_cancel(sim, params)


def spot_query_order(sim, params):
    spec = _symbol(sim, params)
    order_id, client_id = _order_ref(params)
    order = sim.engine.find(spec.symbol, order_id, client_id)
    if order is None:
        raise Reject(-2013, "Order does not exist.")
    return spot_order_view(sim, order)


def spot_cancel_replace(sim, params):
    """POST /api/v3/order/cancelReplace: cancel one order and place another, in one request."""
    mode = _mandatory(params, "cancelReplaceMode")
    if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
        raise Reject(-1100, "Illegal characters found in parameter 'cancelReplaceMode'.")
    _symbol(sim, params)
    cancel_body = new_body = None
    cancel_err = new_err = None
    try:
        cancel_body = _spot_cancel(sim, params, "cancelOrderId", "cancelOrigClientOrderId", "cancelNewClientOrderId")
    except Reject as r:
        if r.code not in (-2011, -1102):
            raise
        cancel_err = {"code": r.code, "msg": r.msg}
    if cancel_err is None or mode == "ALLOW_FAILURE":
        try:
            order, fills, resp_type = _spot_place(sim, params)
            new_body = spot_new_order_body(sim, order, fills, resp_type)
        except Reject as r:
            new_err = {"code": r.code, "msg": r.msg}
    data = {"cancelResult": "FAILURE" if cancel_err else "SUCCESS",
            "newOrderResult": "NOT_ATTEMPTED" if (cancel_err and mode == "STOP_ON_FAILURE") else
            ("FAILURE" if new_err else "SUCCESS"),
            "cancelResponse": cancel_err or cancel_body,
            "newOrderResponse": new_err or new_body}
    if not cancel_err and not new_err:
        return data
    if cancel_err and (new_err or mode == "STOP_ON_FAILURE"):
        return {"code": -2022, "msg": "Order cancel-replace failed.", "data": data}, 400
    return {"code": -2021, "msg": "Order cancel-replace partially failed.", "data": data}, 400


def spot_open_orders(sim, params):
    spec = _symbol(sim, params, required=False)
    return [spot_order_view(sim, o) for o in sim.engine.open_orders(spec.symbol if spec else None)]


def spot_open_orders_weight(sim, params):
    return 6 if params.get("symbol") else 80


def spot_cancel_all(sim, params):
    spec = _symbol(sim, params)
    orders = sim.engine.open_orders(spec.symbol)
    if not orders:
        raise Reject(-2011, "Unknown order sent.")
    out = []
    for o in orders:
        cancel_id = _new_id()
        o.orig_client_id = cancel_id
        sim.engine.cancel(spec.symbol, o.order_id)
        out.append(spot_cancel_body(sim, o, cancel_id))
    return out


def spot_account(sim, params):
    e = sim.engine
    omit = _bool(params, "omitZeroBalances")
    balances = [{"asset": a, "free": sim.fmt.amount(f), "locked": sim.fmt.amount(lk)}
                for a, (f, lk) in e.balances.items() if not (omit and f == 0 and lk == 0)]
    maker, taker = e.maker_fee, e.taker_fee
    return {"makerCommission": maker // 100, "takerCommission": taker // 100, "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": fmt_raw(maker, 6, 8), "taker": fmt_raw(taker, 6, 8),
                                "buyer": "0.00000000", "seller": "0.00000000"},
            "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
            "requireSelfTradePrevention": False, "preventSor": False, "updateTime": e.account_update_time,
            "accountType": "SPOT", "balances": balances, "permissions": ["SPOT"], "uid": 1}


def _trade_rows(sim, params):
    """The account's trades of one symbol after the documented filters: orderId, fromId (id >= it),
    startTime / endTime (ms), limit (default 500, 1..1000); oldest first, the most recent `limit` when
    neither fromId nor startTime is given."""
    spec = _symbol(sim, params)
    limit = _int(params, "limit", 500)
    if not 1 <= limit <= 1000:
        raise Reject(-1100, "Illegal characters found in parameter 'limit'; legal range is '1-1000'.")
    order_id, from_id = _int(params, "orderId"), _int(params, "fromId")
    start, end = _int(params, "startTime"), _int(params, "endTime")
    rows = sim.engine.user_trades[spec.symbol]
    out = [r for r in rows if (order_id is None or r[0].order_id == order_id)
           and (from_id is None or r[1].trade_id >= from_id) and (start is None or r[2] >= start)
           and (end is None or r[2] <= end)]
    out = out[:limit] if from_id is not None or start is not None else out[-limit:]
    return spec, out


def spot_my_trades(sim, params):
    """GET /api/v3/myTrades."""
    spec, rows = _trade_rows(sim, params)
    f = sim.fmt
    return [{"symbol": spec.symbol, "id": fill.trade_id, "orderId": o.order_id, "orderListId": -1,
             "price": f.px(spec, fill.price), "qty": f.qty(spec, fill.qty), "quoteQty": f.notional(spec, fill.quote),
             "commission": f.amount(fill.commission), "commissionAsset": fill.commission_asset, "time": t,
             "isBuyer": o.side == 0, "isMaker": fill.maker, "isBestMatch": True} for o, fill, t in rows]


def spot_my_trades_weight(sim, params):
    return 5 if params.get("orderId") else 20


def usdm_user_trades(sim, params):
    """GET /fapi/v1/userTrades."""
    if params.get("fromId") and (params.get("startTime") or params.get("endTime")):
        raise Reject(-4135, "Invalid time range: fromId cannot be sent with startTime or endTime.")
    spec, rows = _trade_rows(sim, params)
    f = sim.fmt
    return [{"buyer": o.side == 0, "commission": f.amount(fill.commission), "commissionAsset": fill.commission_asset,
             "id": fill.trade_id, "maker": fill.maker, "orderId": o.order_id, "price": f.px(spec, fill.price),
             "qty": f.qty(spec, fill.qty), "quoteQty": f.notional(spec, fill.quote),
             "realizedPnl": f.amount(fill.realized_pnl), "marginAsset": "USDT", "side": SIDE_NAMES[o.side],
             "positionSide": "BOTH", "symbol": spec.symbol, "time": t} for o, fill, t in rows]


# ------------------------------------------------------------------------------------ user stream

def _listen_key(sim) -> str:
    for key in sim.listen_keys:
        return key
    return secrets.token_urlsafe(48).replace("-", "a").replace("_", "b")[:64]


def listen_key_new(sim, params):
    # One account: an active listenKey is returned again and its validity extended (Binance does so).
    key = _listen_key(sim)
    sim.listen_keys[key] = time.time() + sim.listen_key_ttl
    return {"listenKey": key}


def listen_key_keepalive(sim, params):
    key = params.get("listenKey") or (next(iter(sim.listen_keys), None) if sim.market == USDM else None)
    if not key:
        raise Reject(-1102, "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed.")
    if key not in sim.listen_keys:
        raise Reject(-1125, "This listenKey does not exist.")
    sim.listen_keys[key] = time.time() + sim.listen_key_ttl
    return {} if sim.market == SPOT else {"listenKey": key}


def listen_key_close(sim, params):
    key = params.get("listenKey") or (next(iter(sim.listen_keys), None) if sim.market == USDM else None)
    if not key:
        raise Reject(-1102, "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed.")
    if sim.listen_keys.pop(key, None) is None:
        raise Reject(-1125, "This listenKey does not exist.")
    for conn in list(sim.subs.get(key, ())):
        sim._spawn(conn.close(1000, "listenKey closed"))
    return {}


# ---------------------------------------------------------------------------------------- USD-M

def usdm_order_view(sim, o: Order, with_time: bool = False, ack: bool = False) -> dict:
    spec = sim.engine.specs[o.symbol]
    f = sim.fmt
    filled = 0 if ack else o.filled
    body = {"orderId": o.order_id, "symbol": o.symbol, "status": "NEW" if ack else o.status,
            "clientOrderId": o.client_id, "price": f.px(spec, o.price),
            "avgPrice": fmt_raw(0, 0, 2) if ack or not o.filled else f.avg_price(spec, o),
            "origQty": f.qty(spec, o.qty), "executedQty": f.qty(spec, filled)}
    if not with_time:
        body["cumQty"] = f.qty(spec, filled)
    body.update({
        "cumQuote": f.notional(spec, 0 if ack else o.quote_filled), "timeInForce": o.tif, "type": o.type,
        "reduceOnly": o.reduce_only, "closePosition": False, "side": SIDE_NAMES[o.side], "positionSide": "BOTH",
        "stopPrice": "0", "workingType": "CONTRACT_PRICE", "priceProtect": False, "origType": o.type,
        "priceMatch": "NONE", "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0})
    if with_time:
        body["time"] = o.time
    body["updateTime"] = o.time if ack else o.update_time
    return body


def usdm_new_order(sim, params):
    spec = _symbol(sim, params)
    side = _side(params)
    ps = params.get("positionSide") or "BOTH"
    if ps not in ("BOTH", "LONG", "SHORT"):
        raise Reject(-1100, "Illegal characters found in parameter 'positionSide'.")
    if ps != "BOTH":
        raise Reject(-4061, "Order's position side does not match user's setting.")
    type_ = _mandatory(params, "type")
    if type_ not in ("LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET",
                     "TRAILING_STOP_MARKET"):
        raise Reject(-1116, "Invalid orderType.")
    if type_ not in ("LIMIT", "MARKET"):
        raise Reject(-4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints "
                            "instead.")
    if _bool(params, "closePosition"):
        raise Reject(-1106, "Parameter 'closePosition' sent when not required.")
    resp_type = params.get("newOrderRespType") or "ACK"
    if resp_type not in ("ACK", "RESULT"):
        raise Reject(-1100, "Illegal characters found in parameter 'newOrderRespType'.")
    tif = params.get("timeInForce") or None
    if type_ == "MARKET" and tif is not None:
        tif = None  # Binance ignores timeInForce on MARKET orders
    order, _ = sim.engine.submit(
        spec.symbol, side, type_, qty=_decimal(sim, spec, params, "quantity", "qty"),
        price=_decimal(sim, spec, params, "price", "price"), tif=tif,
        client_id=_client_id(params, "newClientOrderId"), reduce_only=_bool(params, "reduceOnly"))
    return usdm_order_view(sim, order, ack=resp_type == "ACK")


def usdm_modify_order(sim, params):
    spec = _symbol(sim, params)
    side = _side(params)
    order_id, client_id = _order_ref(params)
    qty = _decimal(sim, spec, params, "quantity", "qty")
    price = _decimal(sim, spec, params, "price", "price")
    if qty is None:
        raise Reject(-1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")
    if price is None:
        raise Reject(-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed.")
    order = sim.engine.modify(spec.symbol, side, qty, price, order_id, client_id)
    return usdm_order_view(sim, order)


def usdm_cancel_order(sim, params):
    spec = _symbol(sim, params)
    order_id, client_id = _order_ref(params)
    order = sim.engine.find(spec.symbol, order_id, client_id)
    if order is None or not order.is_open():
        raise Reject(-2011, "Unknown order sent.")
    sim.engine.cancel(spec.symbol, order.order_id)
    return usdm_order_view(sim, order)


def usdm_query_order(sim, params):
    spec = _symbol(sim, params)
    order_id, client_id = _order_ref(params)
    order = sim.engine.find(spec.symbol, order_id, client_id)
    if order is None:
        raise Reject(-2013, "Order does not exist.")
    return usdm_order_view(sim, order, with_time=True)


def usdm_open_orders(sim, params):
    spec = _symbol(sim, params, required=False)
    return [usdm_order_view(sim, o, with_time=True) for o in sim.engine.open_orders(spec.symbol if spec else None)]


def usdm_open_orders_weight(sim, params):
    return 1 if params.get("symbol") else 40


def usdm_new_algo_order(sim, params):
    """POST /fapi/v1/algoOrder (see extrema.sim.binance.algo)."""
    if _mandatory(params, "algoType") != "CONDITIONAL":
        raise Reject(-1100, "Illegal characters found in parameter 'algoType'; legal range is 'CONDITIONAL'.")
    spec = _symbol(sim, params)
    side = _side(params)
    if (params.get("positionSide") or "BOTH") != "BOTH":
        raise Reject(-4061, "Order's position side does not match user's setting.")
    working = params.get("workingType") or "CONTRACT_PRICE"
    if working not in ("CONTRACT_PRICE", "MARK_PRICE"):
        raise Reject(-1100, "Illegal characters found in parameter 'workingType'.")
    tif = params.get("timeInForce") or None
    if tif is not None and tif not in ("GTC", "IOC", "FOK", "GTX"):
        raise Reject(-1115, "Invalid timeInForce.")
    a = sim.algo.place(spec.symbol, side, _mandatory(params, "type"), _decimal(sim, spec, params, "quantity", "qty"),
                       _decimal(sim, spec, params, "price", "price"),
                       _decimal(sim, spec, params, "triggerPrice", "price"), tif, working, _bool(params, "reduceOnly"),
                       _client_id(params, "clientAlgoId") or _new_id())
    return sim.algo.view(sim.fmt, a)


def _algo_ref(params):
    algo_id = _int(params, "algoId")
    client_id = params.get("clientAlgoId") or None
    if algo_id is None and client_id is None:
        raise Reject(-1102, "Param 'clientAlgoId' or 'algoId' must be sent, but both were empty/null!")
    return algo_id, client_id


def usdm_cancel_algo_order(sim, params):
    a = sim.algo.cancel(*_algo_ref(params))
    return {"algoId": a.algo_id, "clientAlgoId": a.client_id, "code": "200", "msg": "success"}


def usdm_query_algo_order(sim, params):
    a = sim.algo.find(*_algo_ref(params))
    if a is None:
        raise Reject(-2013, "Order does not exist.")
    return sim.algo.view(sim.fmt, a)


def usdm_open_algo_orders(sim, params):
    spec = _symbol(sim, params, required=False)
    return [sim.algo.view(sim.fmt, a) for a in sim.algo.open(spec.symbol if spec else None)]


def usdm_cancel_all(sim, params):
    spec = _symbol(sim, params)
    sim.engine.cancel_all(spec.symbol)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def _usdm_totals(sim):
    e = sim.engine
    wallet = e.balances["USDT"][0]
    upnl = sum(e.unrealized(s) for s in e.positions)
    pos_im = 0
    for s, pos in e.positions.items():
        if pos.amount:
            spec = e.specs[s]
            pos_im += e.notional_to_asset(spec, abs(pos.amount) * (e.mark_price(s) or 0)) // pos.leverage
    order_im = sum(o.margin * o.remaining // o.qty for o in e.open_by_client.values() if o.qty)
    return wallet, upnl, pos_im, order_im


def usdm_account(sim, params, v3: bool = False):
    e = sim.engine
    a = sim.fmt.amount
    wallet, upnl, pos_im, order_im = _usdm_totals(sim)
    available = e.available_margin()
    body = {}
    if not v3:
        body.update({"feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True, "updateTime": 0,
                     "multiAssetsMargin": False, "tradeGroupId": -1})
    body.update({
        "totalInitialMargin": a(pos_im + order_im), "totalMaintMargin": a(pos_im // 2), "totalWalletBalance": a(wallet),
        "totalUnrealizedProfit": a(upnl), "totalMarginBalance": a(wallet + upnl),
        "totalPositionInitialMargin": a(pos_im), "totalOpenOrderInitialMargin": a(order_im),
        "totalCrossWalletBalance": a(wallet), "totalCrossUnPnl": a(upnl), "availableBalance": a(available),
        "maxWithdrawAmount": a(max(0, min(wallet, available)))})
    asset = {"asset": "USDT", "walletBalance": a(wallet), "unrealizedProfit": a(upnl),
             "marginBalance": a(wallet + upnl), "maintMargin": a(pos_im // 2), "initialMargin": a(pos_im + order_im),
             "positionInitialMargin": a(pos_im), "openOrderInitialMargin": a(order_im),
             "crossWalletBalance": a(wallet), "crossUnPnl": a(upnl), "availableBalance": a(available),
             "maxWithdrawAmount": a(max(0, min(wallet, available))), "updateTime": e.account_update_time}
    if not v3:
        asset["marginAvailable"] = True
    body["assets"] = [asset]
    positions = []
    for s, pos in e.positions.items():
        spec = e.specs[s]
        mark = e.mark_price(s) or 0
        im = e.notional_to_asset(spec, abs(pos.amount) * mark) // pos.leverage
        notional = fmt_raw(e.notional_to_asset(spec, pos.amount * mark), ASSET_DP)
        if v3:
            if not pos.amount:
                continue
            positions.append({"symbol": s, "positionSide": "BOTH", "positionAmt": sim.fmt.qty(spec, pos.amount),
                              "unrealizedProfit": a(e.unrealized(s)), "isolatedMargin": "0", "notional": notional,
                              "isolatedWallet": "0", "initialMargin": a(im), "maintMargin": a(im // 2),
                              "updateTime": pos.update_time})
        else:
            positions.append({"symbol": s, "initialMargin": a(im), "maintMargin": a(im // 2),
                              "unrealizedProfit": a(e.unrealized(s)), "positionInitialMargin": a(im),
                              "openOrderInitialMargin": "0", "leverage": str(pos.leverage), "isolated": False,
                              "entryPrice": sim.fmt.entry_price(s), "maxNotional": "1000000", "bidNotional": "0",
                              "askNotional": "0", "positionSide": "BOTH",
                              "positionAmt": sim.fmt.qty(spec, pos.amount), "updateTime": pos.update_time})
    body["positions"] = positions
    return body


def usdm_account_v3(sim, params):
    return usdm_account(sim, params, v3=True)


def usdm_position_risk(sim, params):
    e = sim.engine
    spec_filter = _symbol(sim, params, required=False)
    out = []
    for s, pos in e.positions.items():
        if spec_filter and s != spec_filter.symbol:
            continue
        spec = e.specs[s]
        mark = e.mark_price(s) or 0
        out.append({"symbol": s, "positionAmt": sim.fmt.qty(spec, pos.amount), "entryPrice": sim.fmt.entry_price(s),
                    "markPrice": fmt_raw(mark, spec.price_dp, 8), "unRealizedProfit": sim.fmt.amount(e.unrealized(s)),
                    "liquidationPrice": "0", "leverage": str(pos.leverage), "maxNotionalValue": "1000000",
                    "marginType": "cross", "isolatedMargin": "0.00000000", "isAutoAddMargin": "false",
                    "positionSide": "BOTH",
                    "notional": fmt_raw(e.notional_to_asset(spec, pos.amount * mark), ASSET_DP),
                    "isolatedWallet": "0", "updateTime": pos.update_time,
                    "breakEvenPrice": sim.fmt.entry_price(s)})
    return out


def usdm_balance(sim, params):
    e = sim.engine
    wallet, upnl, _, _ = _usdm_totals(sim)
    a = sim.fmt.amount
    return [{"accountAlias": "SimA", "asset": "USDT", "balance": a(wallet), "crossWalletBalance": a(wallet),
             "crossUnPnl": a(upnl), "availableBalance": a(e.available_margin()),
             "maxWithdrawAmount": a(max(0, min(wallet, e.available_margin()))), "marginAvailable": True,
             "updateTime": e.account_update_time}]


def usdm_leverage(sim, params):
    spec = _symbol(sim, params)
    lev = _int(params, "leverage")
    if lev is None:
        raise Reject(-1102, "Mandatory parameter 'leverage' was not sent, was empty/null, or malformed.")
    pos = sim.engine.set_leverage(spec.symbol, lev)
    return {"leverage": pos.leverage, "maxNotionalValue": "1000000", "symbol": spec.symbol}


ROUTES = {
    SPOT: {
        ("GET", "/api/v3/ping"): Route(ping, w(1)),
        ("GET", "/api/v3/time"): Route(server_time, w(1)),
        ("GET", "/api/v3/exchangeInfo"): Route(exchange_info, w(20)),
        ("GET", "/api/v3/depth"): Route(depth, depth_weight),
        ("GET", "/api/v3/klines"): Route(klines, klines_weight),
        ("POST", "/api/v3/order"): Route(spot_new_order, w(1), SIGNED, 1),
        ("DELETE", "/api/v3/order"): Route(spot_cancel_order, w(1), SIGNED),
        ("GET", "/api/v3/order"): Route(spot_query_order, w(4), SIGNED),
        ("POST", "/api/v3/order/cancelReplace"): Route(spot_cancel_replace, w(1), SIGNED, 1),
        ("GET", "/api/v3/openOrders"): Route(spot_open_orders, spot_open_orders_weight, SIGNED),
        ("DELETE", "/api/v3/openOrders"): Route(spot_cancel_all, w(1), SIGNED),
        ("GET", "/api/v3/account"): Route(spot_account, w(20), SIGNED),
        ("GET", "/api/v3/myTrades"): Route(spot_my_trades, spot_my_trades_weight, SIGNED),
        ("POST", "/api/v3/userDataStream"): Route(listen_key_new, w(2), USER_STREAM),
        ("PUT", "/api/v3/userDataStream"): Route(listen_key_keepalive, w(2), USER_STREAM),
        ("DELETE", "/api/v3/userDataStream"): Route(listen_key_close, w(2), USER_STREAM),
    },
    USDM: {
        ("GET", "/fapi/v1/ping"): Route(ping, w(1)),
        ("GET", "/fapi/v1/time"): Route(server_time, w(1)),
        ("GET", "/fapi/v1/exchangeInfo"): Route(exchange_info, w(1)),
        ("GET", "/fapi/v1/depth"): Route(depth, depth_weight),
        ("GET", "/fapi/v1/klines"): Route(klines, klines_weight),
        ("POST", "/fapi/v1/order"): Route(usdm_new_order, w(0), SIGNED, 1),
        ("PUT", "/fapi/v1/order"): Route(usdm_modify_order, w(1), SIGNED, 1),
        ("DELETE", "/fapi/v1/order"): Route(usdm_cancel_order, w(1), SIGNED),
        ("GET", "/fapi/v1/order"): Route(usdm_query_order, w(1), SIGNED),
        ("GET", "/fapi/v1/openOrders"): Route(usdm_open_orders, usdm_open_orders_weight, SIGNED),
        ("DELETE", "/fapi/v1/allOpenOrders"): Route(usdm_cancel_all, w(1), SIGNED),
        ("GET", "/fapi/v2/account"): Route(usdm_account, w(5), SIGNED),
        ("GET", "/fapi/v3/account"): Route(usdm_account_v3, w(5), SIGNED),
        ("GET", "/fapi/v2/positionRisk"): Route(usdm_position_risk, w(5), SIGNED),
        ("GET", "/fapi/v1/userTrades"): Route(usdm_user_trades, w(5), SIGNED),
        ("POST", "/fapi/v1/algoOrder"): Route(usdm_new_algo_order, w(0), SIGNED, 1),
        ("DELETE", "/fapi/v1/algoOrder"): Route(usdm_cancel_algo_order, w(1), SIGNED),
        ("GET", "/fapi/v1/algoOrder"): Route(usdm_query_algo_order, w(1), SIGNED),
        ("GET", "/fapi/v1/openAlgoOrders"): Route(usdm_open_algo_orders, usdm_open_orders_weight, SIGNED),
        ("GET", "/fapi/v2/balance"): Route(usdm_balance, w(5), SIGNED),
        ("POST", "/fapi/v1/leverage"): Route(usdm_leverage, w(1), SIGNED),
        ("POST", "/fapi/v1/listenKey"): Route(listen_key_new, w(1), USER_STREAM),
        ("PUT", "/fapi/v1/listenKey"): Route(listen_key_keepalive, w(1), USER_STREAM),
        ("DELETE", "/fapi/v1/listenKey"): Route(listen_key_close, w(1), USER_STREAM),
    },
}
