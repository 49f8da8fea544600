"""Bars on real trade streams: the compiled BarAggregator against tests/models/bars_reference.py on every
trade capture in the shared fixtures, and against Binance's own 1m klines in the same capture.

Trades are decoded here from the exact wire text (`raw`) with extrema.parse_decimal, one record stream
per (venue, symbol), each at the precision of the most decimals its prices / sizes carry:
  Binance aggTrade  p, q, T (ms), m = buyer is maker -> the seller was the aggressor (FLAG_ASK)
      https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/Aggregate-Trade-Streams
  OKX trades        px, sz, ts (ms), side = the taker's side
  Coinbase match    price, size, time (ISO µs), side = the MAKER's side, so the aggressor is the opposite
      (last_match is the latest match before subscribing: a real trade too)
  Hyperliquid       px, sz, time (ms), side = the aggressor's side (B buy, A sell)
"""
import datetime
import json
from collections import defaultdict
from decimal import Decimal

import pytest

import extrema
from extrema import RecordFlag, RecordKind
from extrema._core.bars import BarAggregator

from models.bars_reference import ReferenceBars, candles_as_dicts

S = 1_000_000
ASK = int(RecordFlag.ASK)
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _messages(path):
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        raw = entry.get("raw")
        if raw is None or entry.get("dir", "recv") != "recv":
            continue
        try:
            message = json.loads(raw)
        except ValueError:
            continue
        if "ts" in entry:
            local_us = round(entry["ts"] * S)
        else:
            local_us = entry["local_ts_ns"] // 1000
        yield local_us, message


def _iso_us(text):
    return (datetime.datetime.fromisoformat(text.replace("Z", "+00:00")) - EPOCH) // datetime.timedelta(microseconds=1)


def load_trades(fixtures_dir):
    """{(venue, symbol): [(ts_us, ts_local_us, price_text, size_text, seller_aggressor, trade_id, extra)]}"""
    streams = defaultdict(list)
    for path in sorted((fixtures_dir / "binance" / "captures").glob("cryptofeed_*_ws_*.jsonl")):
        venue = "binance_" + path.name.split("_")[1]
        for local_us, m in _messages(path):
            d = m.get("data") if isinstance(m, dict) else None
            if isinstance(d, dict) and d.get("e") == "aggTrade":
                streams[(venue, d["s"])].append((d["T"] * 1000, local_us, d["p"], d["q"], d["m"], d["a"],
                                                 (d["f"], d["l"])))
    for path in sorted((fixtures_dir / "okx" / "captures").glob("*.jsonl")):
        for local_us, m in _messages(path):
            if isinstance(m, dict) and (m.get("arg") or {}).get("channel") == "trades" and "data" in m:
                for d in m["data"]:
                    streams[("okx", d["instId"])].append((int(d["ts"]) * 1000, local_us, d["px"], d["sz"],
                                                          d["side"] == "sell", int(d["tradeId"]), None))
    for path in sorted((fixtures_dir / "coinbase" / "captures").glob("*.jsonl")):
        for local_us, m in _messages(path):
            if isinstance(m, dict) and m.get("type") in ("match", "last_match"):
                streams[("coinbase", m["product_id"])].append((_iso_us(m["time"]), local_us, m["price"], m["size"],
                                                               m["side"] == "buy", m["trade_id"], None))
    for path in sorted((fixtures_dir / "hyperliquid" / "captures").glob("*.jsonl")):
        for local_us, m in _messages(path):
            if isinstance(m, dict) and m.get("channel") == "trades":
                for d in m["data"]:
                    streams[("hyperliquid", d["coin"])].append((d["time"] * 1000, local_us, d["px"], d["sz"],
                                                                d["side"] == "A", d["tid"] % 2**62, None))
    return streams


def _decimals(text):
    return len(text.split(".")[1]) if "." in text else 0


