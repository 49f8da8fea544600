"""BinanceWsApi against the simulator's WebSocket API over real sockets on 127.0.0.1.

Orders are placed, queried, replaced and cancelled on spot (`/ws-api/v3`) and USD-M (`/ws-fapi/v1`);
the simulator routes them into the same handlers and matching engine as its REST API, so what the
client gets back is checked against the engine's own state. Also: HMAC and Ed25519 signatures (per
request and through session.logon), a bad signature refused with -1022, spot user data events on the
same connection, rateLimits taken into the limiter (and 429 / local refusal), fail-fast while
disconnected, answers lost to a disconnect reported as OrderStatusUnknown, reconnect.
"""

import asyncio
import hashlib
import hmac
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings, strategies as st

from extrema._core.instruments import Market
from extrema.adapters.binance import (
    BinanceConnectionError, BinanceCredentials, BinanceWsApi, CancelReplaceError, InvalidSignatureError,
    OrderNotFoundError, OrderStatusUnknown, RateLimit, RateLimitError, UnknownOrderError)
from extrema.sim import DEFAULT_API_KEY, DEFAULT_API_SECRET, BinanceSimulator, GeneratedMarket, RateLimits
from waiting import async_wait_for

SPOT, USDM = Market.BINANCE_SPOT, Market.BINANCE_USDM
HMAC_CREDS = BinanceCredentials(DEFAULT_API_KEY, DEFAULT_API_SECRET)
WS_PATH = {SPOT: "/ws-api/v3", USDM: "/ws-fapi/v1"}
# Spot BTCUSDT starts at 60000 (tick 0.01, min notional 5); USD-M tick 0.10, min notional 100.
SPOT_ORDER = dict(quantity="0.001", price="30000.00")
USDM_ORDER = dict(quantity="0.005", price="30000.0")


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def sim_of(market, **kw):
    return BinanceSimulator(market="spot" if market == SPOT else "usdm",
                            source=GeneratedMarket(seed=3, symbols=["BTCUSDT"], speed=5.0), **kw)


class Client:
    """A BinanceWsApi running against `sim`, collecting answers and events."""

    def __init__(self, sim, market, creds=HMAC_CREDS, **kw):
        self.answers, self.events = [], []
        self.api = BinanceWsApi(market, sim.ws_url + WS_PATH[market], creds, on_response=self.answers.append,
                                on_event=lambda e, ts: self.events.append(e), **kw)

    async def __aenter__(self):
        self.task = asyncio.ensure_future(self.api.run())
        await self.api.wait_ready(5)
        return self.api

    async def __aexit__(self, *exc):
        self.api.stop()
        await asyncio.wait_for(self.task, 5)


# ------------------------------------------------------------------------------------------ signing

def test_hot_path_signer_matches_hmac_and_the_official_ws_api_vectors(fixtures_dir):
    vectors = json.loads((fixtures_dir / "signing" / "signing_vectors.json").read_text())["vectors"]
    ws = [v for v in vectors if v["exchange"] == "binance" and "web-socket-api" in v["source"]
          and "secret" in v]
    assert ws, "the fixture lost its WebSocket API HMAC vectors"
    for v in ws:
        sign = BinanceCredentials(v["api_key"], v["secret"]).signer()
        assert sign(v["payload"].encode()) == v["expected"]


@settings(max_examples=200, deadline=None)
@given(secret=st.text(min_size=1, max_size=150), payload=st.binary(max_size=600))
def test_hot_path_signer_is_rfc2104_hmac_sha256(secret, payload):
    # Keys longer than the 64-byte SHA-256 block are hashed first (RFC 2104); both sides of that edge.
    creds = BinanceCredentials("k", secret)
    assert creds.signer()(payload) == hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def test_ed25519_signer_matches_credentials_sign():
    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())
    creds = BinanceCredentials("k", private_key_pem=pem)
    assert creds.signer()(b"apiKey=k&timestamp=1") == creds.sign(b"apiKey=k&timestamp=1")


# ------------------------------------------------------------------------------------------- spot

