"""BinanceRest against a real aiohttp server on 127.0.0.1 that speaks the Binance REST subset: real fixture
bodies, its own weight table written from the docs (not the client's), signatures checked with hmac /
cryptography, its own clock (offset from ours), scripted 429 / 418 / -1021 / error bodies / stalls."""

import asyncio
import base64
import collections
import copy
import hashlib
import hmac
import json
import socket
import time
from decimal import Decimal
from urllib.parse import parse_qsl, unquote

import pytest
from aiohttp import web

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from extrema import Market
from extrema.adapters.binance import (
    SPOT_ENDPOINTS, USDM_ENDPOINTS, ApiKeyRejectedError, BinanceConnectionError, BinanceCredentials, BinanceRest,
    CancelRejectedError, CancelReplaceError, ExecutionStatusUnknown, FilterError, InsufficientBalanceError,
    InvalidClientOrderId, InvalidRequestError, InvalidResponseError, InvalidSignatureError, IPBannedError,
    OrderNotFoundError, RateLimit, RateLimiter, SPOT_DEFAULT_LIMITS,
    OrderStatusUnknown, PostOnlyRejectedError, RateLimitError, ReduceOnlyRejectedError, ServerBusyError,
    TimestampError, UnknownOrderError, ws_api_payload)

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
SPOT, USDM = Market.BINANCE_SPOT, Market.BINANCE_USDM


# --- the server's own weight table (Binance docs), independent of extrema.adapters.binance.endpoints ---

def _spot_depth(q):
    n = int(q.get("limit", 100))
    return 5 if n <= 100 else 25 if n <= 500 else 50 if n <= 1000 else 250


def _usdm_depth(q):
    n = int(q.get("limit", 500))
    return {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}[n]


def _usdm_klines(q):
    n = int(q.get("limit", 500))
    return 1 if n < 100 else 2 if n < 500 else 5 if n <= 1000 else 10


DOC_WEIGHTS = {
    ("GET", "/api/v3/ping"): 1, ("GET", "/api/v3/time"): 1, ("GET", "/api/v3/exchangeInfo"): 20,
    ("GET", "/api/v3/depth"): _spot_depth, ("GET", "/api/v3/klines"): 2,
    ("POST", "/api/v3/order"): 1, ("DELETE", "/api/v3/order"): 1, ("GET", "/api/v3/order"): 4,
    ("POST", "/api/v3/order/cancelReplace"): 1,
    ("GET", "/api/v3/openOrders"): lambda q: 6 if "symbol" in q else 80, ("GET", "/api/v3/account"): 20,
    ("GET", "/api/v3/myTrades"): lambda q: 5 if "orderId" in q else 20,
    ("POST", "/api/v3/userDataStream"): 2, ("PUT", "/api/v3/userDataStream"): 2,
    ("DELETE", "/api/v3/userDataStream"): 2,
    ("GET", "/fapi/v1/ping"): 1, ("GET", "/fapi/v1/time"): 1, ("GET", "/fapi/v1/exchangeInfo"): 1,
    ("GET", "/fapi/v1/depth"): _usdm_depth, ("GET", "/fapi/v1/klines"): _usdm_klines,
    ("POST", "/fapi/v1/order"): 0, ("PUT", "/fapi/v1/order"): 0, ("DELETE", "/fapi/v1/order"): 1,
    ("GET", "/fapi/v1/order"): 1, ("GET", "/fapi/v1/openOrders"): lambda q: 1 if "symbol" in q else 40,
    ("GET", "/fapi/v1/userTrades"): 5, ("POST", "/fapi/v1/algoOrder"): 0, ("DELETE", "/fapi/v1/algoOrder"): 1,
    ("GET", "/fapi/v1/algoOrder"): 1, ("GET", "/fapi/v1/openAlgoOrders"): lambda q: 1 if "symbol" in q else 40,
    ("GET", "/fapi/v2/account"): 5, ("GET", "/fapi/v2/positionRisk"): 5, ("POST", "/fapi/v1/leverage"): 1,
    ("POST", "/fapi/v1/listenKey"): 1, ("PUT", "/fapi/v1/listenKey"): 1, ("DELETE", "/fapi/v1/listenKey"): 1,
}
ORDER_ENDPOINTS = {("POST", "/api/v3/order"), ("POST", "/api/v3/order/cancelReplace"),
                   ("POST", "/fapi/v1/order"), ("PUT", "/fapi/v1/order"),
                   ("POST", "/fapi/v1/algoOrder")}
SIGNED = {k for k in DOC_WEIGHTS if "/order" in k[1] or "account" in k[1] or "position" in k[1]
          or "leverage" in k[1] or "openOrders" in k[1]}
KEY_ONLY = {k for k in DOC_WEIGHTS if "userDataStream" in k[1] or "listenKey" in k[1]}
INTERVAL_MS = {"S": 1000, "M": 60_000, "H": 3_600_000, "D": 86_400_000}


def _json(data, status=200, headers=None):
    return web.Response(status=status, body=json.dumps(data).encode(), content_type="application/json",
                        headers=headers)


def _error(code, msg, status=400, headers=None, data=None):
    body = {"code": code, "msg": msg}
    if data is not None:
        body["data"] = data
    return _json(body, status, headers)


