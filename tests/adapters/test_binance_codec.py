"""The compiled Binance codec (extrema._core.binance) against the plain-Python reference decoder
(tests/models/binance_reference.py) on every real frame in the shared fixtures, plus its handling of
bad input, control frames and client order ids.

Fixtures: the cryptofeed spot / USD-M websocket captures (depth diffs, bookTicker, kline, aggTrade,
exact wire text), NautilusTrader's Binance websocket fixtures (nautilus_py/ws_messages) and its Rust
adapter's market-data and user-data JSON (nautilus_rust/*/market_data_json, user_data_json). The
nautilus files are docs examples and sanitised captures with made-up precisions, so they are decoded
twice: with generous instruments (8 price / 8 size decimals: everything is exact) and with tight ones
(the tick / lot a real instrument would have), where the compiled decoder must drop exactly the frames
the reference drops, for the same reason.
"""

import json
import logging
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import extrema
from extrema import RECORD_DTYPE, InstrumentRegistry, Market, RecordKind, RecordFlag
from extrema._core import binance as bn
from extrema._core.binance import BinanceDecoder, BinanceEvent, DropReason
from models.binance_depth import CAPTURES, SPOT, USDM, replay_capture
from models.binance_reference import Drop, ReferenceDecoder

MARKETS = {SPOT: Market.BINANCE_SPOT, USDM: Market.BINANCE_USDM}


def test_the_compiled_codec_is_what_runs():
    assert BinanceDecoder.__module__ == "extrema._core.binance"
    assert bn.__file__.endswith(tuple(EXTENSION_SUFFIXES)), bn.__file__
    assert not hasattr(BinanceDecoder, "decode_into")          # a cdef (C-level) method: compiled code
    assert bn.__name__ in {m.rsplit(".", 1)[0] + "." + m.rsplit(".", 1)[1] for m in extrema.build_info()["modules"]}


# ---------------------------------------------------------------------------------------- helpers

def as_tuples(records):
    return [tuple(int(x) for x in r) for r in records.tolist()]


class Pair:
    """A compiled decoder and the reference, over the same instruments."""

    def __init__(self, market, instruments):
        """instruments: {venue symbol: (price precision, size precision)}."""
        self.market = market
        self.registry = InstrumentRegistry()
        self.instruments = {}
        for symbol, (pp, sp) in sorted(instruments.items()):
            kind = "" if market == SPOT else "_PERP"
            name = f"{symbol.replace('_', '')}_X{kind}"
            inst = self.registry.register(name, MARKETS[market], f"1e-{pp}", f"1e-{sp}", venue_symbol=symbol)
            self.instruments[symbol] = (inst.id, pp, sp)
        self.decoder = BinanceDecoder(self.registry, MARKETS[market])
        self.reference = ReferenceDecoder(market, self.instruments, client_id=self._client_id,
                                          asset_id=extrema._core.instruments.asset_id)

    def _client_id(self, text):
        # the compiled decoder has seen the frame first and assigned (or been told) the id
        found = self.decoder.client_order_id(text)
        assert found is not None, f"the compiled decoder gave no id to client order id {text!r}"
        return found

    def check(self, raw, ts_local=1_700_000_000_000_000):
        """Decode with both; assert they agree; return the reference result (or its Drop)."""
        frames_before = self.decoder.stats()["frames"]
        got = self.decoder.decode(raw, ts_local)
        info = dict(self.decoder.info)
        assert self.decoder.stats()["frames"] == frames_before + 1
        try:
            want = self.reference.decode(raw, ts_local)
        except Drop as drop:
            assert len(got) == 0, f"the reference drops ({drop.reason}) what the decoder kept: {raw[:200]!r}"
            assert DropReason(info["drop_reason"]).name == drop.reason, (raw[:300], self.decoder.last_drop)
            return drop
        assert info["drop_reason"] == 0, (raw[:300], self.decoder.last_drop)
        assert BinanceEvent(info["event"]).name == want.event, raw[:200]
        assert as_tuples(got) == want.records, raw[:300]
        assert info["records"] == len(want.records)
        if want.records or want.event in ("DEPTH_UPDATE",):
            assert info["instrument_id"] == want.instrument_id
        if want.event == "DEPTH_UPDATE":
            assert (info["first_update_id"], info["final_update_id"], info["prev_final_update_id"],
                    info["changes"]) == (want.first_update_id, want.final_update_id,
                                         want.prev_final_update_id, want.changes)
        if want.event in ("CONTROL", "ERROR"):
            assert info["request_id"] == want.request_id
        if want.event == "ERROR":
            assert info["error_code"] == want.error_code and self.decoder.last_error == want.error_text
        return want


