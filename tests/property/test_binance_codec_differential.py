"""Hypothesis: generated Binance frames through the compiled decoder and the plain-Python reference
(tests/models/binance_reference.py) must give the same records, event and drop reason; mutated,
truncated and garbage bytes must never crash it, must always be counted, and never give records the
reference would not give.

Frames are built like Binance builds them - decimal strings padded with zeros past the instrument's
precision, one-letter keys - and then shuffled (any key order), re-spaced (any JSON whitespace),
wrapped in combined-stream envelopes, and given values the decoder must refuse (too many decimals,
negatives, NaN, unknown symbols, wrong JSON types, missing fields).
"""

import json
import random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import extrema
from extrema import InstrumentRegistry, Market
from extrema._core.binance import BinanceDecoder, BinanceEvent, DropReason
from models.binance_reference import Drop, ReferenceDecoder

SYMBOLS = ["BTCUSDT", "ETHUSDT", "NKNUSDT", "SUSHIUSDT", "1000PEPEUSDT"]
UNKNOWN = ["XYZUSDT", "BTCUSD_240329", ""]


class World:
    def __init__(self, market, precisions):
        self.market = market
        self.registry = InstrumentRegistry()
        self.instruments = {}
        for symbol, (pp, sp) in zip(SYMBOLS, precisions):
            name = f"{symbol}_X" + ("_PERP" if market == "usdm" else "")
            inst = self.registry.register(name, Market.BINANCE_USDM if market == "usdm" else Market.BINANCE_SPOT,
                                          f"1e-{pp}", f"1e-{sp}", venue_symbol=symbol)
            self.instruments[symbol] = (inst.id, pp, sp)
        self.decoder = BinanceDecoder(self.registry, Market.BINANCE_USDM if market == "usdm" else Market.BINANCE_SPOT)
        self.reference = ReferenceDecoder(market, self.instruments, client_id=self._client_id,
                                          asset_id=extrema.asset_id)

    def _client_id(self, text):
        return self.decoder.client_order_id(text)

    def both(self, raw):
        got = self.decoder.decode(raw, 123)
        info = dict(self.decoder.info)
        try:
            want = self.reference.decode(raw, 123)
        except Drop as drop:
            return got, info, drop
        return got, info, want


def records_of(arr):
    return [tuple(int(x) for x in r) for r in arr.tolist()]


# ------------------------------------------------------------------------------------- generators

@st.composite
def decimal_text(draw, precision, *, allow_bad=True, negative_ok=False):
    """Binance-style decimal text for a raw value at `precision`, padded to 0..8 more zeros; now and
    then a value the decoder must refuse."""
    if allow_bad and draw(st.integers(0, 40)) == 0:
        return draw(st.sampled_from(["NaN", "-1", "1e400", "", "abc", "1.2.3", "Infinity", "0x10",
                                     "1" + "0" * 25, "0." + "0" * precision + "1"]))
    raw = draw(st.integers(0, 10**12))
    if negative_ok and draw(st.booleans()):
        raw = -raw
    text = extrema.format_decimal(raw, precision)
    pad = draw(st.integers(0, 8))
    if pad:
        text += ("" if "." in text else ".") + "0" * pad
    return text


@st.composite
def levels(draw, pp, sp, max_size=30):
    return [[draw(decimal_text(pp)), draw(decimal_text(sp))] for _ in range(draw(st.integers(0, max_size)))]


@st.composite
def symbol_of(draw, world):
    if draw(st.integers(0, 20)) == 0:
        return draw(st.sampled_from(UNKNOWN))
    return draw(st.sampled_from(SYMBOLS))


ids = st.integers(0, 2**62)
times = st.integers(1_500_000_000_000, 1_900_000_000_000)


@st.composite
def depth(draw, world):
    symbol = draw(symbol_of(world))
    _, pp, sp = world.instruments.get(symbol, (0, 2, 3))
    d = {"e": "depthUpdate", "E": draw(times), "s": symbol, "U": draw(ids), "u": draw(ids),
         "b": draw(levels(pp, sp)), "a": draw(levels(pp, sp))}
    if world.market == "usdm":
        d["T"] = draw(times)
        d["pu"] = draw(ids)
    return d