def test_spot_orders_status_replace_cancel_and_user_data_on_the_connection():
    async def main():
        async with sim_of(SPOT) as sim:
            client = Client(sim, SPOT, user_data=True)
            async with client as api:
                assert api.subscription_id == 0
                rid = api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id="w1", **SPOT_ORDER)
                # Written synchronously: the request is in flight before anything has been awaited.
                assert api.pending == 1 and api.counters["sent"] == 2      # subscribe + this order
                placed = await api.result(rid, timeout=5)
                assert placed["clientOrderId"] == "w1" and placed["status"] == "NEW"
                assert placed["price"] == "30000.00000000" and placed["timeInForce"] == "GTC"
                order = sim.engine.find("BTCUSDT", None, "w1")
                assert order is not None and order.is_open() and placed["orderId"] == order.order_id

                status = await api.result(api.order_status("BTCUSDT", client_order_id="w1"), timeout=5)
                assert status["orderId"] == order.order_id and status["origQty"] == "0.00100000"

                rid = api.replace_order("BTCUSDT", orig_client_order_id="w1", new_client_order_id="w2",
                                        side="BUY", quantity="0.002", price="30001.00")
                replaced = await api.result(rid, timeout=5)
                assert replaced["cancelResult"] == "SUCCESS" and replaced["newOrderResult"] == "SUCCESS"
                assert replaced["newOrderResponse"]["clientOrderId"] == "w2"
                assert not sim.engine.find("BTCUSDT", None, "w1").is_open()

                opened = await api.result(api.open_orders("BTCUSDT"), timeout=5)
                assert [o["clientOrderId"] for o in opened] == ["w2"]

                cancelled = await api.result(api.cancel_order("BTCUSDT", client_order_id="w2"), timeout=5)
                assert cancelled["status"] == "CANCELED" and cancelled["origClientOrderId"] == "w2"
                assert sim.engine.open_orders("BTCUSDT") == []

                # The venue's rejections come back as the adapter's exceptions, with Binance's codes.
                again = await api.response(api.cancel_order("BTCUSDT", client_order_id="w2"), timeout=5)
                assert again.status == 400 and isinstance(again.error, UnknownOrderError)
                assert again.error.code == -2011
                missing = await api.response(api.order_status("BTCUSDT", client_order_id="nope"), timeout=5)
                assert isinstance(missing.error, OrderNotFoundError) and missing.error.code == -2013
                bad = await api.response(api.replace_order("BTCUSDT", orig_client_order_id="gone",
                                                           new_client_order_id="w3", side="SELL",
                                                           quantity="0.001", price="90000.00"), timeout=5)
                assert isinstance(bad.error, CancelReplaceError) and bad.error.code == -2022
                assert bad.error.data["cancelResult"] == "FAILURE"
                assert bad.error.data["newOrderResult"] == "NOT_ATTEMPTED"

                # User data arrived on this same connection: NEW for w1, CANCELED for w1 (replace),
                # NEW and CANCELED for w2, with balance updates.
                def reports():
                    return [(e["c"] if e["x"] == "NEW" else e["C"], e["x"]) for e in client.events
                            if e.get("e") == "executionReport"]
                await async_wait_for(lambda: len(reports()) >= 4)
                assert reports() == [("w1", "NEW"), ("w1", "CANCELED"), ("w2", "NEW"), ("w2", "CANCELED")]
                assert any(e.get("e") == "outboundAccountPosition" for e in client.events)
                # Every request got exactly one answer through on_response, ids in order.
                ids = [a.request_id for a in client.answers]
                assert ids == sorted(ids) and len(ids) == api.counters["sent"]
            assert sim.counters["ws_api_connections"] == 1
    run(main())


def test_rate_limits_of_every_answer_reach_the_limiter():
    async def main():
        async with sim_of(SPOT) as sim:
            async with Client(sim, SPOT) as api:
                for i in range(3):
                    resp = await api.response(api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id=f"r{i}",
                                                              **SPOT_ORDER), timeout=5)
                    assert resp.ok
                kinds = {(r["rateLimitType"], r["interval"], r["intervalNum"]) for r in resp.rate_limits}
                assert kinds == {("REQUEST_WEIGHT", "MINUTE", 1), ("ORDERS", "SECOND", 10), ("ORDERS", "DAY", 1)}
                server = {(r["rateLimitType"], r["intervalNum"], r["interval"]): r["count"] for r in resp.rate_limits}
                assert server[("ORDERS", 10, "SECOND")] == 3
                # 2 weight for the connection + 1 per order, all counted by the simulator for this IP.
                assert server[("REQUEST_WEIGHT", 1, "MINUTE")] == sim.limiter.used_weight("127.0.0.1") == 5
                assert api.rate_limiter.used["ORDER-COUNT-10S"] == 3
                assert api.rate_limiter.used["USED-WEIGHT-1M"] == 5
                assert api.rate_limiter.in_flight == 0
                # An error answer carries rateLimits too, and a query does not report order counts.
                err = await api.response(api.order_status("BTCUSDT", client_order_id="none"), timeout=5)
                assert err.error is not None and [r["rateLimitType"] for r in err.rate_limits] == ["REQUEST_WEIGHT"]
                assert api.rate_limiter.used["USED-WEIGHT-1M"] == 5 + 4
                # returnRateLimits=false leaves the array out (the request is still counted).
                quiet = await api.response(api.request("time", {"returnRateLimits": False}, signed=False), timeout=5)
                assert quiet.ok and quiet.rate_limits is None and isinstance(quiet.result["serverTime"], int)
                assert sim.limiter.used_weight("127.0.0.1") == 5 + 4 + 1
    run(main())