class FakeBinance:
    """The venue. `script[(method, path)]` is a queue of one-off actions (async (request, params) ->
    Response or None for the normal answer). `log` records [method, path, outcome, arrival loop time] as
    requests arrive; outcome is the HTTP status (the Binance code for a 400) once answered, else None."""

    def __init__(self, fixtures_dir, *, offset_ms=0.0, weight_limits=(("1M", 6000),), order_limits=(("10S", 100),),
                 public_key=None, secret=SECRET, align_minute=False):
        self.f = fixtures_dir / "binance"
        self.offset_ms = offset_ms
        if align_minute:       # server clock 1 s past a minute boundary now: no window reset mid-test
            now = time.time() * 1000
            self.offset_ms = (now // 60_000 + 1) * 60_000 + 1000 - now
        self.weight_limits = [(k, INTERVAL_MS[k[-1]] * int(k[:-1]), lim) for k, lim in weight_limits]
        self.order_limits = [(k, INTERVAL_MS[k[-1]] * int(k[:-1]), lim) for k, lim in order_limits]
        self.counts = collections.defaultdict(int)          # (kind, key, window) -> count
        self.max_seen = collections.defaultdict(int)        # (kind, key) -> highest count in any window
        self.violations = 0
        self.public_key = public_key
        self.secret = secret
        self.script = collections.defaultdict(collections.deque)
        self.log = []
        self.rate_limits_override = None
        self.stall = asyncio.Event()
        self.orders = {}

    def server_ms(self):
        return time.time() * 1000 + self.offset_ms

    def body(self, name):
        return (self.f / name).read_bytes()

    def requests(self, method=None, path=None):
        return [e for e in self.log if (method is None or e[0] == method) and (path is None or e[1] == path)]

    def _count(self, kind, limits, cost):
        now = self.server_ms()
        headers, over = {}, False
        for key, interval, limit in limits:
            window = int(now // interval)
            self.counts[(kind, key, window)] += cost
            count = self.counts[(kind, key, window)]
            self.max_seen[(kind, key)] = max(self.max_seen[(kind, key)], count)
            headers[f"X-MBX-{'USED-WEIGHT' if kind == 'w' else 'ORDER-COUNT'}-{key}"] = str(count)
            over |= count > limit
        return headers, over

    def _verify(self, request, raw_query):
        if request.headers.get("X-MBX-APIKEY") != API_KEY:
            return _error(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        payload, _, sig = raw_query.rpartition("&signature=")
        if not payload:
            return _error(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.")
        sig = unquote(sig)
        if self.public_key is not None:
            try:
                self.public_key.verify(base64.b64decode(sig), payload.encode("ascii"))
            except Exception:
                return _error(-1022, "Signature for this request is not valid.")
        else:
            expected = hmac.new(self.secret.encode(), payload.encode("ascii"), hashlib.sha256).hexdigest()
            if not hmac.compare_digest(expected, sig.lower()):
                return _error(-1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(payload, keep_blank_values=True))
        ts, window = int(params["timestamp"]), int(params.get("recvWindow", 5000))
        now = self.server_ms()
        if not (ts < now + 1000 and now - ts <= window):
            return _error(-1021, "Timestamp for this request is outside of the recvWindow.")
        return None

    async def handle(self, request):
        method, path = request.method, request.path
        raw_query = request.rel_url.raw_query_string
        params = dict(parse_qsl(raw_query, keep_blank_values=True))
        key = (method, path)
        entry = [method, path, None, asyncio.get_running_loop().time()]   # status filled in when answered
        self.log.append(entry)
        resp = await self._handle(request, key, raw_query, params)
        entry[2] = resp.status if resp.status != 400 else json.loads(resp.body)["code"]
        return resp

    async def _handle(self, request, key, raw_query, params):
        method, path = key
        weight = DOC_WEIGHTS.get(key)
        if weight is None:
            return _error(-1000, "no such endpoint", 404)
        cost = weight(params) if callable(weight) else weight
        headers, over = self._count("w", self.weight_limits, cost)
        if key in ORDER_ENDPOINTS:
            order_headers, order_over = self._count("o", self.order_limits, 1)
            headers.update(order_headers)
            over |= order_over
        if over:
            self.violations += 1
            return _error(-1003, "Too much request weight used.", 429, {**headers, "Retry-After": "1"})
        if key in SIGNED:
            bad = self._verify(request, raw_query)
            if bad is not None:
                bad.headers.update(headers)
                return bad
        elif key in KEY_ONLY and request.headers.get("X-MBX-APIKEY") != API_KEY:
            return _error(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        if self.script[key]:
            action = self.script[key].popleft()
            resp = await action(request, params)
            if resp is not None:
                resp.headers.update(headers)
                return resp
        resp = self.answer(method, path, params)
        resp.headers.update(headers)
        return resp

    def answer(self, method, path, p):
        http = "nautilus_py/http_responses/"
        if path.endswith("/ping"):
            return _json({})
        if path.endswith("/time"):
            return _json({"serverTime": int(self.server_ms())})
        if path.endswith("/exchangeInfo"):
            name = "http_spot_market_exchange_info.json" if path.startswith("/api") else \
                "http_futures_market_exchange_info.json"
            info = json.loads(self.body(http + name))
            if self.rate_limits_override is not None:
                info["rateLimits"] = self.rate_limits_override
            return _json(info)
        if path.endswith("/depth"):
            name = "http_spot_market_depth.json" if path.startswith("/api") else "http_futures_market_depth.json"
            return web.Response(body=self.body(http + name), content_type="application/json")
        if path.endswith("/klines"):
            return web.Response(body=self.body(http + "http_spot_market_klines.json"), content_type="application/json")
        if path in ("/api/v3/order", "/fapi/v1/order") and method == "POST":
            order = {"symbol": p["symbol"], "orderId": len(self.orders) + 1, "clientOrderId": p["newClientOrderId"],
                     "price": p.get("price", "0"), "origQty": p.get("quantity", "0"), "executedQty": "0",
                     "status": "NEW", "timeInForce": p.get("timeInForce"), "type": p["type"], "side": p["side"]}
            self.orders[p["newClientOrderId"]] = order
            return _json(order)
        if path in ("/api/v3/order", "/fapi/v1/order") and method in ("GET", "DELETE", "PUT"):
            order = self.orders.get(p.get("origClientOrderId"))
            if order is None:
                if method == "GET":
                    return _error(-2013, "Order does not exist.")
                return _error(-2011, "Unknown order sent.")
            if method == "DELETE":
                order["status"] = "CANCELED"
            if method == "PUT":
                order.update(price=p["price"], origQty=p["quantity"])
            return _json(order)
        if path == "/api/v3/order/cancelReplace":
            old = self.orders.get(p["cancelOrigClientOrderId"])
            if old is None:
                return _error(-2022, "Order cancel-replace failed.", data={
                    "cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                    "cancelResponse": {"code": -2011, "msg": "Unknown order sent."}, "newOrderResponse": None})
            old["status"] = "CANCELED"
            new = dict(old, clientOrderId=p["newClientOrderId"], price=p["price"], origQty=p["quantity"], status="NEW")
            self.orders[p["newClientOrderId"]] = new
            return _json({"cancelResult": "SUCCESS", "newOrderResult": "SUCCESS", "cancelResponse": old,
                          "newOrderResponse": new})
        if path.endswith("/openOrders"):
            return _json([o for o in self.orders.values() if o["status"] == "NEW"
                          and ("symbol" not in p or o["symbol"] == p["symbol"])])
        if path == "/api/v3/account":
            return web.Response(body=self.body("nautilus_rust/spot/http_json/account_response.json"),
                                content_type="application/json")
        if path == "/fapi/v2/account":
            return web.Response(body=self.body("nautilus_rust/futures/http_json/account_info_v2.json"),
                                content_type="application/json")
        if path == "/fapi/v2/positionRisk":
            return web.Response(body=self.body("nautilus_rust/futures/http_json/position_risk.json"),
                                content_type="application/json")
        if path == "/fapi/v1/leverage":
            return _json({"leverage": int(p["leverage"]), "maxNotionalValue": "1000000", "symbol": p["symbol"]})
        if path.endswith(("/userDataStream", "/listenKey")):
            if method == "POST":
                return _json({"listenKey": "pqia91ma19a5s61cv6a81va65sdf19v8a65a1a5s61cv6a81va65sdf19v8a65a1"})
            if path.endswith("/userDataStream") and not p.get("listenKey"):
                return _error(-1102, "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed.")
            return _json({})
        return _error(-1000, "unhandled", 500)


class Served:
    def __init__(self, fake):
        self.fake = fake
        self.runner = None
        self.url = None

    async def __aenter__(self):
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.fake.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc):
        self.fake.stall.set()
        await self.runner.cleanup()


def run(coro):
    return asyncio.run(coro)


def creds():
    return BinanceCredentials(API_KEY, secret=SECRET)


# --- public endpoints and weights ----------------------------------------------------------------------

def test_public_endpoints_return_the_fixture_bodies(fixtures_dir):
    async def main():
        http = fixtures_dir / "binance" / "nautilus_py" / "http_responses"
        for market, prefix in ((SPOT, "spot"), (USDM, "futures")):
            fake = FakeBinance(fixtures_dir)
            async with Served(fake) as srv, BinanceRest(market, srv.url) as rest:
                await rest.ping()
                info = await rest.exchange_info()
                assert info == json.loads((http / f"http_{prefix}_market_exchange_info.json").read_text(),
                                          parse_float=Decimal)
                body = await rest.depth("BTCUSDT", 100)
                assert isinstance(body, bytes) and body == (http / f"http_{prefix}_market_depth.json").read_bytes()
                klines = await rest.klines("BTCUSDT", "1m", limit=3)
                assert klines[0][1] == json.loads((http / "http_spot_market_klines.json").read_text())[0][1]
                server_ms = await rest.server_time()
                assert abs(server_ms - rest.now_ms()) < 1000
    run(main())


@pytest.mark.parametrize("market,table", [(SPOT, SPOT_ENDPOINTS), (USDM, USDM_ENDPOINTS)])
def test_client_weights_match_the_documented_table(market, table):
    variants = [{}, {"limit": 5}, {"limit": 50}, {"limit": 99}, {"limit": 100}, {"limit": 101}, {"limit": 500},
                {"limit": 1000}, {"limit": 1001}, {"limit": 5000}, {"symbol": "BTCUSDT"}]
    checked = 0
    for ep in table.values():
        doc = DOC_WEIGHTS[(ep.method, ep.path)]
        for params in variants:
            if ep.path == "/fapi/v1/depth" and params.get("limit", 500) not in (5, 10, 20, 50, 100, 500, 1000):
                continue
            expected = doc(params) if callable(doc) else doc
            assert ep.weight_for(params) == expected, (ep.name, params)
            checked += 1
        assert (ep.orders == 1) == ((ep.method, ep.path) in ORDER_ENDPOINTS), ep.name
    assert checked > 100


def test_used_weight_follows_the_headers(fixtures_dir):
    """After every call the client's count for the window is the server's own count."""
    async def main():
        for market in (SPOT, USDM):
            fake = FakeBinance(fixtures_dir, align_minute=True)
            async with Served(fake) as srv, BinanceRest(market, srv.url, creds()) as rest:
                await rest.sync_clock()
                calls = [rest.exchange_info(), rest.depth("BTCUSDT", 1000), rest.depth("BTCUSDT", 5),
                         rest.klines("BTCUSDT", "1h", limit=100), rest.account(), rest.open_orders("BTCUSDT"),
                         rest.open_orders()]
                for call in calls:
                    await call
                    minute = int(fake.server_ms() // 60_000)
                    server_count = fake.counts[("w", "1M", minute)]
                    assert rest.rate_limiter.used["USED-WEIGHT-1M"] == server_count
                    assert rest.rate_limiter.usage()["REQUEST_WEIGHT 1M"][0] == server_count
                expected = 3 + (20 + 50 + 5 + 2 + 20 + 6 + 80 if market == SPOT else 1 + 20 + 2 + 2 + 5 + 1 + 40)
                assert fake.counts[("w", "1M", int(fake.server_ms() // 60_000))] == expected  # 3 x time + calls
    run(main())


def test_weight_budget_delays_requests_instead_of_breaking_the_limit(fixtures_dir):
    """exchangeInfo says 60 weight per second. Three concurrent depth(500) calls (25 each) go out as the
    budget allows - some wait for the next second - and the server never sees the limit broken."""
    async def main():
        fake = FakeBinance(fixtures_dir, weight_limits=(("1S", 60),))
        fake.rate_limits_override = [{"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND",
                                      "intervalNum": 1, "limit": 60}]
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url, rate_limit_margin_ms=20) as rest:
            await rest.sync_clock(samples=2)
            await rest.exchange_info()
            limits = [(lim.kind, lim.key, lim.limit) for lim in rest.rate_limiter.limits]
            assert limits == [("REQUEST_WEIGHT", "1S", 60)]
            bodies = await asyncio.gather(*(rest.depth("BTCUSDT", 500) for _ in range(3)))
            assert all(b.startswith(b"{") for b in bodies)
        assert fake.violations == 0
        assert fake.max_seen[("w", "1S")] <= 60
        assert len(fake.requests("GET", "/api/v3/depth")) == 3
    run(main())


def test_order_count_headers_are_tracked(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir, weight_limits=(("1M", 2400),), order_limits=(("10S", 300), ("1M", 1200)),
                           align_minute=True)
        async with Served(fake) as srv, BinanceRest(USDM, srv.url, creds()) as rest:
            await rest.sync_clock(1)
            for i in range(3):
                await rest.new_order("BTCUSDT", "buy", "limit", client_order_id=f"o-{i}", quantity="0.001",
                                     price="50000")
            assert rest.rate_limiter.used["ORDER-COUNT-1M"] == 3
            assert rest.rate_limiter.usage()["ORDERS 1M"] == (3, 1200)
            assert rest.rate_limiter.used["USED-WEIGHT-1M"] == 1       # the time request; orders weigh 0
    run(main())


# --- 429 / 418 ---------------------------------------------------------------------------------------

async def _too_many(request, params, retry_after="1"):
    return _error(-1003, "Too much request weight used; current limit is 6000 request weight per 1 MINUTE.",
                  429, {"Retry-After": retry_after})


def test_429_blocks_every_request_for_retry_after(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir)
        fake.script[("GET", "/api/v3/depth")].append(_too_many)
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url) as rest:
            depth = asyncio.create_task(rest.depth("BTCUSDT"))
            while rest.rate_limiter.blocked_for == 0:      # until the 429 is in and the client backs off
                await asyncio.sleep(0.005)
            assert rest.rate_limiter.blocked_for > 0.5
            ping = asyncio.create_task(rest.ping())
            await depth
            await ping
        (_, _, status, t429), (_, _, status2, t_retry) = fake.requests("GET", "/api/v3/depth")
        (_, _, _, t_ping), = fake.requests("GET", "/api/v3/ping")
        assert (status, status2) == (429, 200)
        assert t_retry - t429 >= 1.0 - 0.01 and t_ping - t429 >= 1.0 - 0.01   # nothing went out during the block
    run(main())


def test_429_longer_than_the_deadline_raises_at_once(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir)
        fake.script[("GET", "/api/v3/depth")].append(_too_many)
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url) as rest:
            with pytest.raises(RateLimitError) as e:
                await rest.depth("BTCUSDT", timeout=0.3)
            assert 0.5 < e.value.retry_after <= 1.0 and not isinstance(e.value, IPBannedError)
            with pytest.raises(RateLimitError):
                await rest.ping(timeout=0.2)       # blocked too, and never sent
        assert len(fake.log) == 1
    run(main())


def test_418_ban_fails_fast_until_it_ends(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir)

        async def banned(request, params):
            return _error(-1003, "Way too much request weight used; IP banned until 1620286253180.", 418,
                          {"Retry-After": "120"})
        fake.script[("GET", "/api/v3/ping")].append(banned)
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url, creds()) as rest:
            with pytest.raises(IPBannedError) as e:
                await rest.ping(timeout=0.5)
            assert 119 < e.value.retry_after <= 120 and e.value.status == 418
            assert rest.rate_limiter.banned_for > 119
            for call in (rest.depth("BTCUSDT"), rest.account(), rest.new_order(
                    "BTCUSDT", "BUY", "LIMIT", client_order_id="x", quantity="1", price="1")):
                with pytest.raises(IPBannedError):
                    await call
        assert len(fake.log) == 1                  # nothing was sent during the ban
    run(main())


def test_order_count_429_without_retry_after_holds_orders_until_the_window_ends(fixtures_dir):
    """Binance: 'When the order count exceeds the limit, you will receive a 429 error without the
    Retry-After header.' Orders wait for the order window to end; other requests are not held."""
    async def main():
        fake = FakeBinance(fixtures_dir, order_limits=(("1S", 1000),))
        marks = {}

        async def too_many_orders(request, params):
            # Answer early in a server second, so the hold (to the next second) is long enough to watch.
            phase = fake.server_ms() % 1000
            if not 100 <= phase < 300:
                await asyncio.sleep(((1100 - phase) % 1000) / 1000)
            marks["429"] = fake.server_ms()
            return _error(-1015, "Too many new orders; current limit is 2 orders per SECOND.", 429)

        async def retried(request, params):
            marks["retry"] = fake.server_ms()
            return None
        fake.script[("POST", "/fapi/v1/order")].extend([too_many_orders, retried])
        limits = [RateLimit("REQUEST_WEIGHT", "MINUTE", 1, 2400), RateLimit("ORDERS", "SECOND", 1, 2)]
        async with Served(fake) as srv, BinanceRest(USDM, srv.url, creds(), rate_limits=limits,
                                                    rate_limit_margin_ms=20) as rest:
            await rest.sync_clock(2)
            order = asyncio.create_task(rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="oc1",
                                                       quantity="1", price="1"))
            while rest.rate_limiter.orders_blocked_for == 0:
                await asyncio.sleep(0.005)
            assert rest.rate_limiter.blocked_for == 0      # only orders are held
            await rest.ping()
            assert not order.done()
            assert (await order)["clientOrderId"] == "oc1"
        assert marks["retry"] // 1000 > marks["429"] // 1000       # the retry went out in a later window
        (_, _, _, t_ping), = fake.requests("GET", "/fapi/v1/ping")
        (_, _, _, t_429), (_, _, _, t_retry) = fake.requests("POST", "/fapi/v1/order")
        assert t_429 < t_ping < t_retry
    run(main())


def test_a_body_that_is_not_json(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir)

        async def html(request, params):
            return web.Response(status=200, text="<html>maintenance</html>", content_type="text/html")
        fake.script[("GET", "/api/v3/account")].extend([html])
        fake.script[("POST", "/api/v3/order")].extend([html])
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url, creds()) as rest:
            await rest.sync_clock(1)
            with pytest.raises(InvalidResponseError, match="not JSON"):
                await rest.account()
            with pytest.raises(OrderStatusUnknown) as e:       # accepted with HTTP 200, details unknown
                await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="h1", quantity="1", price="1")
            assert e.value.client_order_id == "h1"
    run(main())


# --- signing, clock ----------------------------------------------------------------------------------

def test_signed_requests_verify_with_hmac(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir, offset_ms=-2500.0)
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url, creds(), recv_window_ms=1000) as rest:
            await rest.sync_clock()
            order = await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="a.b:c/d_e-1",
                                         quantity=Decimal("0.00100"), price="50000.01")
            assert order["clientOrderId"] == "a.b:c/d_e-1" and order["origQty"] == "0.00100"
            assert (await rest.query_order("BTCUSDT", client_order_id="a.b:c/d_e-1"))["status"] == "NEW"
            assert [o["clientOrderId"] for o in await rest.open_orders("BTCUSDT")] == ["a.b:c/d_e-1"]
            assert (await rest.cancel_order("BTCUSDT", client_order_id="a.b:c/d_e-1"))["status"] == "CANCELED"
            balances = await rest.balances()
            assert balances["BTC"].free == Decimal("4723846.89208129") and balances["BTC"].locked == 0
        assert all(status == 200 for _, _, status, _ in fake.log)
        post = fake.requests("POST", "/api/v3/order")
        assert len(post) == 1
    run(main())


def test_signed_requests_verify_with_ed25519(fixtures_dir):
    async def main():
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        fake = FakeBinance(fixtures_dir, public_key=key.public_key(), offset_ms=1234.5)
        ed_creds = BinanceCredentials(API_KEY, private_key_pem=pem)
        async with Served(fake) as srv, BinanceRest(USDM, srv.url, ed_creds) as rest:
            await rest.sync_clock()
            await rest.new_order("BTCUSDT", "SELL", "LIMIT", client_order_id="ed-1", quantity="0.001", price="60000",
                                 post_only=True, reduce_only=True)
            result = await rest.cancel_replace("BTCUSDT", orig_client_order_id="ed-1", side="SELL",
                                               quantity="0.002", price="60001")
            assert result.client_order_id == "ed-1" and result.cancel_response is None
            assert result.new_order_response["price"] == "60001"
            positions = await rest.positions()
            assert positions[0]["positionAmt"] == "0.001"
            assert (await rest.set_leverage("BTCUSDT", 20))["leverage"] == 20
            usdt = (await rest.balances())["USDT"]
            assert (usdt.free, usdt.locked, usdt.total) == (Decimal("23.72469206"), 0, Decimal("23.72469206"))
        assert all(status == 200 for _, _, status, _ in fake.log)
        assert fake.orders["ed-1"]["timeInForce"] == "GTX"
    run(main())


def test_wrong_secret_is_an_invalid_signature_error(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir)
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url, BinanceCredentials(API_KEY, secret="wrong")) as rest:
            with pytest.raises(InvalidSignatureError) as e:
                await rest.new_order("BTCUSDT", "BUY", "MARKET", client_order_id="m1", quantity="1")
            assert (e.value.code, e.value.status, e.value.endpoint) == (-1022, 400, "POST /api/v3/order")
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url, BinanceCredentials("other", secret=SECRET)) as rest:
            with pytest.raises(ApiKeyRejectedError) as e:
                await rest.account()
            assert (e.value.code, e.value.status) == (-2015, 401)
    run(main())