@st.composite
def trade(draw, world):
    symbol = draw(symbol_of(world))
    _, pp, sp = world.instruments.get(symbol, (0, 2, 3))
    d = {"e": draw(st.sampled_from(["trade", "aggTrade"])), "E": draw(times), "s": symbol,
         "p": draw(decimal_text(pp)), "q": draw(decimal_text(sp)), "T": draw(times), "m": draw(st.booleans())}
    if d["e"] == "trade":
        d["t"] = draw(ids)
    else:
        d.update(a=draw(ids), f=draw(ids), l=draw(ids))
    return d


@st.composite
def quote(draw, world):
    symbol = draw(symbol_of(world))
    _, pp, sp = world.instruments.get(symbol, (0, 2, 3))
    d = {"u": draw(ids), "s": symbol, "b": draw(decimal_text(pp)), "B": draw(decimal_text(sp)),
         "a": draw(decimal_text(pp)), "A": draw(decimal_text(sp))}
    if world.market == "usdm" or draw(st.booleans()):
        d.update(e="bookTicker", E=draw(times), T=draw(times))
    return d


@st.composite
def kline(draw, world):
    symbol = draw(symbol_of(world))
    _, pp, sp = world.instruments.get(symbol, (0, 2, 3))
    v = draw(st.integers(0, 10**10))
    buy = draw(st.integers(0, v)) if draw(st.integers(0, 20)) else v + 1
    k = {"t": draw(times), "T": draw(times), "s": symbol, "i": "1m", "f": 1, "L": 2,
         "o": draw(decimal_text(pp)), "c": draw(decimal_text(pp)), "h": draw(decimal_text(pp)),
         "l": draw(decimal_text(pp)), "v": extrema.format_decimal(v, sp), "n": draw(st.integers(0, 10**6)),
         "x": draw(st.booleans()), "V": extrema.format_decimal(buy, sp), "Q": "0", "B": "0",
         "q": draw(decimal_text(pp + sp, allow_bad=False)) if draw(st.booleans())
         else draw(decimal_text(min(pp + sp + 3, 18), allow_bad=False))}
    return {"e": "kline", "E": draw(times), "s": symbol, "k": k}


@st.composite
def mark(draw, world):
    symbol = draw(symbol_of(world))
    _, pp, sp = world.instruments.get(symbol, (0, 2, 3))
    return {"e": "markPriceUpdate", "E": draw(times), "s": symbol, "p": draw(decimal_text(pp + 3)),
            "i": draw(decimal_text(pp + 4)), "P": draw(decimal_text(pp + 2)),
            "r": draw(st.sampled_from(["", "0.00010000", "-0.00038167", "0.000012345"])), "T": draw(times)}


CLIENT_IDS = ["", "web_abc", "x-TD67BGP9-T0000000000000", "autoclose-1", "O-20240930-081155-001-000-29"]


@st.composite
def order(draw, world):
    symbol = draw(symbol_of(world))
    _, pp, sp = world.instruments.get(symbol, (0, 2, 3))
    qty = draw(st.integers(1, 10**9))
    cum = draw(st.integers(0, qty))
    o = {"s": symbol, "c": draw(st.sampled_from(CLIENT_IDS)), "S": draw(st.sampled_from(["BUY", "SELL", "BOTH"])),
         "o": draw(st.sampled_from(["LIMIT", "MARKET", "STOP", "TAKE_PROFIT", "STOP_LOSS_LIMIT", "WEIRD"])),
         "f": draw(st.sampled_from(["GTC", "IOC", "FOK", "GTX", "GTD", "XXX"])),
         "q": extrema.format_decimal(qty, sp), "p": draw(decimal_text(pp)),
         "x": draw(st.sampled_from(["NEW", "TRADE", "CANCELED", "CALCULATED", "EXPIRED", "TRADE_PREVENTION"])),
         "X": draw(st.sampled_from(["NEW", "PARTIALLY_FILLED", "FILLED", "CANCELED", "NEW_ADL", "ODD"])),
         "i": draw(ids), "l": extrema.format_decimal(draw(st.integers(0, qty)), sp), "z": extrema.format_decimal(cum, sp),
         "L": draw(decimal_text(pp)), "n": draw(decimal_text(8, negative_ok=True)),
         "N": draw(st.sampled_from([None, "USDT", "BNB", "ETH"])), "T": draw(times), "t": draw(ids),
         "m": draw(st.booleans())}
    if world.market == "usdm":
        o.update(ap=draw(decimal_text(pp + 3)), sp=draw(st.sampled_from([None, "0", "7103.04"])),
                 rp=draw(decimal_text(8, negative_ok=True)))
        return {"e": "ORDER_TRADE_UPDATE", "E": draw(times), "T": draw(times), "o": o}
    o.update(e="executionReport", E=draw(times), P=draw(decimal_text(pp)), r=draw(st.sampled_from(
        ["NONE", "INSUFFICIENT_BALANCE", "SOMETHING_NEW"])), C=draw(st.sampled_from(["", "web_abc"])),
        Z=draw(decimal_text(pp + sp, allow_bad=False)) if draw(st.booleans()) else draw(decimal_text(8, allow_bad=False)))
    return o