def test_order_count_limit_429_then_refused_locally_without_sending():
    async def main():
        async with sim_of(SPOT, rate_limits=RateLimits(orders_per_10s=2)) as sim:
            async with Client(sim, SPOT) as api:
                # The client starts from Binance's documented 100 / 10 s; the first answer says 2.
                first = await api.response(api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id="q0",
                                                           **SPOT_ORDER), timeout=5)
                assert first.ok
                assert RateLimit("ORDERS", "SECOND", 10, 2) in api.rate_limiter.limits
                second = await api.response(api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id="q1",
                                                            **SPOT_ORDER), timeout=5)
                assert second.ok
                sent = api.counters["sent"]
                with pytest.raises(RateLimitError) as refused:
                    api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id="q2", **SPOT_ORDER)
                assert refused.value.retry_after > 0
                assert api.counters["sent"] == sent and api.pending == 0
                assert sim.engine.find("BTCUSDT", None, "q2") is None
                # Queries still go: only the order budget is full.
                assert (await api.response(api.order_status("BTCUSDT", client_order_id="q0"), timeout=5)).ok

        # The venue's own 429 (here with a client that believes in a bigger budget) blocks order requests.
        async with sim_of(SPOT, rate_limits=RateLimits(orders_per_10s=1)) as sim:
            big = [RateLimit("REQUEST_WEIGHT", "MINUTE", 1, 6000), RateLimit("ORDERS", "SECOND", 10, 1000)]
            async with Client(sim, SPOT, rate_limits=big) as api:
                rids = [api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id=f"b{i}", **SPOT_ORDER)
                        for i in range(2)]
                answers = [await api.response(r, timeout=5) for r in rids]
                assert answers[0].ok
                assert answers[1].status == 429 and isinstance(answers[1].error, RateLimitError)
                assert answers[1].error.code == -1015 and answers[1].error.retry_after > 0
                with pytest.raises(RateLimitError):
                    api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id="b9", **SPOT_ORDER)
    run(main())


# ------------------------------------------------------------------------------------------- USD-M

def test_usdm_place_modify_status_cancel():
    async def main():
        async with sim_of(USDM) as sim:
            async with Client(sim, USDM) as api:
                answer = await api.response(api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id="f1",
                                                            reduce_only=False, **USDM_ORDER), timeout=5)
                placed = answer.result
                assert placed["clientOrderId"] == "f1" and placed["status"] == "NEW"
                # Order methods report the order counts (10 s and 1 min on USD-M) next to the weight.
                assert {(r["rateLimitType"], r["intervalNum"], r["interval"]) for r in answer.rate_limits} == {
                    ("REQUEST_WEIGHT", 1, "MINUTE"), ("ORDERS", 10, "SECOND"), ("ORDERS", 1, "MINUTE")}
                assert api.rate_limiter.used["ORDER-COUNT-1M"] == 1
                assert placed["price"] == "30000.00" and placed["origQty"] == "0.005"
                modified = await api.result(api.replace_order("BTCUSDT", orig_client_order_id="f1", side="BUY",
                                                              quantity="0.006", price="30000.5"), timeout=5)
                assert modified["clientOrderId"] == "f1" and modified["origQty"] == "0.006"
                assert modified["price"] == "30000.50"
                status = await api.result(api.order_status("BTCUSDT", client_order_id="f1"), timeout=5)
                assert status["origQty"] == "0.006" and status["status"] == "NEW"
                cancelled = await api.result(api.cancel_order("BTCUSDT", client_order_id="f1"), timeout=5)
                assert cancelled["status"] == "CANCELED"
                assert not sim.engine.find("BTCUSDT", None, "f1").is_open()
                gone = await api.response(api.cancel_order("BTCUSDT", client_order_id="f1"), timeout=5)
                assert isinstance(gone.error, UnknownOrderError) and gone.error.code == -2011
                assert {r["rateLimitType"] for r in gone.rate_limits} == {"REQUEST_WEIGHT"}
                with pytest.raises(ValueError):
                    api.open_orders("BTCUSDT")          # openOrders.status is a spot method here
    run(main())