def to_records(rows):
    """Trade rows -> (TRADE records, price precision, size precision)."""
    pp = max(_decimals(r[2]) for r in rows)
    sp = max(_decimals(r[3]) for r in rows)
    rec = extrema.empty_records(len(rows))
    rec["kind"] = RecordKind.TRADE
    rec["instrument_id"] = 1
    for i, (ts, local, p, q, seller, tid, _) in enumerate(rows):
        rec[i]["ts_exchange"] = ts
        rec[i]["ts_local"] = local
        rec[i]["price"] = extrema.parse_decimal(p, pp)
        rec[i]["quantity"] = extrema.parse_decimal(q, sp)
        rec[i]["flags"] = ASK if seller else 0
        rec[i]["sequence"] = tid
    return rec, pp, sp


@pytest.fixture(scope="module")
def streams(fixtures_dir):
    loaded = load_trades(fixtures_dir)
    assert sum(len(v) for v in loaded.values()) >= 250, "the captures hold fewer trades than expected"
    return {key: to_records(rows) for key, rows in loaded.items()}


def configs(rec, pp, sp):
    """Bar settings for one stream, thresholds scaled to its own trades so every kind closes bars."""
    sizes = sorted(int(q) for q in rec["quantity"])
    notionals = sorted(int(p) * int(q) for p, q in zip(rec["price"], rec["quantity"]))
    median_size, median_notional = sizes[len(sizes) // 2], notionals[len(notionals) // 2]
    return [
        ("time", 1, S, "skip"), ("time", 1, S, "fill"), ("time", 5, 5 * S, "skip"), ("time", 60, 60 * S, "fill"),
        ("tick", 1, 1, "skip"), ("tick", 3, 3, "skip"), ("tick", 7, 7, "skip"),
        ("volume", 3 * median_size, 3 * median_size, "skip"), ("volume", sizes[0], sizes[0], "skip"),
        ("notional", 4 * median_notional, 4 * median_notional, "skip"),
        ("notional", notionals[len(notionals) - 1], notionals[len(notionals) - 1], "skip"),
    ]


def test_compiled_matches_the_reference_on_every_captured_stream(streams):
    totals = defaultdict(int)
    for key, (rec, pp, sp) in streams.items():
        end = int(rec["ts_exchange"].max()) + 61 * S
        for kind, size, threshold, empty in configs(rec, pp, sp):
            compiled = BarAggregator(1, kind, size, price_precision=pp, size_precision=sp, empty=empty)
            reference = ReferenceBars(1, kind, threshold, empty)
            got = candles_as_dicts(compiled.update_records(rec)) + candles_as_dicts(compiled.flush(end))
            want = reference.update_records(rec) + reference.flush(end)
            assert got == want, (key, kind, size, empty)
            assert compiled.stats == reference.stats, (key, kind)
            # every accepted trade is in exactly one bar (flush closed the last one); a trade is accepted
            # unless it is earlier than one before it
            accepted = [i for i in range(len(rec)) if i == 0 or rec["ts_exchange"][i] >= rec["ts_exchange"][:i].max()]
            assert compiled.stats["trades"] == len(accepted) == sum(b["trade_count"] for b in got), (key, kind)
            assert sum(b["volume"] for b in got) == sum(int(rec["quantity"][i]) for i in accepted), (key, kind)
            # an independent count: tick bars are ceil(n / N); 1 s bars (skip) one per distinct second
            if kind == "tick":
                assert len(got) == -(-compiled.stats["trades"] // size)
            if kind == "time" and empty == "skip" and size == 1:
                assert len(got) == len({int(rec["ts_exchange"][i]) // S for i in accepted})
            totals[(kind, empty)] += len(got)
    # non-trivial: the captures produce hundreds of bars, flat ones included
    assert totals[("tick", "skip")] >= 300
    assert totals[("time", "skip")] >= 150 and totals[("time", "fill")] >= 1000
    assert totals[("volume", "skip")] >= 300 and totals[("notional", "skip")] >= 100


def test_timer_driven_bars_on_captured_streams(streams):
    """A timer ticking every 250 ms of exchange time (500 ms of allowed lateness) between the trades."""
    checked = 0
    for key, (rec, pp, sp) in streams.items():
        for empty in ("skip", "fill"):
            compiled = BarAggregator(1, "time", 1, price_precision=pp, size_precision=sp, empty=empty)
            reference = ReferenceBars(1, "time", S, empty)
            got, want = [], []
            next_tick = int(rec["ts_exchange"][0]) + 250_000
            for i in range(len(rec)):
                while next_tick <= int(rec["ts_exchange"][i]):
                    got += candles_as_dicts(compiled.on_time(next_tick - 500_000))
                    want += reference.on_time(next_tick - 500_000)
                    next_tick += 250_000
                got += candles_as_dicts(compiled.update_records(rec[i:i + 1]))
                want += reference.update_records(rec[i:i + 1])
            assert got == want, (key, empty)
            assert compiled.stats == reference.stats
            checked += len(got)
    assert checked >= 200


def test_one_minute_bars_equal_binance_klines(fixtures_dir):
    """Binance's kline_1m stream in the same capture is an outside oracle: for a minute whose every
    aggregate trade was captured (aggTrade f..l ranges cover the kline's first..last trade id), the partial
    1m bar after the kline's last trade must have the kline's open, high, low, close, volume, taker buy
    volume and quote volume, exactly."""
    compared = defaultdict(int)
    for path in sorted((fixtures_dir / "binance" / "captures").glob("cryptofeed_*_ws_*.jsonl")):
        klines, aggs = defaultdict(list), defaultdict(list)
        for _, m in _messages(path):
            d = m.get("data") if isinstance(m, dict) else None
            if isinstance(d, dict) and d.get("e") == "kline" and d["k"]["i"] == "1m":
                klines[d["s"]].append(d["k"])
            elif isinstance(d, dict) and d.get("e") == "aggTrade":
                aggs[d["s"]].append(d)
        for symbol, rows in aggs.items():
            loaded = [(d["T"] * 1000, 0, d["p"], d["q"], d["m"], d["a"], (d["f"], d["l"])) for d in rows]
            rec, pp, sp = to_records(loaded)
            first_ids = {d["f"]: i for i, d in enumerate(rows)}
            last_ids = {d["l"]: i for i, d in enumerate(rows)}
            for k in klines[symbol]:
                if k["f"] not in first_ids or k["L"] not in last_ids:
                    continue                              # the capture missed part of this minute
                lo, hi = first_ids[k["f"]], last_ids[k["L"]]
                assert sum(rows[j]["l"] - rows[j]["f"] + 1 for j in range(lo, hi + 1)) == k["n"]
                agg = BarAggregator(1, "time", "1m", price_precision=pp, size_precision=sp)
                assert len(agg.update_records(rec[lo:hi + 1])) == 0          # one minute, still open
                bar = agg.partial
                assert bar.open_time == k["t"] * 1000 and bar.close_time == (k["T"] + 1) * 1000
                assert [bar.open_raw, bar.high_raw, bar.low_raw, bar.close_raw] == \
                    [extrema.parse_decimal(k[f], pp) for f in "ohlc"], (symbol, k)
                assert bar.volume_raw == extrema.parse_decimal(k["v"], sp)
                assert bar.buy_volume_raw == extrema.parse_decimal(k["V"], sp)          # taker buy volume
                assert bar.sell_volume_raw == bar.volume_raw - bar.buy_volume_raw
                assert Decimal(bar.quote_volume_raw).scaleb(-(pp + sp)) == Decimal(k["q"])
                compared[symbol] += 1
    # 16 kline updates in these captures have every trade of their minute captured (others were sent
    # mid-aggTrade, or their minute began before the capture): all of them must be compared
    assert sum(compared.values()) >= 16 and compared["CTKUSDT"] >= 9 and compared["SUSHIUSDT"] >= 5, compared