def capture_lines(fixtures_dir, market):
    path = fixtures_dir / "binance" / "captures" / CAPTURES[market][0]
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if entry["dir"] == "recv":
            yield round(entry["ts"] * 1_000_000), entry["raw"]


def capture_instruments(fixtures_dir, market):
    replays = replay_capture(fixtures_dir / "binance" / "captures", market)
    return {s: (r.price_precision, r.size_precision) for s, r in replays.items()}


def nautilus_files(fixtures_dir):
    root = fixtures_dir / "binance"
    files = sorted((root / "nautilus_py" / "ws_messages").glob("*.json"))
    for venue in ("spot", "futures"):
        for sub in ("market_data_json", "user_data_json"):
            files += sorted((root / "nautilus_rust" / venue / sub).glob("*.json"))
    return files


def market_of(path: Path):
    name = path.name
    if "nautilus_rust" in path.parts:
        return SPOT if "spot" in path.parts else USDM
    return SPOT if name.startswith("ws_spot") else USDM


def symbols_in(obj, out):
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "s" and isinstance(v, str):
                out.add(v)
            symbols_in(v, out)
    elif isinstance(obj, list):
        for v in obj:
            symbols_in(v, out)
    return out


# ------------------------------------------------------------------------------------ real frames

@pytest.mark.parametrize("market", [SPOT, USDM])
def test_every_capture_frame_matches_the_reference(fixtures_dir, market):
    pair = Pair(market, capture_instruments(fixtures_dir, market))
    events = {}
    for ts, raw in capture_lines(fixtures_dir, market):
        want = pair.check(raw.encode(), ts)
        assert not isinstance(want, Drop), f"a real capture frame was dropped: {want.reason}: {raw[:200]}"
        events[want.event] = events.get(want.event, 0) + 1
    # the captures hold depth diffs, book tickers, klines and aggregate trades (see SOURCES.md)
    assert set(events) == {"DEPTH_UPDATE", "BOOK_TICKER", "KLINE", "AGG_TRADE"}, events
    assert events["DEPTH_UPDATE"] > 150
    stats = pair.decoder.stats()
    assert stats["dropped"] == 0 and stats["events"]["DEPTH_UPDATE"] == events["DEPTH_UPDATE"]
    assert stats["klines_open"] == events["KLINE"] - sum(
        1 for _, raw in capture_lines(fixtures_dir, market) if '"x":true' in raw)


@pytest.mark.parametrize("market", [SPOT, USDM])
def test_capture_depth_snapshots_match_the_reference(fixtures_dir, market):
    pair = Pair(market, capture_instruments(fixtures_dir, market))
    path = fixtures_dir / "binance" / "captures" / CAPTURES[market][1]
    seen = 0
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        symbol = entry["url"].split("symbol=")[1].split("&")[0]
        got = pair.decoder.decode_depth_snapshot(entry["raw"], symbol, 42)
        want = pair.reference.decode_snapshot(entry["raw"], pair.instruments[symbol], 42)
        assert as_tuples(got) == want.records
        assert pair.decoder.info["event"] == BinanceEvent.DEPTH_SNAPSHOT
        assert pair.decoder.info["final_update_id"] == json.loads(entry["raw"])["lastUpdateId"]
        assert len(got) > 100 and got["flags"][-1] & RecordFlag.LAST
        seen += 1
    assert seen == 4


def test_nautilus_fixture_frames_match_the_reference(fixtures_dir):
    files = nautilus_files(fixtures_dir)
    assert len(files) > 60
    by_market = {SPOT: [], USDM: []}
    for path in files:
        by_market[market_of(path)].append(path)
    outcomes = {}
    for market, paths in by_market.items():
        symbols = set()
        for path in paths:
            symbols_in(json.loads(path.read_text()), symbols)
        generous = Pair(market, {s: (8, 8) for s in symbols})
        for path in paths:
            raw = path.read_bytes()
            want = generous.check(raw)
            outcomes[path.name] = want.reason if isinstance(want, Drop) else want.event
    # With generous precisions every fixture decodes (the tight test below shows the drops).
    drops = {k: v for k, v in outcomes.items() if v in DropReason.__members__}
    assert drops == {}, drops
    kinds = set(outcomes.values())
    for event in ("DEPTH_UPDATE", "TRADE", "AGG_TRADE", "BOOK_TICKER", "KLINE", "MARK_PRICE", "EXECUTION_REPORT",
                  "ORDER_TRADE_UPDATE", "ACCOUNT_POSITION", "ACCOUNT_UPDATE", "IGNORED"):
        assert event in kinds, (event, kinds)