# --------------------------------------------------------------------------------- authentication

def _ed25519_pair():
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@pytest.mark.parametrize("market", [SPOT, USDM])
def test_ed25519_session_logon_then_unsigned_orders(market):
    private, public = _ed25519_pair()
    creds = BinanceCredentials("ed-key", private_key_pem=private)
    order = SPOT_ORDER if market == SPOT else USDM_ORDER

    async def main():
        async with sim_of(market, api_keys={"ed-key": public}) as sim:
            client = Client(sim, market, creds)
            frames = []
            send_now = client.api.session.send_now
            client.api.session.send_now = lambda data: (frames.append(json.loads(data)), send_now(data))[1]
            async with client as api:
                assert api.authenticated and api.logon
                assert frames[0]["method"] == "session.logon" and "signature" in frames[0]["params"]
                placed = await api.result(api.place_order("BTCUSDT", "SELL", "LIMIT", client_order_id="e1",
                                                          quantity=order["quantity"], price="90000.00"), timeout=5)
                assert placed["clientOrderId"] == "e1"
                params = frames[-1]["params"]
                assert "signature" not in params and "apiKey" not in params and "timestamp" in params
        # Signing every request with the Ed25519 key (logon=False) is accepted as well.
        async with sim_of(market, api_keys={"ed-key": public}) as sim:
            async with Client(sim, market, creds, logon=False) as api:
                assert not api.authenticated
                placed = await api.result(api.place_order("BTCUSDT", "SELL", "LIMIT", client_order_id="e2",
                                                          quantity=order["quantity"], price="90000.00"), timeout=5)
                assert placed["clientOrderId"] == "e2"
    run(main())


def test_bad_signature_is_refused_with_minus_1022_and_nothing_is_placed():
    async def main():
        async with sim_of(SPOT) as sim:
            wrong = BinanceCredentials(DEFAULT_API_KEY, "not-the-secret")
            async with Client(sim, SPOT, wrong) as api:
                resp = await api.response(api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id="x1",
                                                          **SPOT_ORDER), timeout=5)
                assert resp.status == 400 and isinstance(resp.error, InvalidSignatureError)
                assert resp.error.code == -1022 and resp.error.msg == "Signature for this request is not valid."
                assert resp.rate_limits is not None
                assert sim.engine.find("BTCUSDT", None, "x1") is None
                # Binance authenticates sessions for Ed25519 keys only: an HMAC-signed logon fails the same way.
                logon = await api.response(api.request("session.logon"), timeout=5)
                assert isinstance(logon.error, InvalidSignatureError)
                unknown = await api.response(api.request("no.such.method", signed=False), timeout=5)
                assert unknown.status == 400 and unknown.error.code == -1020
            with pytest.raises(ValueError, match="Ed25519"):
                BinanceWsApi(SPOT, sim.ws_url + "/ws-api/v3", HMAC_CREDS, logon=True)
    run(main())


# ------------------------------------------------------------------------------ connection state

def test_requests_while_disconnected_fail_fast_and_lost_answers_are_unknown_then_reconnect():
    async def main():
        async with sim_of(SPOT) as sim:
            client = Client(sim, SPOT)
            api = client.api
            with pytest.raises(BinanceConnectionError, match="not sent"):
                api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id="d0", **SPOT_ORDER)
            assert api.pending == 0 and api.rate_limiter.in_flight == 0
            async with client:
                ok = await api.response(api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id="d1",
                                                        **SPOT_ORDER), timeout=5)
                assert ok.ok
                # An answer delayed past a disconnect: the outcome is unknown, never silently dropped.
                sim.faults.latency_ms = 300
                rid = api.cancel_order("BTCUSDT", client_order_id="d1")
                waiter = asyncio.ensure_future(api.response(rid, timeout=5))
                await asyncio.sleep(0.05)
                sim.disconnect_all()
                lost = await waiter
                assert lost.status == 0 and isinstance(lost.error, OrderStatusUnknown)
                assert lost.error.client_order_id == "d1" and lost.error.operation == "cancel"
                assert api.rate_limiter.in_flight == 0
                with pytest.raises(BinanceConnectionError):
                    api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id="d2", **SPOT_ORDER)
                sim.faults.latency_ms = 0
                await api.wait_ready(5)
                assert api.session.stats.connects == 2
                again = await api.response(api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id="d3",
                                                           **SPOT_ORDER), timeout=5)
                assert again.ok and sim.engine.find("BTCUSDT", None, "d3").is_open()
            with pytest.raises(BinanceConnectionError):
                api.cancel_order("BTCUSDT", client_order_id="d3")
    run(main())


