"""Replay sources on the real fixture files and on generated data (extrema.backtest.sources)."""
import asyncio
import json
import logging
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from extrema import (RECORD_DTYPE, BookSide, InstrumentRegistry, Market, OrderBook, RecordFlag, RecordKind,
                     with_continuations)
from extrema.backtest.sources import (ArraySource, CaptureSource, EventJsonlSource, JournalSource, TardisSource,
                                      merge, open_source)
from extrema.engine.sources import event_times
from extrema.storage import JournalWriter
from models.binance_depth import ASK, BID, SPOT, USDM, replay_capture
from models.reference_book import ReferenceBook, to_raw


def capture_registry(captures, market):
    """Every symbol of a capture pair, at the precision of its widest wire decimal."""
    reg = InstrumentRegistry()
    replays = replay_capture(captures, market)
    m = Market.BINANCE_SPOT if market == SPOT else Market.BINANCE_USDM
    for sym, r in sorted(replays.items()):
        quote = next(q for q in ("USDT", "BUSD", "ETH", "BTC", "EUR") if sym.endswith(q))
        name = f"{sym[:-len(quote)]}_{quote}" + ("_PERP" if market == USDM else "")
        reg.register(name, m, Decimal(1).scaleb(-r.price_precision), Decimal(1).scaleb(-r.size_precision),
                     venue_symbol=sym)
    return reg, replays


@pytest.mark.parametrize("market", [SPOT, USDM])
def test_capture_books_equal_the_reference(fixtures_dir, market):
    captures = fixtures_dir / "binance" / "captures"
    reg, replays = capture_registry(captures, market)
    ws = captures / ("cryptofeed_spot_ws_2021-10-12.jsonl" if market == SPOT else "cryptofeed_usdm_ws_2021-07-22.jsonl")
    src = CaptureSource(ws, reg)                 # market and the _http_depth_ sibling found from the file
    batches = list(src.batches())
    records = np.concatenate(batches)
    ts = event_times(records, "ts_local")
    assert (np.diff(ts) >= 0).all()
    assert src.stats["dropped"] == {} and src.stats["snapshots"] == 4
    kinds = set(records["kind"].tolist())
    assert {RecordKind.BOOK_DELTA, RecordKind.TRADE, RecordKind.QUOTE} <= kinds
    for inst in reg:
        replay = replays[inst.venue_symbol]
        book = OrderBook(inst.price_precision, inst.size_precision, instrument_id=inst.id, crossed="raise")
        book.apply_records(records)
        ref = ReferenceBook(inst.price_precision, inst.size_precision)
        pp, sp = inst.price_precision, inst.size_precision
        ref.apply_snapshot([(to_raw(Decimal(p), pp), to_raw(Decimal(q), sp)) for p, q in replay.snapshot.bids],
                           [(to_raw(Decimal(p), pp), to_raw(Decimal(q), sp)) for p, q in replay.snapshot.asks],
                           replay.snapshot.last_update_id)
        for diff in replay.applied:
            for i, (side, price, size) in enumerate(diff.changes):
                ref.apply_delta(side, to_raw(Decimal(price), pp), to_raw(Decimal(size), sp), diff.final_update_id,
                                last=i == len(diff.changes) - 1)
        assert replay.applied, inst.name
        for side in (BID, ASK):
            got = [(int(p), int(q)) for p, q in book.levels(BookSide(side), raw=True)]
            assert got == ref.levels(side), f"{inst.name} side {side}"
        assert book.last_update_id == ref.last_update_id


def test_capture_bad_lines_and_unknown_symbols_are_counted(fixtures_dir, tmp_path, caplog):
    captures = fixtures_dir / "binance" / "captures"
    reg, _ = capture_registry(captures, SPOT)
    lines = (captures / "cryptofeed_spot_ws_2021-10-12.jsonl").read_text().splitlines()
    lines.insert(5, "{not json")
    lines.insert(9, '{"dir": "recv", "ts": "soon", "raw": "{}"}')
    path = tmp_path / "cap_spot_ws.jsonl"
    path.write_text("\n".join(lines) + "\n")
    only_two = InstrumentRegistry()
    for inst in list(reg)[:2]:
        only_two.register(inst.name, inst.market, inst.tick_size, inst.lot_size, venue_symbol=inst.venue_symbol)
    with caplog.at_level(logging.WARNING, logger="extrema.backtest.sources"):
        src = CaptureSource(path, only_two, snapshots=captures / "cryptofeed_spot_http_depth_2021-10-12.jsonl")
        list(src.batches())
    dropped = src.stats["dropped"]
    assert dropped["bad_json"] == 1 and dropped["bad_field"] == 1
    assert dropped["unknown_instrument"] == 2                   # the two unregistered symbols' snapshots
    assert dropped["decoder_unknown_symbol"] > 0
    assert "cap_spot_ws.jsonl:6" in caplog.text                 # line numbers in the log


