"""The compiled order.place writer (extrema._core.binance_orders.OrderEncoder) against the Python path.

* Its signatures match Binance's official HMAC vectors (../shared/fixtures/signing/signing_vectors.json),
  and for the WebSocket API vector its signature payload is the documented one, byte for byte.
* For hypothesis-generated orders its frame (text and signature) equals what BinanceWsApi.place_order
  writes for the same order, given as the Decimals the execution client's Python path passes
  (binance_order_args of an OrderRequest) - so the two ways of placing an order cannot drift apart.
* End to end on the simulator: Context.submit of plain orders goes through the compiled path (the
  encoder's write count moves), the venue accepts the signature, and fills come back to the strategy.
"""
import itertools
import json
import threading
from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from extrema import EngineBuilder, InstrumentRegistry, OrderStatus, Strategy
from extrema._core.binance_orders import ORDER_LIMIT, ORDER_MARKET, OrderEncoder
from extrema._core.instruments import Market
from extrema.adapters.binance import BinanceCredentials, BinanceWsApi
from extrema.adapters.binance.execution import binance_order_args
from extrema.adapters.binance.venue import BinanceVenue
from extrema.execution.client import OrderRequest
from extrema.sim import BinanceSimulator, Faults, GeneratedMarket
from waiting import wait_for

SPOT, USDM = Market.BINANCE_SPOT, Market.BINANCE_USDM
TIF_TEXT = {1: "GTC", 2: "IOC", 3: "FOK"}


def _vectors(fixtures_dir):
    data = json.loads((fixtures_dir / "signing" / "signing_vectors.json").read_text())["vectors"]
    return [v for v in data if v["exchange"] == "binance" and v["scheme"].startswith("HMAC-SHA256")]


def test_signatures_match_the_official_hmac_vectors(fixtures_dir):
    vectors = _vectors(fixtures_dir)
    assert len(vectors) >= 3, "the fixture lost its Binance HMAC vectors"
    for v in vectors:
        enc = OrderEncoder(v["api_key"], v["secret"].encode())
        assert enc.sign(v["payload"]) == v["expected"], v["source"]


def test_the_ws_api_vector_is_written_byte_for_byte(fixtures_dir):
    # web-socket-api.md "Signed request example (HMAC)": SELL 0.01 BTCUSDT at 52000.00 GTC, recvWindow 100,
    # no client order id, no response type - the payload and signature of the documentation.
    (v,) = [v for v in _vectors(fixtures_dir) if "web-socket-api" in v["source"] and v["payload"].isascii()]
    enc = OrderEncoder(v["api_key"], v["secret"].encode(), 100)
    frame = enc.frame(7, "BTCUSDT", "", 1, ORDER_LIMIT, 1, 5_200_000, 2, 1_000_000, 8, 1645423376532, ack=False)
    assert enc.payload().decode() == v["payload"]
    msg = json.loads(frame)
    assert msg["id"] == 7 and msg["method"] == "order.place"
    assert msg["params"]["signature"] == v["expected"]
    assert msg["params"] == {"apiKey": v["api_key"], "price": "52000.00", "quantity": "0.01000000",
                             "recvWindow": 100, "side": "SELL", "symbol": "BTCUSDT", "timeInForce": "GTC",
                             "timestamp": 1645423376532, "type": "LIMIT", "signature": v["expected"]}


def _python_frame(market, creds, rid, ts, recv, symbol, coid, side, order_type, tif, price_raw, pp, qty_raw, sp):
    """What the Python path writes: an OrderRequest -> binance_order_args -> BinanceWsApi.place_order; the
    frame is taken where it would be handed to the socket."""
    api = BinanceWsApi(market, "ws://127.0.0.1:9/ws-api/v3", creds, now_ms=lambda: ts, recv_window_ms=recv)
    api._ready = True                  # the request path without a connection: the frame is captured below
    api._ids = itertools.count(rid)
    frames = []
    api.session.send_now = frames.append
    request = OrderRequest(1, "s", "BTC_USDT", ("buy", "sell")[side], Decimal(qty_raw).scaleb(-sp),
                           Decimal(price_raw).scaleb(-pp) if order_type == ORDER_LIMIT else None,
                           "limit" if order_type == ORDER_LIMIT else "market", TIF_TEXT.get(tif, "GTC"))
    venue_type, args = binance_order_args(market, request, coid)
    api.place_order(symbol, request.side.upper(), venue_type, **args)
    (frame,) = frames
    return frame