def test_clock_offset_is_measured_within_half_the_round_trip(fixtures_dir):
    async def main():
        for offset in (5000.0, -3000.0, 0.0):
            fake = FakeBinance(fixtures_dir, offset_ms=offset)
            async with Served(fake) as srv, BinanceRest(SPOT, srv.url, creds(), recv_window_ms=50) as rest:
                sample = await rest.sync_clock(samples=3)
                # serverTime is an integer ms (up to 1 ms lost) taken somewhere inside the round trip.
                assert abs(sample.offset_ms - offset) <= sample.rtt_ms / 2 + 1.0
                assert rest.clock_offset_ms == sample.offset_ms and rest.clock_rtt_ms == sample.rtt_ms
                await rest.account()                   # recvWindow 50 ms: only a right clock gets through
        assert fake.log[-1][2] == 200
    run(main())


def test_minus_1021_resyncs_the_clock_and_resends_once(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir)
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url, creds(), recv_window_ms=1000) as rest:
            await rest.sync_clock(1)
            fake.offset_ms += 10_000                   # the venue's clock jumps
            order = await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="t1", quantity="1", price="2")
            assert order["clientOrderId"] == "t1"
            assert [(m, p, s) for m, p, s, _ in fake.log[1:]] == [
                ("POST", "/api/v3/order", -1021), ("GET", "/api/v3/time", 200), ("POST", "/api/v3/order", 200)]

            async def always_1021(request, params):
                return _error(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
            fake.script[("GET", "/api/v3/account")].extend([always_1021, always_1021])
            with pytest.raises(TimestampError) as e:
                await rest.account()
            assert e.value.code == -1021
            assert len(fake.requests("GET", "/api/v3/account")) == 2    # one resend after one resync
    run(main())


# --- errors ------------------------------------------------------------------------------------------

ERROR_CASES = [
    (SPOT, "new", 400, -2010, "Account has insufficient balance for requested action.", InsufficientBalanceError),
    (SPOT, "new", 400, -2010, "Order would immediately match and take.", PostOnlyRejectedError),
    (SPOT, "new", 400, -1013, "Filter failure: LOT_SIZE", FilterError),
    (SPOT, "new", 400, -1111, "Parameter 'quantity' has too much precision.", FilterError),
    (SPOT, "new", 400, -1100, "Illegal characters found in parameter 'price'.", InvalidRequestError),
    (SPOT, "new", 401, -2015, "Invalid API-key, IP, or permissions for action.", ApiKeyRejectedError),
    (SPOT, "cancel", 400, -2011, "Unknown order sent.", UnknownOrderError),
    (SPOT, "query", 400, -2013, "Order does not exist.", OrderNotFoundError),
    (USDM, "new", 400, -2019, "Margin is insufficient.", InsufficientBalanceError),
    (USDM, "new", 400, -2022, "ReduceOnly Order is rejected.", ReduceOnlyRejectedError),
    (USDM, "new", 400, -5022, "Due to the order could not be executed as maker, the Post Only order will be "
                              "rejected. The order will not be recorded in the order history", PostOnlyRejectedError),
    (USDM, "new", 400, -4164, "Order's notional must be no smaller than 5.0 (unless you choose reduce only)",
     FilterError),
    (USDM, "cancel", 400, -2011, "Unknown order sent.", UnknownOrderError),
    (USDM, "new", 503, -1008, "Request throttled by system-level protection.", ServerBusyError),
]


@pytest.mark.parametrize("market,op,status,code,msg,cls", ERROR_CASES)
def test_error_bodies_map_to_exceptions(fixtures_dir, market, op, status, code, msg, cls):
    async def main():
        fake = FakeBinance(fixtures_dir)
        prefix = "/api/v3" if market == SPOT else "/fapi/v1"
        method = {"new": "POST", "cancel": "DELETE", "query": "GET"}[op]

        async def reply(request, params):
            return _error(code, msg, status)
        fake.script[(method, f"{prefix}/order")].extend([reply] * 10)
        async with Served(fake) as srv, BinanceRest(market, srv.url, creds(), max_retries=0) as rest:
            await rest.sync_clock(1)
            with pytest.raises(cls) as e:
                if op == "new":
                    await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="e1", quantity="1", price="1")
                elif op == "cancel":
                    await rest.cancel_order("BTCUSDT", client_order_id="e1")
                else:
                    await rest.query_order("BTCUSDT", client_order_id="e1")
            err = e.value
            assert (err.code, err.msg, err.status, err.endpoint) == (code, msg, status, f"{method} {prefix}/order")
            assert not isinstance(err, ExecutionStatusUnknown)
            if cls is UnknownOrderError:
                assert isinstance(err, CancelRejectedError) and isinstance(err, OrderNotFoundError)
    run(main())