def write_lines(path, objs):
    path.write_text("\n".join(o if isinstance(o, str) else json.dumps(o) for o in objs) + "\n")


def events_registry():
    reg = InstrumentRegistry()
    reg.register("BTC_USDT_PERP", Market.BINANCE_USDM, "0.1", "0.001", venue_symbol="BTCUSDT")
    reg.register("BTC_USDT", Market.BINANCE_SPOT, "0.01", "0.00001", venue_symbol="BTCUSDT")
    reg.register("ETH_USDT", Market.BINANCE_SPOT, "0.01", "0.0001", venue_symbol="ETHUSDT")
    reg.register("BTC_USDT", Market.OKX, "0.1", "0.00000001", venue_symbol="BTC-USDT")
    return reg


def test_event_jsonl_records_and_counted_drops(tmp_path, caplog):
    reg = events_registry()
    path = tmp_path / "events.jsonl"
    write_lines(path, [
        {"type": "trade", "instrument": "ETH_USDT", "ts": 1000, "price": "2000.5", "size": 0.25, "side": "sell",
         "sequence": 7},
        {"type": "quote", "instrument": "BTC_USDT_PERP", "ts": 1000, "ts_local": 1500, "bid": "100.1",
         "bid_size": "1", "ask": "100.2", "ask_size": "2.5"},
        "# a comment",
        "",
        {"type": "book", "instrument": "BTC_USDT", "market": "BINANCE_SPOT", "ts": 2000, "snapshot": True,
         "bids": [["99.5", "1"], ["99.4", "2"]], "asks": [["99.6", "3"]]},
        {"type": "reset", "instrument": "ETH_USDT", "ts": 2500},
        # bad lines, one per reason
        "{oops",                                                                              # 7 bad_json
        {"type": "trade", "instrument": "BTC_USDT", "ts": 3000, "price": "1", "size": "1"},   # 8 two markets
        {"type": "trade", "instrument": "DOGE_USDT", "ts": 3000, "price": "1", "size": "1"},  # 9 unknown
        {"type": "trade", "instrument": "ETH_USDT", "ts": 3000, "price": "1.001", "size": "1"},  # 10 decimals
        {"type": "trade", "instrument": "ETH_USDT", "ts": 3000, "price": "1", "size": "-1"},    # 11 negative
        {"type": "trade", "instrument": "ETH_USDT", "ts": 3000.5, "price": "1", "size": "1"},   # 12 float ts
        {"type": "candle", "instrument": "ETH_USDT", "ts": 3000},                               # 13 type
        {"type": "book", "instrument": "ETH_USDT", "ts": 3000, "bids": []},                     # 14 empty
        {"type": "trade", "instrument": "ETH_USDT", "ts": 3000, "price": "NaN", "size": "1"},   # 15 NaN
        [1, 2],                                                                                 # 16 not object
    ])
    with caplog.at_level(logging.WARNING, logger="extrema.backtest.sources"):
        src = EventJsonlSource(path, reg)
        records = np.concatenate(list(src.batches()))
    assert src.stats["dropped"] == {"bad_json": 1, "unknown_instrument": 2, "bad_number": 3, "bad_field": 1,
                                    "unknown_type": 1, "empty_book": 1, "not_an_object": 1}
    assert "events.jsonl:7" in caplog.text and "events.jsonl:16" in caplog.text
    assert "several markets" in caplog.text
    assert records["kind"].tolist() == [RecordKind.TRADE, RecordKind.QUOTE, RecordKind.BOOK_DELTA,
                                        RecordKind.BOOK_DELTA, RecordKind.BOOK_DELTA, RecordKind.BOOK_RESET]
    t = records[0]
    assert (t["price"], t["quantity"], t["sequence"], t["flags"], t["ts_local"]) == (200050, 2500, 7, RecordFlag.ASK, 1000)
    q = records[1]
    assert (q["price"], q["quantity"], q["aux0"], q["aux1"], q["ts_local"]) == (1001, 1000, 1002, 2500, 1500)
    book = records[2:5]
    assert book["flags"].tolist() == [RecordFlag.SNAPSHOT, RecordFlag.SNAPSHOT,
                                      RecordFlag.SNAPSHOT | RecordFlag.ASK | RecordFlag.LAST]
    assert book["instrument_id"].tolist() == [2, 2, 2]