@st.composite
def account(draw, world):
    assets = ["USDT", "BTC", "BNB", "ETH"]
    if world.market == "spot":
        return {"e": "outboundAccountPosition", "E": draw(times), "u": draw(times),
                "B": [{"a": draw(st.sampled_from(assets)), "f": draw(decimal_text(8)), "l": draw(decimal_text(8))}
                      for _ in range(draw(st.integers(0, 4)))]}
    positions = []
    for _ in range(draw(st.integers(0, 4))):
        symbol = draw(symbol_of(world))
        _, pp, sp = world.instruments.get(symbol, (0, 2, 3))
        positions.append({"s": symbol, "pa": draw(decimal_text(sp, negative_ok=True)), "ep": draw(decimal_text(pp + 3)),
                          "bep": draw(decimal_text(pp + 2)), "cr": draw(decimal_text(8, negative_ok=True)),
                          "up": draw(decimal_text(9, negative_ok=True)), "mt": draw(st.sampled_from(["cross", "isolated"])),
                          "iw": draw(decimal_text(8)), "ps": draw(st.sampled_from(["BOTH", "LONG", "SHORT"]))})
    return {"e": "ACCOUNT_UPDATE", "E": draw(times), "T": draw(times),
            "a": {"m": draw(st.sampled_from(["ORDER", "FUNDING_FEE", "NEW_REASON"])),
                  "B": [{"a": draw(st.sampled_from(assets)), "wb": draw(decimal_text(8, negative_ok=True)),
                         "cw": draw(decimal_text(8)), "bc": draw(decimal_text(8, negative_ok=True))}
                        for _ in range(draw(st.integers(0, 3)))],
                  "P": positions}}


@st.composite
def damaged(draw, payload):
    """Now and then: drop a field, or give one the wrong JSON type."""
    choice = draw(st.integers(0, 12))
    keys = [k for k in payload if k != "e"]
    if choice == 0 and keys:
        del payload[draw(st.sampled_from(keys))]
    elif choice == 1 and keys:
        payload[draw(st.sampled_from(keys))] = draw(st.sampled_from([None, 1.5, "7", [], {}, True, 2**70]))
    return payload


def shuffled(obj, rnd):
    if isinstance(obj, dict):
        items = list(obj.items())
        rnd.shuffle(items)
        return {k: shuffled(v, rnd) for k, v in items}
    if isinstance(obj, list):
        return [shuffled(v, rnd) for v in obj]
    return obj


@st.composite
def frame(draw, world):
    maker = draw(st.sampled_from([depth, trade, quote, kline, order, account] +
                                 ([mark] if world.market == "usdm" else [])))
    payload = draw(damaged(draw(maker(world))))
    payload = shuffled(payload, random.Random(draw(st.integers(0, 2**32))))
    if draw(st.booleans()):
        payload = {"stream": "x@" + str(payload.get("e", "bookTicker")), "data": payload}
    style = draw(st.integers(0, 2))
    if style == 0:
        text = json.dumps(payload, separators=(",", ":"))
    elif style == 1:
        text = json.dumps(payload)
    else:
        text = json.dumps(payload, indent=draw(st.integers(0, 3)))
    return text.encode()