def test_spot_cancel_replace_success_and_failures(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir)
        sent = []

        async def capture(request, params):
            sent.append(params)
            return None
        fake.script[("POST", "/api/v3/order/cancelReplace")].extend([capture, capture])
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url, creds()) as rest:
            await rest.sync_clock(1)
            await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="r1", quantity="1", price="100")
            result = await rest.cancel_replace("BTCUSDT", orig_client_order_id="r1", new_client_order_id="r2",
                                               side="BUY", quantity="2", price="101")
            assert result.client_order_id == "r2"
            assert result.cancel_response["status"] == "CANCELED" and result.new_order_response["price"] == "101"
            with pytest.raises(CancelReplaceError) as e:
                await rest.cancel_replace("BTCUSDT", orig_client_order_id="nope", new_client_order_id="r3",
                                          side="BUY", quantity="2", price="101")
            assert e.value.code == -2022 and e.value.data["cancelResponse"]["code"] == -2011
            assert not e.value.cancel_succeeded and not e.value.new_order_succeeded

            async def partial(request, params):
                sent.append(params)
                return _error(-2021, "Order cancel-replace partially failed.", 409, data={
                    "cancelResult": "SUCCESS", "newOrderResult": "FAILURE",
                    "cancelResponse": {"symbol": "BTCUSDT", "status": "CANCELED"},
                    "newOrderResponse": {"code": -2010, "msg": "Order would immediately match and take."}})
            fake.script[("POST", "/api/v3/order/cancelReplace")].append(partial)
            with pytest.raises(CancelReplaceError) as e:
                await rest.cancel_replace("BTCUSDT", orig_client_order_id="r2", new_client_order_id="r4",
                                          side="BUY", quantity="1", price="1", order_type="LIMIT_MAKER")
            assert e.value.status == 409 and e.value.cancel_succeeded and not e.value.new_order_succeeded
            assert sent[0]["cancelReplaceMode"] == "STOP_ON_FAILURE" and sent[0]["timeInForce"] == "GTC"
            assert (sent[0]["cancelOrigClientOrderId"], sent[0]["newClientOrderId"]) == ("r1", "r2")
            assert (sent[0]["type"], sent[0]["quantity"], sent[0]["price"]) == ("LIMIT", "2", "101")
            assert sent[2]["type"] == "LIMIT_MAKER" and "timeInForce" not in sent[2]
            with pytest.raises(ValueError, match="new_client_order_id"):
                await rest.cancel_replace("BTCUSDT", orig_client_order_id="r2", side="BUY", quantity="1", price="1")
        async with Served(fake) as srv, BinanceRest(USDM, srv.url, creds()) as rest:
            with pytest.raises(ValueError, match="keeps its client order id"):
                await rest.cancel_replace("BTCUSDT", orig_client_order_id="a", new_client_order_id="b",
                                          side="BUY", quantity="1", price="1")
    run(main())