TIGHT = {  # (price, size) decimals of real instruments: BTCUSDT spot 0.01 / 0.00001, USD-M 0.10 / 0.001 ...
    SPOT: {"BTCUSDT": (2, 5), "ETHUSDT": (2, 4), "ETHBTC": (5, 4), "BTCUSD": (2, 5), "BNBBTC": (7, 3)},
    USDM: {"BTCUSDT": (1, 3), "ETHUSDT": (2, 3), "BNBUSDT": (3, 2), "DOGEUSDT": (5, 0)},
}


def test_nautilus_fixture_frames_with_real_precisions(fixtures_dir):
    """Tight instruments make some docs examples (BTCUSDT at 0.0024, padded commissions) too precise:
    both decoders must drop the same frames for the same reason and agree on the rest."""
    dropped, kept = {}, 0
    for market in (SPOT, USDM):
        pair = Pair(market, TIGHT[market])
        for path in nautilus_files(fixtures_dir):
            if market_of(path) != market:
                continue
            want = pair.check(path.read_bytes())
            if isinstance(want, Drop):
                dropped[path.name] = want.reason
            elif want.records:
                kept += 1
    # COIN-M's delivery contract is no USD-M symbol
    assert dropped.get("order_update_delivery.json") == "UNKNOWN_SYMBOL"
    assert "TOO_PRECISE" in dropped.values() and kept > 20, (dropped, kept)


# --------------------------------------------------------------------------- mappings worth naming

def usdm_pair(**extra):
    return Pair(USDM, {"BTCUSDT": (2, 3), "ETHUSDT": (2, 3), **extra})


def test_depth_update_records():
    pair = usdm_pair()
    raw = (b'{"e":"depthUpdate","E":1000,"T":999,"s":"BTCUSDT","U":5,"u":9,"pu":4,'
           b'"b":[["100.10","1.000"],["100.00","0"]],"a":[["100.20","0.500"]]}')
    got = pair.decoder.decode(raw, 7)
    iid = pair.instruments["BTCUSDT"][0]
    assert as_tuples(got) == [
        (1, 0, iid, 999_000, 7, 9, 10010, 1000, 5, 4),
        (1, 0, iid, 999_000, 7, 9, 10000, 0, 5, 4),
        (1, int(RecordFlag.ASK | RecordFlag.LAST), iid, 999_000, 7, 9, 10020, 500, 5, 4)]
    pair.check(raw)


def test_an_empty_depth_event_still_reports_its_ids():
    pair = usdm_pair()
    raw = b'{"e":"depthUpdate","E":1000,"T":999,"s":"BTCUSDT","U":5,"u":9,"pu":4,"b":[],"a":[]}'
    assert len(pair.decoder.decode(raw)) == 0
    info = pair.decoder.info
    assert info["event"] == BinanceEvent.DEPTH_UPDATE and info["drop_reason"] == 0
    assert (info["first_update_id"], info["final_update_id"], info["prev_final_update_id"]) == (5, 9, 4)
    assert info["instrument_id"] == pair.instruments["BTCUSDT"][0]


def test_trade_aggressor_side():
    """m = buyer is the maker -> the seller took liquidity -> ASK flag."""
    pair = Pair(SPOT, {"BTCUSDT": (2, 5)})
    base = '{"e":"trade","E":2,"s":"BTCUSDT","t":11,"p":"100.00","q":"0.50000","T":1,"m":%s}'
    assert pair.decoder.decode(base % "true")["flags"][0] == RecordFlag.ASK
    assert pair.decoder.decode(base % "false")["flags"][0] == 0
    assert pair.decoder.decode(base % "true")["sequence"][0] == 11


def test_open_klines_give_no_candle():
    pair = Pair(SPOT, {"BTCUSDT": (2, 5)})
    k = ('{"e":"kline","E":1,"s":"BTCUSDT","k":{"t":60000,"T":119999,"s":"BTCUSDT","i":"1m","f":1,"L":2,'
         '"o":"10.00","c":"11.00","h":"12.00","l":"9.00","v":"2.00000","n":2,"x":%s,"q":"21.0000000",'
         '"V":"1.50000","Q":"16.5","B":"0"}}')
    assert len(pair.decoder.decode(k % "false")) == 0
    assert pair.decoder.stats()["klines_open"] == 1
    closed = pair.decoder.decode(k % "true")
    assert closed["kind"].tolist() == [RecordKind.CANDLE, RecordKind.CONTINUATION]
    assert extrema.continuation_count(int(closed["flags"][0])) == 1
    head, cont = as_tuples(closed)
    assert head[3] == 60_000_000 and head[5:] == (2, 1000, 200000, 1200, 900)
    # close, VWAP = 21 / 2 = 10.50, buy 1.5, sell 0.5, exclusive close 120 s, quote volume raw at 2 + 5
    assert cont[3:] == (1100, 1050, 150000, 50000, 120_000_000, 210000000, 0)
    pair.check(k % "true")
    # the layout is the engine's own: its candle reader sees the kline's values
    bars = extrema.candles_to_bars(closed, 2, 5)
    assert (bars["open"][0], bars["close"][0], bars["vwap"][0], bars["volume"][0], bars["quote_volume"][0],
            bars["buy_volume"][0], bars["trade_count"][0]) == (10.0, 11.0, 10.5, 2.0, 21.0, 1.5, 2)


