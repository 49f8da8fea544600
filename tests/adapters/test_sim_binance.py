"""The Binance simulator over real sockets on 127.0.0.1 (aiohttp client for REST and websockets).

Message shapes are compared with real captures and fixtures (key sets and value types), the depth chain
is synced with the reference rule (tests/models/binance_depth.py) into the reference book and compared
with the server's own book, orders go through the signed REST API and come back on the user stream.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import time
from urllib.parse import urlencode

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from extrema.sim import (DEFAULT_API_KEY, DEFAULT_API_SECRET, BinanceSimulator, CaptureReplay, Faults,
                         GeneratedMarket, RateLimits)
from models.binance_depth import BID, ASK, DepthGapError, DepthSync, parse_diff, parse_snapshot
from models.reference_book import ReferenceBook

H = {"X-MBX-APIKEY": DEFAULT_API_KEY}


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def signed(params: dict, secret: str = DEFAULT_API_SECRET, ts: int | None = None) -> str:
    q = urlencode({**params, "timestamp": ts if ts is not None else int(time.time() * 1000)})
    return q + "&signature=" + hmac.new(secret.encode(), q.encode(), hashlib.sha256).hexdigest()


def shape(obj):
    """Key set and value types, recursively (lists: shape of the first element)."""
    if isinstance(obj, dict):
        return {k: shape(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [shape(obj[0])] if obj else []
    return type(obj).__name__


def sim_of(market, speed=20.0, **kw):
    return BinanceSimulator(market=market, source=GeneratedMarket(seed=3, symbols=["BTCUSDT"], speed=speed), **kw)


async def collect(ws, n=None, until=None, timeout=5.0):
    out = []
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            return out
        try:
            msg = await ws.receive(timeout=left)
        except asyncio.TimeoutError:
            return out
        if msg.type != aiohttp.WSMsgType.TEXT:
            out.append(msg)
            return out
        out.append(msg.data)
        if n is not None and len(out) >= n:
            return out
        if until is not None and until(msg.data):
            return out


def capture_frames(fixtures_dir, market):
    name = {"spot": "cryptofeed_spot_ws_2021-10-12.jsonl", "usdm": "cryptofeed_usdm_ws_2021-07-22.jsonl"}[market]
    frames = {}
    for line in open(fixtures_dir / "binance" / "captures" / name):
        rec = json.loads(line)
        if rec["dir"] == "recv":
            msg = json.loads(rec["raw"])
            data = msg["data"]
            if data.get("e") == "depthUpdate" and not (data["b"] and data["a"]):
                continue  # a frame with both sides shows the element types
            frames.setdefault(msg["stream"].split("@", 1)[1], data)
    return frames


# --------------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_market_stream_shapes_match_real_captures(market, fixtures_dir):
    real = capture_frames(fixtures_dir, market)

    async def main():
        async with sim_of(market) as sim, aiohttp.ClientSession() as s:
            streams = ["btcusdt@depth@100ms", "btcusdt@bookTicker", "btcusdt@aggTrade", "btcusdt@kline_1m",
                       "btcusdt@trade"] + (["btcusdt@markPrice@1s"] if market == "usdm" else [])
            async with s.ws_connect(f"{sim.ws_url}/stream?streams={'/'.join(streams)}") as ws:
                got = {}
                for text in await collect(ws, until=lambda t: False, timeout=3.2):
                    msg = json.loads(text)
                    got.setdefault(msg["stream"].split("@", 1)[1], msg["data"])
                return got

    got = run(main())
    for kind in ("depth@100ms", "bookTicker", "aggTrade", "kline_1m"):
        assert shape(got[kind]) == shape(real[kind]), kind
        assert list(got[kind]) == list(real[kind]), kind  # same key order as the wire
    # trade: Binance removed the buyer / seller order ids ("b", "a") from the spot trade stream in 2023;
    # nautilus' fixtures are older. USD-M's trade shape is nautilus' fixture as is.
    ref = json.load(open(fixtures_dir / "binance" / "nautilus_py" / "ws_messages" / "ws_spot_trade.json"))["data"] \
        if market == "spot" else json.load(open(fixtures_dir / "binance" / "nautilus_rust" / "futures" /
                                                "market_data_json" / "trade_stream.json"))
    ref = {k: v for k, v in ref.items() if k not in ("b", "a")}
    assert shape(got["trade"]) == shape(ref)
    if market == "usdm":
        ref = json.load(open(fixtures_dir / "binance" / "nautilus_rust" / "futures" / "market_data_json" /
                             "mark_price_stream.json"))
        ref.pop("st")  # not in Binance's docs for markPriceUpdate (a nautilus addition)
        assert shape(got["markPrice@1s"]) == shape(ref)


# ----------------------------------------------------------------------------- depth chain

@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_depth_chain_syncs_with_rest_snapshot_to_the_servers_book(market):
    async def main():
        async with sim_of(market, speed=30.0) as sim, aiohttp.ClientSession() as s:
            prefix = "/api/v3" if market == "spot" else "/fapi/v1"
            async with s.ws_connect(f"{sim.ws_url}/ws/btcusdt@depth@100ms") as ws:
                first = await collect(ws, n=2)
                r = await s.get(f"{sim.rest_url}{prefix}/depth?symbol=BTCUSDT&limit=1000")
                snap_text = await r.text()
                diffs = first + await collect(ws, timeout=1.0, until=lambda t: False)
                sim.pause_feed()
                await asyncio.sleep(0.35)  # the last changes go out with the next 100 ms push
                diffs += await collect(ws, timeout=0.4, until=lambda t: False)
                engine_book = sim.engine.book_snapshot("BTCUSDT", 10_000)
                return snap_text, diffs, engine_book, sim.engine.specs["BTCUSDT"]

    snap_text, diffs, (last_id, bids, asks), spec = run(main())
    snapshot = parse_snapshot("BTCUSDT", snap_text)
    book = ReferenceBook(spec.price_dp, spec.qty_dp)
    from decimal import Decimal
    raw = lambda text, dp: int(Decimal(text).scaleb(dp))  # noqa: E731
    book.apply_snapshot([(raw(p, spec.price_dp), raw(q, spec.qty_dp)) for p, q in snapshot.bids],
                        [(raw(p, spec.price_dp), raw(q, spec.qty_dp)) for p, q in snapshot.asks])
    sync = DepthSync(market, snapshot)
    applied = 0
    prev_u = None
    for text in diffs:
        d = json.loads(text)
        if prev_u is not None:  # contiguous on the wire itself, not only after the snapshot
            assert (d["U"] == prev_u + 1) if market == "spot" else (d["pu"] == prev_u)
        prev_u = d["u"]
        diff = parse_diff(d)
        if sync.accept(diff):
            applied += 1
            for i, (side, p, q) in enumerate(diff.changes):
                book.apply_delta(side, raw(p, spec.price_dp), raw(q, spec.qty_dp), last=i == len(diff.changes) - 1)
    assert applied >= 5
    assert prev_u == last_id
    assert book.levels(BID) == bids and book.levels(ASK) == asks


# ------------------------------------------------------------------------- orders + user data

def test_spot_orders_rest_and_user_stream(fixtures_dir):
    fx = fixtures_dir / "binance"

    async def main():
        async with sim_of("spot", speed=1.0) as sim, aiohttp.ClientSession() as s:
            sim.pause_feed()  # a quiet market: nothing but our orders moves the book
            base = sim.rest_url + "/api/v3"
            lk = (await (await s.post(base + "/userDataStream", headers=H)).json())["listenKey"]
            async with s.ws_connect(f"{sim.ws_url}/ws/{lk}") as uws:
                depth = await (await s.get(base + "/depth?symbol=BTCUSDT&limit=5")).json()
                best_ask, best_bid = depth["asks"][0][0], depth["bids"][0][0]
                out = {}
                r = await s.post(base + "/order?" + signed({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                              "quantity": "0.01"}), headers=H)
                out["market"] = (r.status, dict(r.headers), await r.json())
                r = await s.post(base + "/order?" + signed({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                              "timeInForce": "GTC", "quantity": "0.001",
                                                              "price": "50000", "newClientOrderId": "rest1"}), headers=H)
                out["limit"] = (r.status, await r.json())
                r = await s.post(base + "/order?" + signed({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                              "timeInForce": "GTC", "quantity": "0.001",
                                                              "price": "50000", "newClientOrderId": "rest1"}), headers=H)
                out["dup"] = (r.status, await r.json())
                r = await s.get(base + "/openOrders?" + signed({"symbol": "BTCUSDT"}), headers=H)
                out["open"] = await r.json()
                r = await s.get(base + "/order?" + signed({"symbol": "BTCUSDT", "origClientOrderId": "rest1"}), headers=H)
                out["query"] = await r.json()
                r = await s.post(base + "/order/cancelReplace?" + signed({
                    "symbol": "BTCUSDT", "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrigClientOrderId": "rest1",
                    "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.002", "price": "50000.01"}),
                    headers=H)
                out["replace"] = (r.status, await r.json())
                new_id = out["replace"][1]["newOrderResponse"]["orderId"]
                r = await s.delete(base + "/order?" + signed({"symbol": "BTCUSDT", "orderId": new_id}), headers=H)
                out["cancel"] = (r.status, await r.json())
                for name, params in {
                    "cancel_unknown": ("DELETE", {"symbol": "BTCUSDT", "orderId": 999}),
                    "query_unknown": ("GET", {"symbol": "BTCUSDT", "orderId": 999}),
                    "maker_takes": ("POST", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT_MAKER",
                                             "quantity": "0.001", "price": best_ask}),
                    "tick": ("POST", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                      "quantity": "0.001", "price": "50000.001"}),
                    "lot": ("POST", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                     "quantity": "0.0000001", "price": "50000"}),
                    "notional": ("POST", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                          "quantity": "0.00001", "price": "50000"}),
                    "balance": ("POST", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                                         "quantity": "100", "price": "50000"}),
                    "ioc": ("POST", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "IOC",
                                     "quantity": "5", "price": best_bid}),
                    "fok": ("POST", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "timeInForce": "FOK",
                                     "quantity": "5", "price": best_bid}),
                }.items():
                    method, p = params
                    r = await s.request(method, base + "/order?" + signed(p), headers=H)
                    out[name] = (r.status, await r.json())
                r = await s.get(base + "/account?" + signed({}), headers=H)
                out["account"] = await r.json()
                events = [json.loads(t) for t in await collect(uws, timeout=0.5, until=lambda t: False)]
                return out, events

    out, events = run(main())
    status, headers, body = out["market"]
    full = json.load(open(fx / "nautilus_rust" / "spot" / "http_json" / "new_order_full_response.json"))
    assert status == 200 and shape(body) == shape(full) and body["status"] == "FILLED"
    assert headers["X-MBX-ORDER-COUNT-10S"] == "1" and "X-MBX-ORDER-COUNT-1D" in headers
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) >= 1
    assert out["limit"][1]["status"] == "NEW"
    assert out["dup"] == (400, {"code": -2010, "msg": "Duplicate order sent."})
    oo = json.load(open(fx / "nautilus_rust" / "spot" / "http_json" / "open_orders_response.json"))
    assert [shape(o) for o in out["open"]] == [shape(oo[0])] and shape(out["query"]) == shape(oo[0])
    assert out["replace"][0] == 200 and out["replace"][1]["cancelResult"] == "SUCCESS"
    cancel = json.load(open(fx / "nautilus_rust" / "spot" / "http_json" / "cancel_order_response.json"))
    assert out["cancel"][0] == 200 and shape(out["cancel"][1]) == shape(cancel)
    assert out["cancel_unknown"] == (400, {"code": -2011, "msg": "Unknown order sent."})
    assert out["query_unknown"] == (400, {"code": -2013, "msg": "Order does not exist."})
    assert out["maker_takes"] == (400, {"code": -2010, "msg": "Order would immediately match and take."})
    assert out["tick"] == (400, {"code": -1013, "msg": "Filter failure: PRICE_FILTER"})
    assert out["lot"] == (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"})
    assert out["notional"] == (400, {"code": -1013, "msg": "Filter failure: NOTIONAL"})
    assert out["balance"] == (400, {"code": -2010, "msg": "Account has insufficient balance for requested action."})
    assert out["ioc"][1]["status"] == "EXPIRED" and float(out["ioc"][1]["executedQty"]) > 0
    assert out["fok"][1]["status"] == "EXPIRED" and float(out["fok"][1]["executedQty"]) == 0
    acct = json.load(open(fx / "nautilus_rust" / "spot" / "http_json" / "account_response.json"))
    assert shape(out["account"]) == shape(acct)
    # user stream: an executionReport for every order change, in the documented field set
    reports = [e for e in events if e["e"] == "executionReport"]
    real = json.load(open(fx / "nautilus_py" / "ws_messages" / "ws_spot_execution_report_new.json"))["data"]
    for rep in reports:
        assert set(real) <= set(rep) and set(rep) - set(real) <= {"W", "V"}
        assert all(type(rep[k]) is type(real[k]) for k in real if real[k] is not None and rep[k] is not None)
    kinds = [(r["x"], r["X"]) for r in reports]
    assert kinds == [("NEW", "NEW"), ("TRADE", "FILLED"),  # market
                     ("NEW", "NEW"),  # rest1
                     ("CANCELED", "CANCELED"), ("NEW", "NEW"),  # cancelReplace
                     ("CANCELED", "CANCELED"),  # delete
                     ("NEW", "NEW"), ("TRADE", "PARTIALLY_FILLED"), ("EXPIRED", "EXPIRED"),  # IOC
                     ("NEW", "NEW"), ("EXPIRED", "EXPIRED")]  # FOK
    cancel_rep = reports[3]
    assert cancel_rep["C"] == "rest1" and cancel_rep["c"] != "rest1"
    pos = [e for e in events if e["e"] == "outboundAccountPosition"]
    real_pos = json.load(open(fx / "nautilus_rust" / "spot" / "user_data_json" / "account_position.json"))
    assert pos and all(shape(p) == shape(real_pos) for p in pos)


def test_usdm_orders_rest_and_user_stream(fixtures_dir):
    fx = fixtures_dir / "binance" / "nautilus_rust" / "futures"

    async def main():
        async with sim_of("usdm", speed=1.0) as sim, aiohttp.ClientSession() as s:
            sim.pause_feed()
            base = sim.rest_url + "/fapi"
            lk = (await (await s.post(base + "/v1/listenKey", headers=H)).json())["listenKey"]
            out = {}
            async with s.ws_connect(f"{sim.ws_url}/ws/{lk}") as uws:
                async def call(method, path, p):
                    r = await s.request(method, base + path + "?" + signed(p), headers=H)
                    return r.status, await r.json()
                out["lev"] = await call("POST", "/v1/leverage", {"symbol": "BTCUSDT", "leverage": 10})
                out["market"] = await call("POST", "/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                                 "quantity": "0.010", "newOrderRespType": "RESULT"})
                out["limit"] = await call("POST", "/v1/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT",
                                                                "timeInForce": "GTC", "quantity": "0.005",
                                                                "price": "70000", "newClientOrderId": "f1"})
                out["dup"] = await call("POST", "/v1/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT",
                                                              "timeInForce": "GTC", "quantity": "0.005",
                                                              "price": "70000", "newClientOrderId": "f1"})
                out["modify"] = await call("PUT", "/v1/order", {"symbol": "BTCUSDT", "side": "SELL",
                                                                "origClientOrderId": "f1", "quantity": "0.004",
                                                                "price": "70000"})
                out["gtx"] = await call("POST", "/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                              "timeInForce": "GTX", "quantity": "0.005",
                                                              "price": "65000"})
                out["reduce"] = await call("POST", "/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET",
                                                                 "quantity": "0.005", "reduceOnly": "true"})
                out["tick"] = await call("POST", "/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                               "timeInForce": "GTC", "quantity": "0.005",
                                                               "price": "50000.05"})
                out["margin"] = await call("POST", "/v1/order", {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT",
                                                                 "timeInForce": "GTC", "quantity": "100",
                                                                 "price": "50000"})
                out["query"] = await call("GET", "/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "f1"})
                out["cancel"] = await call("DELETE", "/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "f1"})
                out["close"] = await call("POST", "/v1/order", {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET",
                                                                "quantity": "0.010", "reduceOnly": "true"})
                out["account"] = await call("GET", "/v2/account", {})
                out["risk"] = await call("GET", "/v2/positionRisk", {"symbol": "BTCUSDT"})
                events = [json.loads(t) for t in await collect(uws, timeout=0.5, until=lambda t: False)]
            return out, events

    out, events = run(main())
    assert out["lev"] == (200, {"leverage": 10, "maxNotionalValue": "1000000", "symbol": "BTCUSDT"})
    order_fx = json.load(open(fx / "http_json" / "order_response.json"))
    st, body = out["market"]
    assert st == 200 and body["status"] == "FILLED" and set(order_fx) <= set(body) | {"time"}
    assert out["dup"] == (400, {"code": -4116, "msg": "ClientOrderId is duplicated."})
    assert out["modify"][1]["origQty"] == "0.004"
    assert out["gtx"][1]["code"] == -5022
    assert out["reduce"] == (400, {"code": -2022, "msg": "ReduceOnly Order is rejected."})
    assert out["tick"] == (400, {"code": -4014, "msg": "Price not increased by tick size."})
    assert out["margin"] == (400, {"code": -2019, "msg": "Margin is insufficient."})
    assert shape(out["query"][1]) == shape({**order_fx}) or set(order_fx) <= set(out["query"][1])
    assert out["cancel"][1]["status"] == "CANCELED"
    assert out["close"][1]["status"] == "NEW"  # ACK response
    acct = json.load(open(fx / "http_json" / "account_info_v2.json"))
    assert set(acct) == set(out["account"][1]) and set(acct["positions"][0]) == set(out["account"][1]["positions"][0])
    risk = json.load(open(fx / "http_json" / "position_risk.json"))
    assert shape(out["risk"][1]) == shape(risk)
    ups = [e for e in events if e["e"] == "ORDER_TRADE_UPDATE"]
    real = json.load(open(fx / "user_data_json" / "order_update_trade.json"))
    for u in ups:
        # pm / gtd are documented and newer than the fixture
        # AP / cr exist only for trailing stops, N / n only with a commission ("will not push if no commission")
        optional = {"AP", "cr"} | (set() if u["o"]["x"] == "TRADE" else {"N", "n"})
        assert set(real["o"]) - optional <= set(u["o"]) and set(u["o"]) - set(real["o"]) <= {"pm", "gtd"}
        assert set(u) == set(real)
    assert [(u["o"]["x"], u["o"]["X"]) for u in ups] == [
        ("NEW", "NEW"), ("TRADE", "FILLED"), ("NEW", "NEW"), ("AMENDMENT", "NEW"), ("CANCELED", "CANCELED"),
        ("NEW", "NEW"), ("TRADE", "FILLED")]
    acc = [e for e in events if e["e"] == "ACCOUNT_UPDATE"]
    real_acc = json.load(open(fx / "user_data_json" / "account_update.json"))
    assert len(acc) == 2 and all(shape(a) == shape(real_acc) for a in acc)
    assert acc[-1]["a"]["P"][0]["pa"] == "0.000"


# --------------------------------------------------------------------------------- security

def test_signatures_and_key_errors():
    priv = Ed25519PrivateKey.generate()
    pem = priv.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    async def main():
        keys = {DEFAULT_API_KEY: DEFAULT_API_SECRET, "edkey": pem}
        async with sim_of("spot", api_keys=keys) as sim, aiohttp.ClientSession() as s:
            url = sim.rest_url + "/api/v3/account?"
            res = {}

            async def get(name, query, headers):
                r = await s.get(url + query, headers=headers)
                res[name] = (r.status, await r.json())

            await get("hmac", signed({}), H)
            await get("bad_sig", signed({}, secret="wrong"), H)
            await get("no_key", signed({}), {})
            await get("unknown_key", signed({}), {"X-MBX-APIKEY": "nope"})
            await get("stale", signed({}, ts=int(time.time() * 1000) - 10_000), H)
            await get("future", signed({}, ts=int(time.time() * 1000) + 5_000), H)
            q = urlencode({"timestamp": int(time.time() * 1000), "recvWindow": 5000})
            sig = base64.b64encode(priv.sign(q.encode())).decode()
            await get("ed25519", q + "&" + urlencode({"signature": sig}), {"X-MBX-APIKEY": "edkey"})
            bad = base64.b64encode(priv.sign(b"other")).decode()
            await get("ed25519_bad", q + "&" + urlencode({"signature": bad}), {"X-MBX-APIKEY": "edkey"})
            # body-signed POST: totalParams = query + body
            body = signed({"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                           "quantity": "0.001", "price": "50000"})
            r = await s.post(sim.rest_url + "/api/v3/order", data=body,
                             headers={**H, "Content-Type": "application/x-www-form-urlencoded"})
            res["body"] = (r.status, await r.json())
            return res

    res = run(main())
    assert res["hmac"][0] == 200
    assert res["bad_sig"] == (400, {"code": -1022, "msg": "Signature for this request is not valid."})
    assert res["no_key"] == (401, {"code": -2014, "msg": "API-key format invalid."})
    assert res["unknown_key"] == (401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
    assert res["stale"][1]["code"] == -1021 and res["future"][1]["code"] == -1021
    assert res["ed25519"][0] == 200
    assert res["ed25519_bad"][1]["code"] == -1022
    assert res["body"][0] == 200 and res["body"][1]["status"] == "NEW"


def test_rate_limit_429_then_418_ban():
    async def main():
        limits = RateLimits(weight_per_minute=30, ban_after=1, ban_seconds=60)
        async with sim_of("spot", rate_limits=limits) as sim, aiohttp.ClientSession() as s:
            seen = []
            for _ in range(5):
                r = await s.get(sim.rest_url + "/api/v3/exchangeInfo")  # weight 20
                seen.append((r.status, r.headers.get("Retry-After"), r.headers.get("X-MBX-USED-WEIGHT-1M"),
                             (await r.json()).get("code")))
            return seen

    seen = run(main())
    assert seen[0] == (200, None, "20", None)
    assert seen[1][0] == 429 and seen[1][3] == -1003 and int(seen[1][1]) >= 1
    assert seen[2][0] == 418 and seen[2][1] == "60" and seen[2][3] == -1003
    assert seen[3][0] == 418


# ----------------------------------------------------------------------- subscriptions, pings

def test_live_subscribe_list_unsubscribe_and_server_pings():
    async def main():
        async with sim_of("usdm", ping_interval=0.2, pong_timeout=0.6) as sim, aiohttp.ClientSession() as s:
            async with s.ws_connect(sim.ws_url + "/ws", autoping=False) as ws:
                await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade",
                                                                                "btcusdt@depth@0ms"], "id": 1}))
                await ws.send_str(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 2}))
                await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": ["nosuch@trade"], "id": 3}))
                replies, pings, closed, data = {}, 0, None, 0
                while closed is None:
                    msg = await ws.receive(timeout=5)
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        d = json.loads(msg.data)
                        if "id" in d:
                            replies[d["id"]] = d
                            if d["id"] == 3:
                                await ws.send_str(json.dumps({"method": "UNSUBSCRIBE",
                                                              "params": ["btcusdt@aggTrade"], "id": 4}))
                        else:
                            data += 1
                    elif msg.type == aiohttp.WSMsgType.PING:
                        pings += 1  # never answered: the server must drop us after pong_timeout
                    else:
                        closed = msg
                return replies, pings, closed, data, dict(sim.counters)

    replies, pings, closed, data, counters = run(main())
    assert replies[1] == {"result": None, "id": 1}
    assert replies[2] == {"result": ["btcusdt@aggTrade", "btcusdt@depth@0ms"], "id": 2}
    assert replies[3]["error"]["code"] == 2
    assert replies[4] == {"result": None, "id": 4}
    assert pings >= 1 and data > 0
    assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
    assert counters["pong_timeout_closed"] == 1


# ----------------------------------------------------------------------------------- faults

def test_each_fault_does_what_it_says():
    async def main():
        faults = Faults(seed=1)
        async with sim_of("spot", speed=30.0, faults=faults) as sim, aiohttp.ClientSession() as s:
            url = sim.ws_url + "/ws/btcusdt@depth@100ms"
            res = {}
            async with s.ws_connect(url) as ws:
                before_gap = await collect(ws, n=2)
                faults.inject("gap")
                frames = before_gap[-1:] + await collect(ws, n=2)
                chain = [json.loads(t) for t in frames]
                res["gap"] = chain
                faults.inject("malformed")
                res["malformed"] = await collect(ws, n=1)
                faults.inject("duplicate")
                res["duplicate"] = await collect(ws, n=2)
                faults.inject("reorder")
                res["reorder"] = [json.loads(t) for t in await collect(ws, n=2)]
                faults.inject("drop", 2)
                before = sim.counters["frames_published"]
                res["drop"] = [json.loads(t) for t in await collect(ws, n=1)]
                res["drop_published"] = sim.counters["frames_published"] - before
                faults.latency_ms = 150
                got = await collect(ws, n=1)
                res["latency"] = (time.time() * 1000 - json.loads(got[0])["E"])
                faults.latency_ms = 0
                await collect(ws, timeout=0.3, until=lambda t: False)
                faults.inject("disconnect")
                res["disconnect"] = await collect(ws, timeout=3, until=lambda t: False)
            faults.inject("http_429")
            r = await s.get(sim.rest_url + "/api/v3/time")
            res["429"] = (r.status, r.headers.get("Retry-After"), (await r.json())["code"])
            faults.inject("http_418")
            r = await s.get(sim.rest_url + "/api/v3/time")
            res["418"] = (r.status, (await r.json())["code"])
            r = await s.get(sim.rest_url + "/api/v3/time")
            res["ok"] = r.status
            res["counters"] = dict(faults.counters)
            return res

    res = run(main())
    a, b, c = res["gap"]
    with pytest.raises(DepthGapError):  # the reference sync rule sees the hole
        from models.binance_depth import DepthSnapshot
        sync = DepthSync("spot", DepthSnapshot("BTCUSDT", a["U"] - 1, (), ()))
        for d in (a, b, c):
            sync.accept(parse_diff(d))
    with pytest.raises(ValueError):
        json.loads(res["malformed"][0])
    assert res["duplicate"][0] == res["duplicate"][1]
    r1, r2 = res["reorder"]
    assert r1["U"] > r2["u"]  # the held frame came after the next one
    assert res["drop"]
    assert res["drop_published"] >= 3  # two frames went nowhere before this one
    assert res["latency"] >= 149
    assert isinstance(res["disconnect"][-1], aiohttp.WSMessage) and res["disconnect"][-1].type in (
        aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert res["429"] == (429, "1", -1003) and res["418"] == (418, -1003) and res["ok"] == 200
    for fault in ("gap", "malformed", "duplicate", "reorder", "disconnect", "http_429", "http_418"):
        assert res["counters"][fault] == 1, fault
    assert res["counters"]["drop"] == 2


# ----------------------------------------------------------------------------------- replay

@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_capture_replay_resends_original_text(market, fixtures_dir):
    replay = CaptureReplay.bundled(market, fixtures_dir / "binance" / "captures", speed=None, autostart=False)
    first = replay.frames[0]
    symbol = first.data["s"] if "s" in first.data else first.stream.split("@")[0].upper()
    stream_all = sorted({f.stream for f in replay.frames})

    async def main():
        async with BinanceSimulator(market=market, source=replay) as sim, aiohttp.ClientSession() as s:
            prefix = "/api/v3" if market == "spot" else "/fapi/v1"
            r = await s.get(f"{sim.rest_url}{prefix}/depth?symbol={symbol}&limit=1000")
            depth_text = await r.text()
            async with s.ws_connect(f"{sim.ws_url}/stream?streams={'/'.join(stream_all)}") as ws, \
                    s.ws_connect(f"{sim.ws_url}/ws/{first.stream}") as raw_ws:
                await asyncio.sleep(0.05)  # both subscriptions registered
                sim.start_feed()
                got = await collect(ws, n=len(replay.frames), timeout=10)
                raw = await collect(raw_ws, timeout=1.0, until=lambda t: False)
            return depth_text, got, raw

    depth_text, got, raw = run(main())
    assert depth_text == replay.snapshots[symbol].text
    assert got == [f.text for f in replay.frames]
    assert raw == [f.data_text for f in replay.frames if f.stream == first.stream]


def test_start_in_thread():
    sim = BinanceSimulator(market="spot", source=GeneratedMarket(seed=2)).start_in_thread()
    try:
        async def main():
            async with aiohttp.ClientSession() as s:
                r = await s.get(sim.rest_url + "/api/v3/time")
                return r.status, await r.json()
        status, body = asyncio.run(main())
        assert status == 200 and abs(body["serverTime"] - time.time() * 1000) < 60_000
        sim.faults.drop_rate = 0.5  # switching from another thread is a plain attribute set
        assert sim.call(lambda: sim.engine.book_snapshot("BTCUSDT", 1))[1]
    finally:
        sim.stop_thread()