# --- unknown outcomes and retries --------------------------------------------------------------------

def test_order_with_unknown_outcome_is_not_resent(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir)

        async def stall(request, params):
            await fake.stall.wait()
            return None

        async def unknown_1007(request, params):
            return _error(-1007, "Timeout waiting for response from backend server. Send status unknown; "
                                 "execution status unknown.", 503)

        async def unknown_1006(request, params):
            return _error(-1006, "An unexpected response was received from the message bus. "
                                 "Execution status unknown.", 500)

        async def bad_gateway(request, params):
            return web.Response(status=502, text="<html>502 Bad Gateway</html>", content_type="text/html")
        fake.script[("POST", "/api/v3/order")].extend([stall, unknown_1007, unknown_1006, bad_gateway])
        fake.script[("DELETE", "/api/v3/order")].append(unknown_1007)
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url, creds(), max_retries=5) as rest:
            await rest.sync_clock(1)
            for i, code in enumerate((None, -1007, -1006, None)):
                with pytest.raises(OrderStatusUnknown) as e:
                    await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id=f"u{i}", quantity="1",
                                         price="1", timeout=0.3)
                assert (e.value.client_order_id, e.value.operation, e.value.symbol) == (f"u{i}", "new", "BTCUSDT")
                assert e.value.code == code
                assert len(fake.requests("POST", "/api/v3/order")) == i + 1      # exactly one send each
            with pytest.raises(OrderStatusUnknown) as e:
                await rest.cancel_order("BTCUSDT", client_order_id="u1")
            assert (e.value.operation, e.value.status) == ("cancel", 503)
            assert len(fake.requests("DELETE", "/api/v3/order")) == 1
        fake.stall.set()
    run(main())