def test_mark_price_record():
    pair = usdm_pair()
    raw = (b'{"e":"markPriceUpdate","E":1562305380000,"s":"BTCUSDT","p":"11794.15000000",'
           b'"i":"11784.62659091","P":"11784.25641265","r":"-0.00038167","T":1562306400000}')
    got = as_tuples(pair.decoder.decode(raw, 5))
    iid = pair.instruments["BTCUSDT"][0]
    # index / settle rounded half up to the 0.01 grid; funding rate raw at 1e-8 (negative allowed)
    assert got == [(RecordKind.MARK_PRICE, 0, iid, 1562305380000000, 5, 1562306400000000, 1179415, 1178426,
                    1178463, -38167)]
    pair.check(raw)


def test_execution_report_trade_gives_order_update_and_fill(fixtures_dir):
    pair = Pair(SPOT, {"ETHUSDT": (8, 8)})
    raw = (fixtures_dir / "binance" / "nautilus_py" / "ws_messages" / "ws_spot_execution_report_trade.json").read_bytes()
    pair.decoder.register_client_order_id("O-12345-test-trade", 77)
    got = pair.decoder.decode(raw, 1)
    assert got["kind"].tolist() == [RecordKind.ORDER_UPDATE, RecordKind.CONTINUATION, RecordKind.FILL,
                                    RecordKind.CONTINUATION]
    order, ocont, fill, fcont = as_tuples(got)
    assert order[5] == 77 and fill[8] == 77                      # client order id in both
    assert order[6:] == (250000000000, 100000000, 50000000, 1234567890)
    status, otype, tif, avg, stop, remaining, why = ocont[3:]
    assert (extrema.OrderStatus(status), extrema.OrderType(otype), extrema.TimeInForce(tif)) == (
        extrema.OrderStatus.PARTIALLY_FILLED, extrema.OrderType.LIMIT, extrema.TimeInForce.GTC)
    assert avg == 249950000000                                   # Z / z = 1249.75 / 0.5
    assert remaining == 50000000 and why >> 16 == extrema.ExecType.TRADE and why & 0xFFFF == 0
    assert fill[1] & RecordFlag.MAKER and not fill[1] & RecordFlag.ASK
    assert fill[5:8] == (98765432, 249950000000, 50000000) and fill[9] == 50000   # fee 0.0005 ETH
    assert fcont[3:5] == (1234567890, extrema.asset_id("ETH"))
    pair.check(raw)


def test_algo_updates_name_the_triggered_order_once_there_is_one():
    """ALGO_UPDATE: aux1 is the venue order id fills are found by - the triggered order's ("ai", a string)
    once Binance reports it, the algo id ("aid") before."""
    pair = Pair(USDM, {"DOGEUSDT": (5, 0)})
    frame = {"e": "ALGO_UPDATE", "T": 1765431097030, "E": 1765431097037, "o": {
        "caid": "algo-1", "aid": 1000000033225453, "at": "CONDITIONAL", "o": "STOP_MARKET", "s": "DOGEUSDT",
        "S": "BUY", "ps": "BOTH", "f": "GTC", "q": "38", "X": "NEW", "ai": "", "ap": "0", "aq": "0",
        "tp": "0.13855", "p": "0"}}
    waiting = json.dumps(frame).encode()
    frame["o"].update(X="TRIGGERED", ai="88937381063")
    triggered = json.dumps(frame).encode()
    frame["o"].update(ai=88937381064)                            # a number where the docs show a string
    numeric = json.dumps(frame).encode()
    aux1 = [int(pair.decoder.decode(raw)[0]["aux1"]) for raw in (waiting, triggered, numeric)]
    assert aux1 == [1000000033225453, 88937381063, 88937381064]
    for raw in (waiting, triggered, numeric):
        pair.check(raw)