_TEXT = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(market=st.sampled_from([SPOT, USDM]), secret=st.text("abcdefABCDEF0123456789", min_size=1, max_size=100),
       symbol=_TEXT, coid=st.from_regex(r"[.A-Z:/a-z0-9_-]{1,36}", fullmatch=True), side=st.sampled_from([0, 1]),
       limit=st.booleans(), tif=st.sampled_from([1, 2, 3]), price_raw=st.integers(1, 10**15),
       pp=st.integers(0, 8), qty_raw=st.integers(1, 10**15), sp=st.integers(0, 8),
       rid=st.integers(1, 2**40), ts=st.integers(1, 2**45), recv=st.integers(1, 60000))
def test_compiled_frames_equal_the_python_path(market, secret, symbol, coid, side, limit, tif, price_raw, pp,
                                               qty_raw, sp, rid, ts, recv):
    creds = BinanceCredentials("k3y-" + symbol, secret)
    order_type = ORDER_LIMIT if limit else ORDER_MARKET
    tif = tif if limit else 0
    python = _python_frame(market, creds, rid, ts, recv, symbol, coid, side, order_type, tif,
                           price_raw if limit else 0, pp, qty_raw, sp)
    enc = creds.order_encoder(recv)
    compiled = enc.frame(rid, symbol, coid, side, order_type, tif, price_raw if limit else 0, pp,
                         qty_raw, sp, ts)
    assert compiled == python


@pytest.mark.parametrize("args", [
    dict(symbol='BTC"USDT'), dict(symbol=""), dict(symbol="BTCUSDT\u00e9"), dict(coid="a" * 37),
    dict(coid="has space"),
    dict(side=2), dict(order_type=3), dict(tif=4), dict(price_raw=0), dict(qty_raw=-1), dict(pp=19),
])
def test_orders_it_does_not_write_are_refused_unsent(args):
    enc = OrderEncoder("key", b"secret")
    call = dict(rid=1, symbol="BTCUSDT", coid="ex1", side=0, order_type=ORDER_LIMIT, tif=1, price_raw=100, pp=2,
                qty_raw=5, sp=3, ts=1)
    call.update(args)
    with pytest.raises(ValueError, match="not writable"):
        enc.frame(*call.values())


def test_keys_it_cannot_write_are_refused():
    with pytest.raises(ValueError):
        OrderEncoder('bad"key', b"s")
    with pytest.raises(ValueError):
        OrderEncoder("key", b"")
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    pem = Ed25519PrivateKey.generate().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())
    assert BinanceCredentials("key", private_key_pem=pem).order_encoder() is None   # Ed25519: Python path


# ------------------------------------------------------------------------------------------ end to end