def test_reads_and_unexecuted_requests_are_retried(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir)

        async def stall(request, params):
            await fake.stall.wait()
            return None

        async def internal(request, params):
            return _error(-1001, "Internal error; unable to process your request. Please try again.", 500)

        async def busy(request, params):
            return _error(-1008, "Server is currently overloaded with other requests. "
                                 "Please try again in a few minutes.", 503)

        async def unavailable(request, params):
            return web.Response(status=503, text="Service Unavailable.")
        fake.script[("GET", "/api/v3/account")].extend([stall, internal])
        fake.script[("POST", "/api/v3/order")].append(busy)
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url, creds(), attempt_timeout=0.2) as rest:
            await rest.sync_clock(1)
            assert (await rest.account(timeout=3))["accountType"] == "SPOT"
            # The stalled first attempt is still unanswered (None); the 500 was retried.
            assert [s for _, _, s, _ in fake.requests("GET", "/api/v3/account")] == [None, 500, 200]
            order = await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="busy1", quantity="1", price="1")
            assert order["clientOrderId"] == "busy1"
            assert [s for _, _, s, _ in fake.requests("POST", "/api/v3/order")] == [503, 200]
        fake.script[("POST", "/fapi/v1/order")].append(unavailable)
        async with Served(fake) as srv, BinanceRest(USDM, srv.url, creds()) as rest:
            await rest.sync_clock(1)
            await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="busy2", quantity="1", price="1")
            assert [s for _, _, s, _ in fake.requests("POST", "/fapi/v1/order")] == [503, 200]
        assert rest.retries >= 1
    run(main())