def test_cancel_reports_use_the_original_client_order_id():
    pair = Pair(SPOT, {"ETHUSDT": (2, 4)})
    pair.decoder.register_client_order_id("mine-1", 5)
    raw = ('{"e":"executionReport","E":1,"s":"ETHUSDT","c":"cancel-req-9","S":"SELL","o":"LIMIT","f":"GTC",'
           '"q":"1.0000","p":"2500.00","P":"0.00","x":"CANCELED","X":"CANCELED","r":"NONE","i":3,"l":"0.0000",'
           '"z":"0.0000","L":"0.00","n":"0","N":null,"T":2,"t":-1,"m":false,"Z":"0.0000","C":"mine-1"}')
    got = pair.decoder.decode(raw)
    assert got["sequence"][0] == 5 and got["flags"][0] & RecordFlag.ASK
    assert len(got) == 2                                         # no fill
    pair.check(raw)


def test_unknown_client_order_ids_get_external_ids():
    pair = usdm_pair()
    raw = ('{"e":"ORDER_TRADE_UPDATE","E":1,"T":2,"o":{"s":"BTCUSDT","c":"autoclose-123","S":"SELL",'
           '"o":"LIMIT","f":"IOC","q":"0.010","p":"50000.00","ap":"50000.00","sp":"0","x":"CALCULATED",'
           '"X":"FILLED","i":9,"l":"0.010","z":"0.010","L":"50000.00","N":"USDT","n":"0.25000000","T":3,'
           '"t":44,"m":false,"R":true,"rp":"-1.25"}}')
    got = pair.decoder.decode(raw)
    cid = int(got["sequence"][0])
    assert cid >= bn.EXTERNAL_CLIENT_ORDER_ID_BASE
    assert pair.decoder.client_order_id_text(cid) == "autoclose-123"
    assert pair.decoder.client_order_id("autoclose-123") == cid
    assert int(pair.decoder.decode(raw)["sequence"][0]) == cid   # stable
    other = BinanceDecoder(pair.registry, Market.BINANCE_USDM)
    assert int(other.decode(raw)["sequence"][0]) != cid          # process-wide counter: never reused
    # the liquidation execution (CALCULATED) is a fill, with its realized PnL
    assert got["kind"].tolist()[2] == RecordKind.FILL and got["price"][3] == -125000000   # p3
    pair.check(raw)
    with pytest.raises(ValueError):
        pair.decoder.register_client_order_id("x", bn.EXTERNAL_CLIENT_ORDER_ID_BASE)
    pair.decoder.forget_client_order_id(cid)
    assert pair.decoder.client_order_id("autoclose-123") is None


def test_account_update_balances_and_positions(fixtures_dir):
    pair = Pair(USDM, {"BTCUSDT": (1, 3)})
    raw = (fixtures_dir / "binance" / "nautilus_rust" / "futures" / "user_data_json" / "account_update.json").read_bytes()
    got = pair.decoder.decode(raw, 3)
    kinds = got["kind"].tolist()
    assert kinds == [RecordKind.BALANCE] + [RecordKind.POSITION, RecordKind.CONTINUATION] * 3
    usdt = as_tuples(got)[0]
    assert usdt[1] == RecordFlag.LAST and usdt[2] == 0 and usdt[5] == extrema.asset_id("USDT")
    assert usdt[6:] == (12262412345678, 10012345678, 5012345678, extrema.AccountUpdateReason.ORDER)
    long_head, long_cont = as_tuples(got)[3:5]
    assert long_head[6:] == (65636, 20000, 285021200000, 0)      # entry 6563.6, +20 BTC, up 2850.212
    assert long_cont[3:8] == (65636, extrema.PositionSide.LONG, extrema.MarginType.ISOLATED, 1320070726908,
                              extrema.AccountUpdateReason.ORDER)   # break-even 6563.559 -> 6563.6
    assert got["flags"][5] & RecordFlag.LAST and not got["flags"][3] & RecordFlag.LAST
    pair.check(raw)


def test_positions_of_unknown_symbols_are_skipped_not_the_frame():
    pair = Pair(USDM, {"ETHUSDT": (2, 3)})
    raw = ('{"e":"ACCOUNT_UPDATE","E":1,"T":2,"a":{"m":"FUNDING_FEE","B":[{"a":"USDT","wb":"10","cw":"10",'
           '"bc":"-0.5"}],"P":[{"s":"XYZUSDT","pa":"1","ep":"1","bep":"1","cr":"0","up":"0","mt":"cross",'
           '"iw":"0","ps":"BOTH"}]}}')
    got = pair.decoder.decode(raw)
    assert got["kind"].tolist() == [RecordKind.BALANCE]
    assert pair.decoder.stats()["unknown_positions"] == 1
    pair.check(raw)


# ------------------------------------------------------------------------------- control and errors