precisions = st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), min_size=len(SYMBOLS), max_size=len(SYMBOLS))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(["spot", "usdm"]), precisions, st.data())
def test_generated_frames_decode_like_the_reference(market, precs, data):
    world = World(market, precs)
    for _ in range(3):
        raw = data.draw(frame(world))
        got, info, want = world.both(raw)
        if isinstance(want, Drop):
            assert len(got) == 0 and DropReason(info["drop_reason"]).name == want.reason, (
                raw, want.reason, world.decoder.last_drop)
        else:
            assert info["drop_reason"] == 0, (raw, world.decoder.last_drop)
            assert BinanceEvent(info["event"]).name == want.event
            assert records_of(got) == want.records, raw


@st.composite
def mutated(draw, world):
    raw = bytearray(draw(frame(world)))
    for _ in range(draw(st.integers(1, 4))):
        if not raw:
            break
        op = draw(st.integers(0, 3))
        at = draw(st.integers(0, len(raw) - 1))
        if op == 0:
            raw[at] = draw(st.integers(0, 255))
        elif op == 1:
            del raw[at]
        elif op == 2:
            raw.insert(at, draw(st.sampled_from(b'{}[]",:0123456789.-e\\ \x00\xff')))
        else:
            del raw[at:]
    return bytes(raw)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(["spot", "usdm"]), precisions, st.data())
def test_mutated_frames_never_crash_and_are_counted(market, precs, data):
    world = World(market, precs)
    raw = data.draw(mutated(world))
    before = world.decoder.stats()
    got, info, want = world.both(raw)
    after = world.decoder.stats()
    assert after["frames"] == before["frames"] + 1
    if len(got) == 0:
        # nothing published: either a counted drop or a frame that carries no records
        assert info["drop_reason"] != 0 or info["event"] != 0
        assert after["dropped"] == before["dropped"] + (info["drop_reason"] != 0)
        if not isinstance(want, Drop):
            assert want.records == [], (raw, world.decoder.last_drop)
    elif not isinstance(want, Drop):
        # what the decoder publishes is what the values say (On-Demand does not validate values it never
        # reads, so a frame broken only inside an unused field may still decode - correctly)
        assert records_of(got) == want.records, raw
    else:
        assert want.reason == "MALFORMED_JSON", (raw, want.reason)
        assert records_of(got) == records_of(world.decoder.decode(raw, 123))


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_is_a_counted_drop(raw):
    world = World("usdm", [(2, 3)] * len(SYMBOLS))
    got = world.decoder.decode(raw)
    assert len(got) == 0
    assert world.decoder.stats()["frames"] == 1


@pytest.mark.parametrize("market", ["spot", "usdm"])
def test_every_prefix_of_a_frame_is_dropped(market):
    world = World(market, [(2, 3)] * len(SYMBOLS))
    rnd = random.Random(5)
    frames = [
        json.dumps({"stream": "btcusdt@depth", "data": {"e": "depthUpdate", "E": 1, "T": 2, "s": "BTCUSDT", "U": 1,
                    "u": 5, "pu": 0, "b": [["100.00", "1.000"], ["99.00", "2.000"]], "a": [["101.00", "0.500"]]}}),
        json.dumps({"e": "ORDER_TRADE_UPDATE", "E": 1, "T": 2, "o": {
            "s": "BTCUSDT", "c": "abc", "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "1.000", "p": "10.00",
            "ap": "10.00", "sp": "0", "x": "TRADE", "X": "FILLED", "i": 1, "l": "1.000", "z": "1.000",
            "L": "10.00", "N": "USDT", "n": "0.1", "T": 3, "t": 4, "m": False, "rp": "0"}}),
        json.dumps({"e": "executionReport", "E": 1, "s": "BTCUSDT", "c": "abc", "S": "BUY", "o": "LIMIT",
                    "f": "GTC", "q": "1.000", "p": "10.00", "P": "0", "x": "TRADE", "X": "FILLED", "r": "NONE",
                    "i": 1, "l": "1.000", "z": "1.000", "L": "10.00", "n": "0.1", "N": "BNB", "T": 3, "t": 4,
                    "m": True, "Z": "10.000", "C": ""}),
    ]
    for text in frames:
        raw = text.encode()
        full = world.decoder.decode(raw)
        assert world.decoder.info["drop_reason"] == 0
        assert len(full) > 0
        for cut in range(len(raw)):
            assert len(world.decoder.decode(raw[:cut])) == 0, raw[:cut]
            assert world.decoder.info["drop_reason"] != 0
    assert world.decoder.stats()["frames"] == sum(len(t) + 1 for t in frames)