def test_a_cancelled_call_releases_its_budget(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir)

        async def stall(request, params):
            await fake.stall.wait()
            return None
        fake.script[("GET", "/api/v3/depth")].append(stall)
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url) as rest:
            task = asyncio.create_task(rest.depth("BTCUSDT", 5000))
            while not fake.requests("GET", "/api/v3/depth"):
                await asyncio.sleep(0.01)
            assert rest.rate_limiter.in_flight == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert rest.rate_limiter.in_flight == 0
            # It reached the server, so its weight stays counted (conservative), once.
            assert rest.rate_limiter.usage()["REQUEST_WEIGHT 1M"][0] == 250
            with pytest.raises(TypeError, match="float"):
                await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="x", quantity="1", price="1",
                                     extra={"icebergQty": 0.5})
            assert rest.rate_limiter.in_flight == 0 and rest.requests_sent == 1
    run(main())


def test_refused_connection_is_a_connection_error_not_an_unknown_status():
    async def main():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()                                   # nothing listens there now
        async with BinanceRest(SPOT, f"http://127.0.0.1:{port}", creds(), max_retries=2, backoff_base=0.01) as rest:
            with pytest.raises(BinanceConnectionError):
                await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="c1", quantity="1", price="1",
                                     timeout=1.0)
            assert rest.requests_sent == 3             # not executed, so safe to try again (2 retries)
    run(main())


# --- validation, user data, unicode ------------------------------------------------------------------

def test_invalid_input_is_refused_before_sending(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir)
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url, creds()) as rest:
            for bad in ("", "x" * 37, "has space", "emoji😀", "semi;colon", None):
                with pytest.raises(InvalidClientOrderId):
                    await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id=bad, quantity="1", price="1")
            with pytest.raises(TypeError, match="float"):
                await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="f", quantity=0.1, price="1")
            with pytest.raises(ValueError, match="positive"):
                await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="f", quantity="-1", price="1")
            with pytest.raises(ValueError, match="side"):
                await rest.new_order("BTCUSDT", "HOLD", "LIMIT", client_order_id="f", quantity="1", price="1")
            with pytest.raises(ValueError, match="needs a price"):
                await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="f", quantity="1")
            with pytest.raises(ValueError, match="USD-M parameters"):
                await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id="f", quantity="1", price="1",
                                     reduce_only=True)
            with pytest.raises(ValueError, match="depth limit"):
                await rest.depth("BTCUSDT", 5001)
            with pytest.raises(ValueError, match="USD-M futures endpoint"):
                await rest.positions()
            ok = "A.Z:/az09_-" + "x" * 25
            assert len(ok) == 36
            await rest.sync_clock(1)
            assert (await rest.new_order("BTCUSDT", "BUY", "LIMIT", client_order_id=ok, quantity="1",
                                         price="1"))["clientOrderId"] == ok
        assert [p for _, p, _, _ in fake.log].count("/api/v3/order") == 1
        async with Served(fake) as srv, BinanceRest(USDM, srv.url, creds()) as rest:
            with pytest.raises(ValueError, match="USD-M depth limit"):
                await rest.depth("BTCUSDT", 30)
    run(main())


