"""The journal round trip (hypothesis), its header and errors, the Recorder and the Parquet export."""
import asyncio

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from extrema import RECORD_DTYPE, InstrumentRegistry, Market, RecordKind, with_continuations
from extrema._core.journal import check_events
from extrema.backtest.sources import ArraySource, JournalSource
from extrema.storage import (JournalError, JournalReader, JournalWriter, Recorder, export_parquet, list_segments,
                             read_header)

SMALL = 64 + 40 * 64            # 40 records per segment: rotations everywhere


@st.composite
def record_arrays(draw, max_events=120):
    """Random records: single-slot kinds and multi-slot events (head + 1..3 continuations), every
    field random."""
    sizes = draw(st.lists(st.sampled_from([1, 1, 1, 2, 3, 4]), min_size=0, max_size=max_events))
    n = sum(sizes)
    raw = np.frombuffer(draw(st.binary(min_size=n * 64, max_size=n * 64)), dtype=RECORD_DTYPE).copy()
    pos = 0
    for size in sizes:
        raw["kind"][pos] = draw(st.sampled_from([RecordKind.TRADE, RecordKind.BOOK_DELTA, RecordKind.QUOTE]
                                                if size == 1 else [RecordKind.CANDLE, RecordKind.PREDICTION]))
        raw["flags"][pos] = with_continuations(int(raw["flags"][pos]) & 0x0FFF, size - 1)
        for j in range(1, size):
            raw["kind"][pos + j] = RecordKind.CONTINUATION
            raw["flags"][pos + j] = j
        pos += size
    return raw


@settings(max_examples=40, deadline=None)
@given(records=record_arrays(), cuts=st.lists(st.integers(0, 500), max_size=12), reopen=st.booleans())
def test_round_trip_equals_what_was_written(tmp_path_factory, records, cuts, reopen):
    d = tmp_path_factory.mktemp("j")
    # split into batches at event boundaries only
    starts = set(np.flatnonzero(records["kind"] != RecordKind.CONTINUATION).tolist())
    bounds = sorted({0, len(records), *(c for c in cuts if c in starts)})
    w = JournalWriter(d, segment_bytes=SMALL)
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        if reopen and i == len(bounds) // 2:
            w.close()
            w = JournalWriter(d, segment_bytes=SMALL)
        w.append(records[a:b])
    assert w.total_records == len(records)
    w.close()
    reader = JournalReader(d, batch_records=16)
    got = list(reader)
    for batch in got:
        check_events(batch)                     # no batch splits an event
    out = np.concatenate(got) if got else np.zeros(0, RECORD_DTYPE)
    assert out.tobytes() == records.tobytes()
    assert len(reader) == len(records)
    # segments chain and are sealed; a closed segment takes only its records' space
    first = 0
    for h in reader.segments():
        assert h["first_record"] == first and h["sealed"]
        assert h["file_bytes"] == 64 + 64 * h["committed"]
        first += h["committed"]


def test_header_and_errors(tmp_path):
    w = JournalWriter(tmp_path, segment_bytes=SMALL)
    with pytest.raises(JournalError, match="another JournalWriter"):
        JournalWriter(tmp_path)
    with pytest.raises(TypeError):
        w.append(np.zeros(3, dtype=np.int64))
    bad = np.zeros(2, RECORD_DTYPE)
    bad["kind"][0] = RecordKind.CANDLE
    bad["flags"][0] = with_continuations(0, 2)          # says 2 continuations, the batch has 1
    bad["kind"][1] = RecordKind.CONTINUATION
    with pytest.raises(ValueError, match="multi-slot"):
        w.append(bad)
    assert w.total_records == 0                         # nothing of a bad batch is written
    w.append(np.zeros(100, RECORD_DTYPE))
    w.close()
    headers = [read_header(p) for p in list_segments(tmp_path)]
    assert [h["committed"] for h in headers] == [40, 40, 20]
    assert [h["segment_index"] for h in headers] == [0, 1, 2]
    assert all(h["created_us"] > 1.7e15 for h in headers)
    with open(list_segments(tmp_path)[0], "r+b") as f:
        f.write(b"NOTAJRNL")
    with pytest.raises(JournalError, match="not an extrema journal segment"):
        JournalReader(tmp_path).read_all()