class Trader(Strategy):
    def __init__(self, inst):
        super().__init__("trader")
        self.inst = inst
        self.lock = threading.Lock()
        self.sent, self.orders, self.fills, self.errors = {}, [], [], []

    def on_book(self, book):
        if self.sent or not book.book.best_ask or not book.book.best_bid:
            return
        tick, lot = self.inst.tick_size, self.inst.lot_size
        ask = Decimal(repr(book.book.best_ask)).quantize(tick)
        qty = max((Decimal(150) / ask / lot).to_integral_value() * lot + lot, lot)
        try:
            self.sent["limit"] = self.context.submit(self.inst, "buy", str(qty), ask + 10 * tick)   # marketable
            self.sent["market"] = self.context.submit(self.inst, "sell", str(qty))                  # market
            self.sent["resting"] = self.context.submit(self.inst, "buy", qty, (ask * Decimal("0.8")).quantize(tick))
        except Exception as exc:  # noqa: BLE001 - reported to the test thread
            self.errors.append(exc)

    def on_order(self, order):
        with self.lock:
            self.orders.append((order.client_order_id, order.status))

    def on_fill(self, fill):
        with self.lock:
            self.fills.append((fill.client_order_id, fill.quantity))


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_the_compiled_path_places_orders_and_fills_come_back(market):
    sim = BinanceSimulator(market=market, source=GeneratedMarket(seed=11, symbols=["BTCUSDT"], speed=20.0),
                           faults=Faults())
    sim.start_in_thread()
    try:
        registry = InstrumentRegistry()
        venue = BinanceVenue.for_simulator(sim)
        (inst,) = venue.load_instruments(registry, ["BTCUSDT"])
        trader = Trader(inst)
        engine = (EngineBuilder(registry).venue(venue).strategy(trader, subscribe={inst: "book"})
                  .options(stop_when_sources_done=False).build())
        execution = venue.execution
        assert execution.compiled_orders
        engine.start()
        try:
            wait_for(lambda: len(trader.sent) == 3 or trader.errors, what="the orders")
            assert not trader.errors, trader.errors
            ids = trader.sent
            wait_for(lambda: {ids["limit"], ids["market"]} <= {f[0] for f in trader.fills}, what="the fills")
            wait_for(lambda: (ids["resting"], OrderStatus.ACCEPTED) in trader.orders, what="the resting order")
            # all three went through the compiled writer, none through the Python one
            assert execution.ws_api._encoder.written == 3
            assert execution.ws_api.counters["sent"] >= 3 and not execution.rejections
            assert engine.orders.status(ids["limit"]) == OrderStatus.FILLED
            assert engine.orders.status(ids["market"]) == OrderStatus.FILLED
            # the Decimal view of a raw order is built on demand (rejection reports, replace)
            o = execution._orders[ids["resting"]]
            raw = engine.orders.get(ids["resting"])
            assert o.request.price == Decimal(raw["price_raw"]).scaleb(-inst.price_precision)
            assert o.quantity == Decimal(raw["quantity_raw"]).scaleb(-inst.size_precision)
            assert (o.request.side, o.request.order_type, o.request.time_in_force) == ("buy", "limit", "GTC")
        finally:
            engine.stop()
    finally:
        sim.stop_thread()


@settings(max_examples=200, deadline=None)
@given(tag=st.from_regex(r"[a-z0-9]{4}", fullmatch=True), coid=st.integers(1, 2**62 - 1), limit=st.booleans())
def test_int_client_ids_are_written_with_the_engine_prefix(tag, coid, limit):
    # The fast path hands the encoder the engine's int id: its text is written in C, byte for byte what
    # the text ClientOrderIds.text() would give.
    from extrema.execution.orders import ClientOrderIds
    ids = ClientOrderIds(tag)
    enc = OrderEncoder("key", b"secret")
    enc.client_id_prefix = ids.prefix
    assert enc.client_id_prefix == ids.prefix
    args = (ORDER_LIMIT, 1, 4300000, 2) if limit else (ORDER_MARKET, 0, 0, 2)
    assert enc.frame(7, "BTCUSDT", coid, 0, *args, 1000, 3, 1_700_000_000_000) == \
        enc.frame(7, "BTCUSDT", ids.text(coid), 0, *args, 1000, 3, 1_700_000_000_000)


@pytest.mark.parametrize("coid", [0, -1, 2**62, 2**63 - 1])
def test_int_client_ids_out_of_range_or_without_prefix_are_refused(coid):
    enc = OrderEncoder("key", b"secret")
    with pytest.raises(ValueError, match="client_id_prefix"):
        enc.frame(1, "BTCUSDT", 5, 0, ORDER_LIMIT, 1, 100, 2, 5, 3, 1)      # no prefix set
    enc.client_id_prefix = "exab12"
    with pytest.raises(ValueError, match="client_id_prefix"):
        enc.frame(1, "BTCUSDT", coid, 0, ORDER_LIMIT, 1, 100, 2, 5, 3, 1)
    with pytest.raises(ValueError):
        enc.client_id_prefix = 'ex"x'