def test_listen_keys_and_the_spot_ws_api_subscription(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir, offset_ms=777.0)
        async with Served(fake) as srv, BinanceRest(USDM, srv.url, creds()) as rest:
            key = await rest.create_listen_key()
            await rest.keepalive_listen_key()
            await rest.close_listen_key()
            assert rest.listen_key is None and len(key) == 64
            assert [(m, p) for m, p, _, _ in fake.log] == [
                ("POST", "/fapi/v1/listenKey"), ("PUT", "/fapi/v1/listenKey"), ("DELETE", "/fapi/v1/listenKey")]
            with pytest.raises(ValueError, match="spot WebSocket API"):
                rest.user_data_subscribe_request("1")
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url, creds()) as rest:
            key = await rest.create_listen_key()
            await rest.keepalive_listen_key()
            await rest.close_listen_key()
            assert all(status == 200 for _, _, status, _ in fake.log)
            await rest.sync_clock()
            req = rest.user_data_subscribe_request("req-1")
            assert req["id"] == "req-1" and req["method"] == "userDataStream.subscribe.signature"
            params = req["params"]
            assert params["apiKey"] == API_KEY and params["recvWindow"] == "5000"
            assert abs(int(params["timestamp"]) - fake.server_ms()) < 500
            payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature")
            assert payload == ws_api_payload(params)
            assert params["signature"] == hmac.new(SECRET.encode(), payload.encode(), hashlib.sha256).hexdigest()
    run(main())


def test_unicode_symbol_is_percent_encoded_and_signed(fixtures_dir):
    async def main():
        fake = FakeBinance(fixtures_dir)
        seen = []

        async def capture(request, params):
            seen.append(request.rel_url.raw_query_string)
            return None
        fake.script[("POST", "/api/v3/order")].append(capture)
        async with Served(fake) as srv, BinanceRest(SPOT, srv.url, creds()) as rest:
            await rest.sync_clock(1)
            order = await rest.new_order("这是测试币456", "BUY", "LIMIT", client_order_id="uni1", quantity="1",
                                         price="0.1")
            assert order["symbol"] == "这是测试币456"
        raw = seen[0]
        assert raw.startswith("symbol=%E8%BF%99%E6%98%AF%E6%B5%8B%E8%AF%95%E5%B8%81456&side=BUY&type=LIMIT&")
        raw.encode("ascii")
        assert fake.requests("POST", "/api/v3/order")[0][2] == 200     # the signature verified
    run(main())


def test_repr_hides_the_secret(fixtures_dir):
    rest = BinanceRest(SPOT, "http://127.0.0.1:1", creds())
    assert SECRET not in repr(rest) and API_KEY not in repr(rest)
    with pytest.raises(ValueError, match="BINANCE_SPOT and BINANCE_USDM"):
        BinanceRest(Market.OKX, "http://127.0.0.1:1")
    with pytest.raises(ValueError, match="60000"):
        BinanceRest(SPOT, "http://127.0.0.1:1", recv_window_ms=70000)
    info = copy.deepcopy({"rateLimits": []})
    rest.rate_limiter.set_limits_from_exchange_info(info)     # empty: keeps the documented defaults
    assert len(rest.rate_limiter.limits) == 4


# --- the limiter on its own, with a clock we set -----------------------------------------------------

def test_limiter_counts_a_request_near_a_boundary_in_both_windows():
    async def main():
        clock = {"ms": 10_950}
        limiter = RateLimiter([RateLimit("REQUEST_WEIGHT", "SECOND", 1, 10)], lambda: clock["ms"], window_margin_ms=100)
        loop = asyncio.get_running_loop()

        async def probe(weight):
            return await limiter.acquire(weight, 0, deadline=loop.time(), endpoint="GET /x")   # no waiting allowed

        first = await probe(6)                       # 10.950 s: could land in second 10 or 11 at the server
        assert first.windows[("REQUEST_WEIGHT", "1S")] == (6, (10, 11))
        limiter.settle(first, {"X-MBX-USED-WEIGHT-1S": "6"}, reached_server=True)
        assert limiter.used == {"USED-WEIGHT-1S": 6}
        clock["ms"] = 11_050                         # second 11 by our clock, maybe still 10 at the server
        second = await probe(4)                      # fits both: 6 + 4 <= 10
        limiter.settle(second, None, reached_server=True)      # no header: counted by us, in both
        with pytest.raises(RateLimitError) as e:
            await probe(1)
        assert e.value.retry_after == pytest.approx(1.05)      # second 11 is full until 12.000 + margin
        clock["ms"] = 12_050
        with pytest.raises(RateLimitError) as e:
            await probe(1)                           # maybe still second 11 at the server
        assert e.value.retry_after == pytest.approx(0.05)
        clock["ms"] = 12_150
        assert limiter.usage()["REQUEST_WEIGHT 1S"] == (0, 10)
        limiter.settle(await probe(10), None, reached_server=False)      # never sent: not counted
        assert limiter.usage()["REQUEST_WEIGHT 1S"] == (0, 10) and limiter.in_flight == 0
        limiter.settle(await probe(25), None, reached_server=True)       # above the limit: only into an empty window
        with pytest.raises(RateLimitError):
            await probe(25)
    run(main())


def test_limiter_headers_only_raise_counts_and_limits_can_change():
    async def main():
        clock = {"ms": 60_000 * 5 + 30_000}
        limiter = RateLimiter(SPOT_DEFAULT_LIMITS, lambda: clock["ms"])
        limiter.observe_headers({"x-mbx-used-weight-1m": "100", "X-MBX-ORDER-COUNT-10S": "3", "Other": "1"})
        limiter.observe_headers({"X-MBX-USED-WEIGHT-1M": "40"})             # an older answer arriving late
        assert limiter.usage()["REQUEST_WEIGHT 1M"] == (100, 6000)
        assert limiter.usage()["ORDERS 10S"] == (3, 100)
        limiter.set_limits_from_exchange_info({"rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50}]})
        assert limiter.usage() == {"REQUEST_WEIGHT 1M": (100, 1200), "ORDERS 10S": (3, 50)}
    run(main())