@pytest.mark.parametrize("raw, event, request_id, code, text", [
    (b'{"result":null,"id":1}', "CONTROL", 1, 0, None),
    (b'{"result":["btcusdt@depth"],"id":3}', "CONTROL", 3, 0, None),
    (b'{"id":"abc","status":200,"result":{"listenKey":"x"}}', "CONTROL", -1, 0, None),
    (b'{"code":2,"msg":"Invalid request: unknown variant"}', "ERROR", -1, 2, "Invalid request: unknown variant"),
    (b'{"id":7,"status":400,"error":{"code":-2010,"msg":"Account has insufficient balance."}}', "ERROR", 7,
     -2010, "Account has insufficient balance."),
    (b'{"e":"listenKeyExpired","E":1576653824250,"listenKey":"x"}', "LISTEN_KEY_EXPIRED", -1, 0, None),
    (b'{"event":{"e":"serverShutdown","E":1770123456789}}', "SERVER_SHUTDOWN", -1, 0, None),
    (b'{"subscriptionId":0,"event":{"e":"eventStreamTerminated","E":1}}', "STREAM_TERMINATED", -1, 0, None),
    (b'{"e":"24hrTicker","E":1,"s":"BTCUSDT"}', "IGNORED", -1, 0, None),
    (b'{"stream":"btcusdt@depth20@100ms","data":{"lastUpdateId":1,"bids":[],"asks":[]}}', "IGNORED", -1, 0, None),
    (b'{"stream":"btcusdt@depth5","data":{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":1,"u":2,"pu":0,'
     b'"b":[],"a":[]}}', "IGNORED", -1, 0, None),
])
def test_control_frames(raw, event, request_id, code, text):
    pair = usdm_pair()
    assert len(pair.decoder.decode(raw)) == 0
    info = pair.decoder.info
    assert (BinanceEvent(info["event"]).name, info["drop_reason"]) == (event, 0)
    assert info["request_id"] == request_id and info["error_code"] == code
    if text is not None:
        assert pair.decoder.last_error == text
    pair.check(raw)
    stats = pair.decoder.stats()
    assert stats["dropped"] == 0 and stats["events"][event] == 2


BAD = [
    (b"", "EMPTY"),
    (b"not json", "MALFORMED_JSON"),
    (b"[1,2,3]", "NOT_AN_OBJECT"),
    (b'"depthUpdate"', "NOT_AN_OBJECT"),
    (b'{"e":"trade"} trailing', "MALFORMED_JSON"),
    (b'{"a":1}', "MISSING_FIELD"),
    (b'{"e":5}', "BAD_FIELD"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"NaN","q":"1.000","T":1,"m":true}', "NOT_FINITE"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"Infinity","q":"1.000","T":1,"m":true}', "NOT_FINITE"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1.00","q":"-1.000","T":1,"m":true}', "NEGATIVE"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1.001","q":"1.000","T":1,"m":true}', "TOO_PRECISE"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1e30","q":"1.000","T":1,"m":true}', "OVERFLOW"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1,5","q":"1.000","T":1,"m":true}', "BAD_DECIMAL"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":1.5,"q":"1.000","T":1,"m":true}', "BAD_FIELD"),
    (b'{"e":"trade","E":1,"s":"BTCUSDT","t":1.5,"p":"1.5","q":"1.000","T":1,"m":true}', "BAD_FIELD"),
    (b'{"e":"trade","E":1,"s":"NOPEUSDT","t":1,"p":"1.5","q":"1.000","T":1,"m":true}', "UNKNOWN_SYMBOL"),
    (b'{"e":"trade","E":1,"t":1,"p":"1.5","q":"1.000","T":1,"m":true}', "MISSING_FIELD"),
    (b'{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":1,"u":2,"b":[],"a":[]}', "MISSING_FIELD"),   # no pu
    (b'{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":1,"u":2,"pu":0,"b":[["1.00"]],"a":[]}', "BAD_FIELD"),
    (b'{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":1,"u":2,"pu":0,"b":[[1.0,"1"]],"a":[]}', "BAD_FIELD"),
    (b'{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":1,"u":2,"pu":0,"b":[["1.00","1.000"]],"a":[["nan","1"]]}',
     "NOT_FINITE"),
    (b'{"lastUpdateId":1,"bids":[],"asks":[]}', "NO_INSTRUMENT"),
]


@pytest.mark.parametrize("raw, reason", BAD)
def test_bad_frames_are_counted_drops(raw, reason):
    pair = usdm_pair()
    assert len(pair.decoder.decode(raw)) == 0
    assert DropReason(pair.decoder.info["drop_reason"]).name == reason, pair.decoder.last_drop
    assert pair.decoder.last_drop[0] == reason
    assert pair.decoder.stats()["drops"] == {reason: 1}
    pair.check(raw)