def test_parquet_export_matches_the_journal(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    reg = InstrumentRegistry()
    reg.register("BTC_USDT", Market.BINANCE_SPOT, "0.01", "0.00001", venue_symbol="BTCUSDT")
    reg.register("ETH_USDT_PERP", Market.BINANCE_USDM, "0.01", "0.001", venue_symbol="ETHUSDT")
    rng = np.random.default_rng(1)
    records = np.zeros(100, RECORD_DTYPE)
    records["kind"] = RecordKind.TRADE
    records["instrument_id"] = rng.integers(1, 4, 100)        # id 3 is unknown to the registry
    for name in ("ts_exchange", "ts_local", "sequence", "price", "quantity", "aux0", "aux1"):
        records[name] = rng.integers(-2**62, 2**62, 100)
    with JournalWriter(tmp_path / "j", segment_bytes=SMALL) as w:
        w.append(records)
    out = export_parquet(tmp_path / "j", tmp_path / "out.parquet", registry=reg)
    f = pq.ParquetFile(out)
    assert f.num_row_groups == 3                                # one per segment (40, 40, 20)
    table = f.read()
    for name in RECORD_DTYPE.names:
        np.testing.assert_array_equal(table.column(name).to_numpy(), records[name])
        assert table.schema.field(name).type.to_pandas_dtype() == records.dtype[name].type
    names = {1: "BTC_USDT", 2: "ETH_USDT_PERP", 3: None}
    assert table.column("instrument").to_pylist() == [names[i] for i in records["instrument_id"].tolist()]
    assert table.column("price_precision").to_pylist() == [{1: 2, 2: 2, 3: 0}[i] for i in records["instrument_id"].tolist()]


def test_recorder_passes_records_through_and_journals_them(tmp_path):
    rng = np.random.default_rng(2)
    records = np.zeros(5000, RECORD_DTYPE)
    records["kind"] = RecordKind.TRADE
    records["ts_local"] = np.sort(rng.integers(0, 10**9, 5000))
    records["price"] = rng.integers(1, 10**6, 5000)
    records["kind"][10] = RecordKind.CANDLE
    records["flags"][10] = with_continuations(0, 1)
    records["kind"][11] = RecordKind.CONTINUATION
    records["ts_local"][11] = 0                                  # a payload word, not a time
    source = ArraySource(records, batch_records=64)
    rec = Recorder(source, tmp_path / "j", segment_bytes=SMALL * 8)
    seen = []
    asyncio.run(rec.run(lambda r: seen.append(r.copy()), set()))
    assert np.concatenate(seen).tobytes() == records.tobytes()
    assert rec.recorded == len(records) and rec.stats["records"] == len(records)   # the wrapped source's stats
    assert JournalReader(tmp_path / "j").read_all().tobytes() == records.tobytes()
    # and the journal replays as a source
    replayed = np.concatenate(list(JournalSource(tmp_path / "j").batches()))
    assert replayed.tobytes() == records.tobytes()
    with pytest.raises(ValueError, match="raw_sink"):
        Recorder(source, tmp_path / "k", raw_jsonl=tmp_path / "raw.jsonl")


def test_the_recorder_writes_the_instrument_table_and_replays_check_it(tmp_path):
    """A journal says which instrument each id was: a replay builds the same registry from it, and a
    registry that gives an id to another instrument is refused instead of read as the wrong market."""
    import pytest as _pytest

    from extrema import InstrumentRegistry, Market
    from extrema.backtest.sources import ArraySource, JournalSource
    from extrema.storage import Recorder, read_instrument_table, registry_for_journal

    reg = InstrumentRegistry()
    reg.register("BTC_USDT", Market.BINANCE_SPOT, "0.01", "0.00001", min_notional="5", venue_symbol="BTCUSDT")
    eth = reg.register("ETH_USDT_PERP", Market.BINANCE_USDM, "0.01", "0.001", venue_symbol="ETHUSDT")
    recs = np.zeros(4, dtype=RECORD_DTYPE)
    recs["kind"] = 2                                         # TRADE
    recs["instrument_id"] = eth.id
    recs["ts_local"] = recs["ts_exchange"] = np.arange(4) + 1_700_000_000_000_000
    journal = tmp_path / "j"
    assert sum(len(b) for b in Recorder(ArraySource(recs, reg), journal).batches()) == 4

    table = read_instrument_table(journal)
    assert [(r["id"], r["name"], r["market"], r["tick_size"], r["min_notional"]) for r in table] == [
        (1, "BTC_USDT", "BINANCE_SPOT", "0.01", "5.00"), (2, "ETH_USDT_PERP", "BINANCE_USDM", "0.01", "0.00")]
    rebuilt = registry_for_journal(journal)
    assert [(i.id, i.name, i.market, i.venue_symbol, i.lot_size) for i in rebuilt] == \
        [(i.id, i.name, i.market, i.venue_symbol, i.lot_size) for i in reg]
    replayed = np.concatenate(list(JournalSource(journal).batches()))     # registry from the table
    assert replayed.tobytes() == recs.tobytes()

    swapped = InstrumentRegistry()
    swapped.register("ETH_USDT_PERP", Market.BINANCE_USDM, "0.01", "0.001")
    swapped.register("BTC_USDT", Market.BINANCE_SPOT, "0.01", "0.00001")
    with _pytest.raises(ValueError, match="instrument id 1 was BTC_USDT on BINANCE_SPOT when recorded"):
        JournalSource(journal, swapped)