def test_bad_arguments_are_refused_before_anything_is_sent():
    async def main():
        async with sim_of(SPOT) as sim:
            async with Client(sim, SPOT) as api:
                sent = api.counters["sent"]
                bad = [dict(side="HOLD"), dict(price=30000.0), dict(price="3e4"), dict(client_order_id="has space"),
                       dict(time_in_force="NEVER"), dict(reduce_only=True), dict(symbol='BTC"USDT'),
                       dict(extra={"timestamp": 1}), dict(extra={"price": "1"})]
                for override in bad:
                    kw = dict(symbol="BTCUSDT", side="BUY", order_type="LIMIT", client_order_id="ok1", **SPOT_ORDER)
                    kw.update(override)
                    with pytest.raises((ValueError, TypeError)):
                        api.place_order(kw.pop("symbol"), kw.pop("side"), kw.pop("order_type"), **kw)
                assert api.counters["sent"] == sent and api.pending == 0 and api.rate_limiter.in_flight == 0
    run(main())


def test_server_shutdown_event_drains_then_reconnects():
    # "A serverShutdown event will be sent when the server is about to shutdown ... establish a new
    # connection as soon as possible" (spot WebSocket API general information).
    async def main():
        async with sim_of(SPOT) as sim:
            client = Client(sim, SPOT)
            refused = []

            def on_event(event, ts):
                client.events.append(event)
                try:        # right after the announcement: no new request goes out on this connection
                    client.api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id="s1", **SPOT_ORDER)
                except BinanceConnectionError as e:
                    refused.append(str(e))
            client.api.on_event = on_event
            async with client as api:
                for conn in list(sim.conns):
                    conn.push('{"event":{"e":"serverShutdown","E":1}}', market=False)
                await async_wait_for(lambda: client.events)
                assert client.events[0]["e"] == "serverShutdown"
                assert len(refused) == 1 and "server shutdown" in refused[0]
                await async_wait_for(lambda: api.session.stats.connects == 2 and api.ready)
                assert (await api.response(api.place_order("BTCUSDT", "BUY", "LIMIT", client_order_id="s2",
                                                           **SPOT_ORDER), timeout=5)).ok
    run(main())


def test_rate_limiter_try_acquire_and_ws_rate_limits_with_a_set_clock():
    from extrema.adapters.binance import RateLimiter
    now = [60_000 * 100 + 35_000]            # mid-minute and mid 10 s window: far from any edge
    lim = RateLimiter([RateLimit("REQUEST_WEIGHT", "MINUTE", 1, 10), RateLimit("ORDERS", "SECOND", 10, 2)],
                      lambda: now[0], window_margin_ms=100)
    a = lim.try_acquire(1, 1, endpoint="order.place")
    b = lim.try_acquire(1, 1, endpoint="order.place")
    with pytest.raises(RateLimitError) as full:
        lim.try_acquire(1, 1, endpoint="order.place")        # the 10 s order window is full
    assert 0 < full.value.retry_after <= 10.1
    lim.try_acquire(1, 0, endpoint="order.status")           # weight left, no order needed
    # The server's answer: counts replace our estimate, a different limit replaces ours.
    headers = lim.observe_rate_limits([
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 5, "count": 2},
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 10, "count": 3},
        {"rateLimitType": "BOGUS"}, "not a dict"])
    assert headers == {"X-MBX-ORDER-COUNT-10S": "2", "X-MBX-USED-WEIGHT-1M": "3"}
    assert RateLimit("ORDERS", "SECOND", 10, 5) in lim.limits
    lim.settle(a, headers, reached_server=True)
    lim.settle(b, None, reached_server=True)
    assert lim.in_flight == 1
    assert lim.try_acquire(1, 1, endpoint="order.place").orders == 1   # 5 allowed now
    now[0] += 10_000                                                  # next 10 s window
    for _ in range(5):
        lim.try_acquire(0, 1, endpoint="order.place")
    with pytest.raises(RateLimitError):
        lim.try_acquire(0, 1, endpoint="order.place")