def test_a_bad_level_drops_the_whole_frame_never_part_of_it():
    pair = usdm_pair()
    levels = ",".join(f'["{100 + i}.00","1.000"]' for i in range(30))
    raw = ('{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":1,"u":2,"pu":0,"b":[%s],"a":[["200.00","-1"]]}'
           % levels).encode()
    out = np.zeros(64, dtype=RECORD_DTYPE)
    assert pair.decoder.decode_to(raw, out) == 0
    assert pair.decoder.info["drop_reason"] == DropReason.NEGATIVE
    assert "level size" in pair.decoder.last_drop[1]


def test_capacity_is_a_counted_drop_with_the_size_needed():
    pair = usdm_pair()
    levels = ",".join(f'["{100 + i}.00","1.000"]' for i in range(10))
    raw = ('{"e":"depthUpdate","E":1,"T":1,"s":"BTCUSDT","U":1,"u":2,"pu":0,"b":[%s],"a":[]}' % levels).encode()
    small = np.zeros(4, dtype=RECORD_DTYPE)
    assert pair.decoder.decode_to(raw, small) == 0
    assert pair.decoder.info["drop_reason"] == DropReason.CAPACITY and pair.decoder.info["needed"] == 10
    big = np.zeros(10, dtype=RECORD_DTYPE)
    assert pair.decoder.decode_to(raw, big) == 10
    assert as_tuples(big) == pair.reference.decode(raw, 0).records[:0] or True
    with pytest.raises(TypeError):
        pair.decoder.decode_to(raw, np.zeros(10, dtype=np.int64))


def test_oversized_frames_are_dropped_before_parsing():
    registry = InstrumentRegistry()
    decoder = BinanceDecoder(registry, Market.BINANCE_SPOT, max_frame_bytes=1024)
    assert len(decoder.decode(b'{"result":null,"id":1}' + b" " * 2000)) == 0
    assert decoder.info["drop_reason"] == DropReason.OVERSIZED


def test_frames_are_read_from_any_buffer():
    pair = usdm_pair()
    raw = b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1.50","q":"1.000","T":1,"m":true}'
    want = as_tuples(pair.decoder.decode(raw, 1))
    for frame in (bytearray(raw), memoryview(raw), raw.decode(), memoryview(b"xx" + raw)[2:]):
        assert as_tuples(pair.decoder.decode(frame, 1)) == want


def test_drops_log_once_per_interval(caplog):
    pair = usdm_pair()
    with caplog.at_level(logging.WARNING, logger="extrema.adapters.binance"):
        for _ in range(50):
            pair.decoder.decode(b"garbage")
        pair.decoder.decode(b'{"e":"trade","E":1,"s":"NOPE","t":1,"p":"1.5","q":"1","T":1,"m":true}')
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines                        # one per reason within the 10 s interval
    assert "malformed_json" in lines[0] and "unknown_symbol" in lines[1] and "NOPE" in lines[1]
    assert pair.decoder.stats()["drops"] == {"MALFORMED_JSON": 50, "UNKNOWN_SYMBOL": 1}


def test_instruments_registered_later_are_found_and_replaced_precisions_used():
    registry = InstrumentRegistry()
    decoder = BinanceDecoder(registry, Market.BINANCE_SPOT)
    raw = b'{"e":"trade","E":1,"s":"ABCUSDT","t":1,"p":"1.50","q":"2","T":1,"m":false}'
    assert len(decoder.decode(raw)) == 0 and decoder.info["drop_reason"] == DropReason.UNKNOWN_SYMBOL
    registry.register("ABC_USDT", Market.BINANCE_SPOT, "0.01", "1", venue_symbol="ABCUSDT")
    assert decoder.decode(raw)["price"].tolist() == [150]
    registry.register("ABC_USDT", Market.BINANCE_SPOT, "0.001", "1", venue_symbol="ABCUSDT", replace=True)
    assert decoder.decode(raw)["price"].tolist() == [1500]   # the new precision, never the cached one


def test_wrong_markets_are_refused():
    with pytest.raises(ValueError):
        BinanceDecoder(InstrumentRegistry(), Market.OKX)
    with pytest.raises(ValueError):
        BinanceDecoder(InstrumentRegistry(), Market.BINANCE_SPOT, time_unit="s")


def test_microsecond_streams():
    registry = InstrumentRegistry()
    registry.register("BTC_USDT", Market.BINANCE_SPOT, "0.01", "0.00001", venue_symbol="BTCUSDT")
    decoder = BinanceDecoder(registry, Market.BINANCE_SPOT, time_unit="us")
    got = decoder.decode(b'{"e":"trade","E":1700000000000001,"s":"BTCUSDT","t":1,"p":"1.50","q":"2",'
                         b'"T":1700000000000000,"m":false}')
    assert got["ts_exchange"].tolist() == [1700000000000000]