def test_tardis_book_fixture_and_trades(fixtures_dir, tmp_path):
    reg = InstrumentRegistry()
    inst = reg.register("BTC_USD_PERP", Market.DERIBIT, "0.5", "10", venue_symbol="BTC-PERPETUAL")
    book_csv = fixtures_dir / "deribit" / "csv" / "tardis_deribit_incremental_book_L2_BTC-PERPETUAL.csv"
    rows = [line.split(",") for line in book_csv.read_text().splitlines()[1:]]
    src = TardisSource(reg, book=book_csv)
    records = np.concatenate(list(src.batches()))
    assert records["kind"][0] == RecordKind.BOOK_RESET                # a snapshot block starts a fresh book
    deltas = records[1:]
    assert len(deltas) == len(rows) and (deltas["kind"] == RecordKind.BOOK_DELTA).all()
    assert (deltas["flags"] & RecordFlag.SNAPSHOT).all()
    assert deltas["flags"][-1] & RecordFlag.LAST and not (deltas["flags"][:-1] & RecordFlag.LAST).any()
    assert deltas["price"].tolist() == [int(Decimal(r[6]) * 10) for r in rows]
    assert deltas["quantity"].tolist() == [int(r[7]) for r in rows]
    assert deltas["ts_local"].tolist() == [int(r[3]) for r in rows]
    assert deltas["ts_exchange"].tolist() == [int(r[2]) for r in rows]
    book = OrderBook(inst.price_precision, inst.size_precision, instrument_id=inst.id)
    book.apply_records(records)
    assert book.best_ask == 6421.5 and len(book.levels(BookSide.ASK)) == len(rows)

    # a day of updates after the snapshot, a second snapshot (a reconnect), and trades interleaved
    base = int(rows[0][3])
    book2 = tmp_path / "book.csv"
    book2.write_text(book_csv.read_text() + "".join([
        f"deribit,BTC-PERPETUAL,{base + 10},{base + 20},false,ask,6421.5,0\n",
        f"deribit,BTC-PERPETUAL,{base + 10},{base + 20},false,bid,6421,500\n",
        f"deribit,BTC-PERPETUAL,{base + 30},{base + 40},true,bid,6420,100\n",
        f"deribit,BTC-PERPETUAL,{base + 30},{base + 40},true,ask,6422,100\n",
        f"deribit,BTC-PERPETUAL,{base + 50},{base + 60},false,bid,6420.25,1\n",        # off the precision
        f"deribit,ETH-PERPETUAL,{base + 50},{base + 60},false,bid,200,1\n",            # unknown symbol
    ]))
    trades = tmp_path / "trades.csv"
    trades.write_text("exchange,symbol,timestamp,local_timestamp,id,side,price,amount\n"
                      f"deribit,BTC-PERPETUAL,{base + 1},{base + 30},101,buy,6421.5,20\n"
                      f"deribit,BTC-PERPETUAL,{base + 2},{base + 45},abc-1,sell,6420,10\n"
                      f"deribit,BTC-PERPETUAL,{base + 3},{base + 46},103,unknown,6420,10\n"
                      f"deribit,BTC-PERPETUAL,{base + 3},{base + 47},104,buy,6420,0\n")   # zero size
    src = TardisSource(reg, book=book2, trades=trades)
    out = np.concatenate(list(src.batches()))
    assert (np.diff(out["ts_local"]) >= 0).all()
    assert src.stats["dropped"] == {"bad_number": 2, "unknown_instrument": 1}
    tail = out[len(records):]
    assert tail["kind"].tolist() == [RecordKind.BOOK_DELTA, RecordKind.BOOK_DELTA, RecordKind.TRADE,
                                     RecordKind.BOOK_RESET, RecordKind.BOOK_DELTA, RecordKind.BOOK_DELTA,
                                     RecordKind.TRADE, RecordKind.TRADE]
    assert tail["flags"][2] == 0 and tail["sequence"][2] == 101
    assert tail["flags"][6] == RecordFlag.ASK and tail["sequence"][6] == 0
    assert tail["flags"][7] == RecordFlag.AGGRESSOR_UNKNOWN
    book = OrderBook(inst.price_precision, inst.size_precision, instrument_id=inst.id)
    book.apply_records(out)
    assert book.levels(BookSide.BID, raw=True).tolist() == [[64200, 100]]
    assert book.levels(BookSide.ASK, raw=True).tolist() == [[64220, 100]]