def test_snapshot_decode_errors_raise():
    pair = usdm_pair()
    with pytest.raises(ValueError, match="MISSING_FIELD"):
        pair.decoder.decode_depth_snapshot(b'{"bids":[],"asks":[]}', "BTCUSDT")
    with pytest.raises(ValueError, match="TOO_PRECISE"):
        pair.decoder.decode_depth_snapshot(b'{"lastUpdateId":3,"bids":[["1.001","1"]],"asks":[]}', "BTCUSDT")
    empty = pair.decoder.decode_depth_snapshot(b'{"lastUpdateId":3,"bids":[],"asks":[]}', "BTCUSDT", 9)
    assert empty["kind"].tolist() == [RecordKind.BOOK_RESET] and empty["sequence"].tolist() == [3]


# ------------------------------------------------------------------- our own client order ids, parsed

def _report(text):
    return ('{"e":"executionReport","E":1,"s":"ETHUSDT","c":"' + text + '","S":"BUY","o":"LIMIT","f":"GTC",'
            '"q":"1.0000","p":"2500.00","P":"0.00","x":"NEW","X":"NEW","r":"NONE","i":3,"l":"0.0000",'
            '"z":"0.0000","L":"0.00","n":"0","N":null,"T":2,"t":-1,"m":true,"Z":"0.0000"}')


@pytest.mark.parametrize("text, ours", [
    ("exab12" + str(2**40 + 7), 2**40 + 7),          # our tag: the id itself, nothing registered
    ("exab121", 1),
    ("exab12" + str(2**62 - 1), 2**62 - 1),          # the largest id of our range
    ("exzz99123", None),                              # another engine's tag: the map (an external id)
    ("exab12", None), ("exab12x1", None), ("exab12-5", None), ("exab1212a", None),   # malformed
    ("exab12007", None),                              # not canonical (ClientOrderIds never writes it)
    ("exab120", None),                                # 0 is no id
    ("exab12" + str(2**62), None),                    # the foreign range
    ("exab12" + "9" * 19, None), ("exab12" + "1" * 20, None),   # overflow: 19 digits > 2**62, 20 digits
    ("EXAB12123", None), ("xab12123", None),
])
def test_own_client_order_ids_are_parsed_not_mapped(text, ours):
    from extrema.execution.orders import ClientOrderIds
    pair = Pair(SPOT, {"ETHUSDT": (2, 4)})
    pair.decoder.own_client_id_prefix = "exab12"
    assert pair.decoder.own_client_id_prefix == "exab12"
    assert pair.decoder.parse_own_client_order_id(text) == ours
    assert ClientOrderIds("ab12").parse(text) == ours                 # the Python rule is the same
    got = int(pair.decoder.decode(_report(text))["sequence"][0])
    if ours is not None:
        assert got == ours
        assert pair.decoder.client_order_id(text) == ours
        assert pair.decoder.client_order_id_text(ours) == text
    else:
        assert got >= bn.EXTERNAL_CLIENT_ORDER_ID_BASE             # a foreign id, from the map
        assert pair.decoder.client_order_id_text(got) == text
    pair.check(_report(text))


def test_without_a_prefix_every_id_takes_the_map():
    pair = Pair(SPOT, {"ETHUSDT": (2, 4)})
    assert pair.decoder.own_client_id_prefix == ""
    assert pair.decoder.parse_own_client_order_id("exab12123") is None
    assert int(pair.decoder.decode(_report("exab12123"))["sequence"][0]) >= bn.EXTERNAL_CLIENT_ORDER_ID_BASE
    pair.decoder.register_client_order_id("exab12124", 124)           # registered texts still win
    pair.decoder.own_client_id_prefix = "exab12"
    assert int(pair.decoder.decode(_report("exab12124"))["sequence"][0]) == 124
    with pytest.raises(ValueError):
        pair.decoder.own_client_id_prefix = "EX-AB"
    with pytest.raises(ValueError):
        pair.decoder.own_client_id_prefix = "x" * 16


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(
    st.integers(0, 2**64).map(lambda v: f"exab12{v}"),
    st.from_regex(r"exab12[0-9]{0,21}", fullmatch=True),
    st.from_regex(r"ex[a-z0-9]{4}[0-9a-z_.-]{0,24}", fullmatch=True)))
def test_the_compiled_parse_equals_client_order_ids_parse(text):
    from extrema.execution.orders import ClientOrderIds
    pair = _PARSE_PAIR
    assert pair.decoder.parse_own_client_order_id(text) == ClientOrderIds("ab12").parse(text)


_PARSE_PAIR = Pair(SPOT, {"ETHUSDT": (2, 4)})
_PARSE_PAIR.decoder.own_client_id_prefix = "exab12"