@st.composite
def sorted_streams(draw):
    """2..4 streams of batches, each nondecreasing in ts_local, with two-slot events mixed in."""
    streams = []
    for s in range(draw(st.integers(2, 4))):
        times = sorted(draw(st.lists(st.integers(0, 50), max_size=40)))
        rows = []
        for k, t in enumerate(times):
            two = draw(st.booleans())
            rows.append((RecordKind.CANDLE if two else RecordKind.TRADE, with_continuations(0, 1) if two else 0,
                         s + 1, 0, t, k, 0, 0, 0, 0))
            if two:
                rows.append((RecordKind.CONTINUATION, 1, s + 1, 0, 999_999, k, 0, 0, 0, 0))  # ts field = payload
        arr = np.array(rows, dtype=RECORD_DTYPE)
        cut_points = sorted(draw(st.lists(st.integers(0, len(arr)), max_size=4)))
        starts = [0] + [c for c in cut_points if c == len(arr) or c == 0 or arr["kind"][c] != RecordKind.CONTINUATION] + [len(arr)]
        streams.append([arr[a:b] for a, b in zip(starts, starts[1:])])
    return streams


class ListSource(ArraySource):
    """A source giving fixed batches (batch boundaries chosen by the test)."""
    def __init__(self, batches):
        super().__init__(np.concatenate(batches) if batches else np.zeros(0, RECORD_DTYPE))
        self._given = batches

    def _generate(self):
        yield from self._given


@settings(max_examples=60, deadline=None)
@given(streams=sorted_streams())
def test_merge_orders_by_ts_local_and_keeps_events_whole(streams):
    sources = [ListSource(b) for b in streams]
    out = list(merge(*sources, batch_records=16).batches())
    merged = np.concatenate(out) if out else np.zeros(0, RECORD_DTYPE)
    total = sum(len(x) for b in streams for x in b)
    assert len(merged) == total
    ts = event_times(merged, "ts_local")
    assert (np.diff(ts) >= 0).all()
    for batch in out:
        assert batch["kind"][0] != RecordKind.CONTINUATION      # never split
    # each stream's records keep their order and every head is followed by its continuation
    for s, batches in enumerate(streams, 1):
        mine = merged[merged["instrument_id"] == s]
        want = np.concatenate(batches) if batches else np.zeros(0, RECORD_DTYPE)
        assert mine.tobytes() == want.tobytes()
    heads = np.flatnonzero(merged["kind"] == RecordKind.CANDLE)
    assert (merged["kind"][heads + 1] == RecordKind.CONTINUATION).all()
    assert (merged["instrument_id"][heads + 1] == merged["instrument_id"][heads]).all()
    # ties: the earlier source first
    key = list(zip(ts.tolist(), merged["instrument_id"].tolist()))
    heads_only = [k for k, kind in zip(key, merged["kind"].tolist()) if kind != RecordKind.CONTINUATION]
    assert heads_only == sorted(heads_only)


def test_open_source_and_realtime_replay(fixtures_dir, tmp_path):
    reg = events_registry()
    ev = tmp_path / "e.jsonl"
    write_lines(ev, [{"type": "trade", "instrument": "ETH_USDT", "ts": 1_000_000 + i * 1000, "price": "1",
                      "size": "1"} for i in range(50)])
    assert isinstance(open_source(ev, reg), EventJsonlSource)
    assert isinstance(open_source(fixtures_dir / "binance" / "captures" / "cryptofeed_usdm_ws_2021-07-22.jsonl",
                                  capture_registry(fixtures_dir / "binance" / "captures", USDM)[0]), CaptureSource)
    assert isinstance(open_source(fixtures_dir / "deribit" / "csv" /
                                  "tardis_deribit_incremental_book_L2_BTC-PERPETUAL.csv", reg), TardisSource)
    records = np.concatenate(list(open_source(ev, reg).batches()))
    with JournalWriter(tmp_path / "j") as w:
        w.append(records)
    assert isinstance(open_source(tmp_path / "j", reg), JournalSource)
    np.save(tmp_path / "r.npy", records)
    assert isinstance(open_source(tmp_path / "r.npy", reg), ArraySource)
    with pytest.raises(ValueError, match="unknown replay format"):
        (tmp_path / "x.txt").write_text("hi")
        open_source(tmp_path / "x.txt", reg)
    # paced replay at 1000x: the same records in the same order, one emit per timestamp
    seen = []
    progress = []
    src = open_source(ev, reg, realtime=True, speed=1000.0, progress=lambda *a: progress.append(a))
    asyncio.run(src.run(lambda r: seen.append(r.copy()), set()))
    assert len(seen) == 50 and np.concatenate(seen).tobytes() == records.tobytes()
    assert progress and progress[-1][0] == 50
