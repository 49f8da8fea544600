"""Wire to book: the real Binance captures through the compiled decoder, DepthSync and OrderBook, against
the plain-Python path (tests/models/binance_depth.py's documented sync rule + reference_book.py).

The capture is replayed in its recorded order, the REST snapshot delivered at the time it was recorded
(the first depth frame of a symbol asks for it, the frames before it are buffered). Every message the
compiled path publishes must leave the book equal to the reference book after the same update id.
Then the same with one frame lost: the compiled path must publish a BOOK_RESET (SEQUENCE_GAP), ask for
a new snapshot, and - given a snapshot taken later in the stream - resynchronise to the very book the
unbroken stream gives. Plus DepthSync's rules one by one on small synthetic streams.
"""

import json
from decimal import Decimal

import numpy as np
import pytest

from extrema import (RECORD_DTYPE, BookSide, InstrumentRegistry, Market, OrderBook, RecordFlag, RecordKind,
                     ResetReason, format_decimal)
from extrema._core.binance import BinanceDecoder, BinanceEvent, DepthSync, DropReason, SyncStatus
from extrema._core.binance_stream import BinanceStreamSink
from models.binance_depth import ASK, BID, CAPTURES, SPOT, USDM, replay_capture
from models.reference_book import ReferenceBook, to_raw

MARKETS = {SPOT: Market.BINANCE_SPOT, USDM: Market.BINANCE_USDM}


def load(fixtures_dir, market):
    captures = fixtures_dir / "binance" / "captures"
    ws_name, http_name = CAPTURES[market]
    frames = []
    for line in (captures / ws_name).read_text().splitlines():
        entry = json.loads(line)
        if entry["dir"] == "recv":
            frames.append((entry["ts"], entry["raw"]))
    snapshots = {}
    for line in (captures / http_name).read_text().splitlines():
        entry = json.loads(line)
        snapshots[entry["url"].split("symbol=")[1].split("&")[0]] = (entry["ts"], entry["raw"])
    return frames, snapshots, replay_capture(captures, market)


def reference_states(replay):
    """{update id: (bids, asks)} of the reference book after the snapshot and after every diff."""
    pp, sp = replay.price_precision, replay.size_precision
    ref = ReferenceBook(pp, sp)
    snap = replay.snapshot
    ref.apply_snapshot([(to_raw(Decimal(p), pp), to_raw(Decimal(q), sp)) for p, q in snap.bids],
                       [(to_raw(Decimal(p), pp), to_raw(Decimal(q), sp)) for p, q in snap.asks],
                       snap.last_update_id)
    states = {snap.last_update_id: (ref.levels(BID), ref.levels(ASK))}
    for diff in replay.applied:
        for i, (side, price, size) in enumerate(diff.changes):
            ref.apply_delta(side, to_raw(Decimal(price), pp), to_raw(Decimal(size), sp), diff.final_update_id,
                            last=i == len(diff.changes) - 1)
        states[diff.final_update_id] = (ref.levels(BID), ref.levels(ASK))
    return states


def levels(book):
    return ([(int(p), int(q)) for p, q in book.levels(BookSide.BID, raw=True)],
            [(int(p), int(q)) for p, q in book.levels(BookSide.ASK, raw=True)])


class Pipeline:
    """decode -> DepthSync -> OrderBook, for every symbol of one capture."""

    def __init__(self, market, replays):
        self.market = market
        self.registry = InstrumentRegistry()
        self.books, self.ids = {}, {}
        for symbol, r in sorted(replays.items()):
            inst = self.registry.register(f"{symbol}_X" + ("" if market == SPOT else "_PERP"), MARKETS[market],
                                          f"1e-{r.price_precision}", f"1e-{r.size_precision}", venue_symbol=symbol)
            self.ids[symbol] = inst.id
            self.books[inst.id] = OrderBook.for_instrument(inst, crossed="raise")
        self.decoder = BinanceDecoder(self.registry, MARKETS[market])
        self.sync = DepthSync(MARKETS[market])
        self.published = []          # every record array published, in order
        self.after_message = []      # (instrument id, book.last_update_id, levels) after each message
        self.requests = []           # instrument ids a snapshot was asked for
        self.resets = []

    def publish(self, records):
        self.published.append(records)
        if len(records) == 0:
            return
        start = 0
        for i in range(len(records)):
            rec = records[i:i + 1]
            iid = int(rec["instrument_id"][0])
            book = self.books[iid]
            book.apply_records(rec)
            if rec["kind"][0] == RecordKind.BOOK_RESET:
                self.resets.append(rec.copy())
            elif rec["flags"][0] & RecordFlag.LAST:
                self.after_message.append((iid, book.last_update_id, levels(book)))

    def frame(self, raw, ts=0):
        records = self.decoder.decode(raw, ts)
        status, emit = self.sync.accept(records, self.decoder)
        if status in (SyncStatus.NEED_SNAPSHOT, SyncStatus.GAP):
            self.requests.append(self.decoder.info["instrument_id"])
        if status in (SyncStatus.EMIT, SyncStatus.GAP):
            self.publish(emit)
        return status

    def snapshot(self, symbol, body, ts=0):
        records = self.decoder.decode_depth_snapshot(body, symbol, ts)
        status, emit = self.sync.snapshot(records)
        if status == SyncStatus.SYNCED:
            self.publish(emit)
        return status


def run_capture(frames, snapshots, pipeline, skip=None):
    """Feed frames in order; a symbol's snapshot arrives at the first frame recorded after it."""
    pending = dict(snapshots)
    statuses = []
    for ts, raw in frames:
        for symbol, (snap_ts, body) in list(pending.items()):
            if snap_ts <= ts and pipeline.ids[symbol] in pipeline.requests:
                assert pipeline.snapshot(symbol, body) == SyncStatus.SYNCED
                del pending[symbol]
        if skip is not None and raw is skip:
            continue
        statuses.append(pipeline.frame(raw.encode()))
    return statuses


@pytest.mark.parametrize("market", [SPOT, USDM])
def test_capture_books_equal_the_reference_after_every_message(fixtures_dir, market):
    frames, snapshots, replays = load(fixtures_dir, market)
    pipeline = Pipeline(market, replays)
    statuses = run_capture(frames, snapshots, pipeline)
    assert SyncStatus.GAP not in statuses and not pipeline.resets
    compared = 0
    for symbol, replay in replays.items():
        iid = pipeline.ids[symbol]
        states = reference_states(replay)
        mine = [(uid, lv) for i, uid, lv in pipeline.after_message if i == iid]
        # every non-empty in-sync message was published once, in order, and left the reference's book
        want_ids = [replay.snapshot.last_update_id] + [d.final_update_id for d in replay.applied if d.changes]
        assert [uid for uid, _ in mine] == want_ids, symbol
        for uid, lv in mine:
            assert lv == states[uid], (symbol, uid)
            compared += 1
        assert levels(pipeline.books[iid]) == states[replay.applied[-1].final_update_id]
        assert not pipeline.sync.needs_snapshot(iid)
    stats = pipeline.sync.stats()
    assert stats["gaps"] == 0 and stats["snapshots"] == 4
    assert stats["emitted"] == sum(len(r.applied) for r in replays.values())
    assert stats["stale"] + sum(r.dropped for r in replays.values()) >= sum(r.dropped for r in replays.values())
    assert compared > (150 if market == SPOT else 700)


class SinkPipeline(Pipeline):
    """The same pipeline with frames through the compiled BinanceStreamSink (what a live connection's
    listener calls) instead of the Python decode + accept calls; this object stands in for the
    BinanceMarketData the sink calls back."""
    raw_sink = None

    def __init__(self, market, replays):
        super().__init__(market, replays)
        # the sink's records live in its reusable buffer until the next message (the engine copies them
        # into its ring): keep a copy
        self.sink = BinanceStreamSink(self, self.decoder, self.sync, lambda records: self.publish(records.copy()))

    def frame(self, raw, ts=0):
        self.sink(raw, ts)

    def _start_snapshot(self, iid):
        self.requests.append(iid)

    def _on_gap(self, iid, reset):
        self.publish(reset)
        self.requests.append(iid)


def published_bytes(pipeline):
    records = np.concatenate(pipeline.published) if pipeline.published else np.empty(0, RECORD_DTYPE)
    records = records.copy()
    # a BOOK_RESET is stamped with the frame's arrival by the sink, with "now" by DepthSync.accept
    records["ts_local"][records["kind"] == RecordKind.BOOK_RESET] = 0
    return records.tobytes()


@pytest.mark.parametrize("market", [SPOT, USDM])
@pytest.mark.parametrize("lose_one", [False, True])
def test_the_compiled_stream_sink_publishes_what_the_python_path_publishes(fixtures_dir, market, lose_one):
    frames, snapshots, replays = load(fixtures_dir, market)
    symbol = max(replays, key=lambda s: len(replays[s].applied))
    victim_diff = replays[symbol].applied[10]
    victim = next(raw for _, raw in frames if f'"u":{victim_diff.final_update_id},' in raw) if lose_one else None
    python_path, compiled = Pipeline(market, replays), SinkPipeline(market, replays)
    run_capture(frames, snapshots, python_path, skip=victim)
    run_capture(frames, snapshots, compiled, skip=victim)
    assert len(python_path.published) > 100
    assert published_bytes(compiled) == published_bytes(python_path)
    assert compiled.requests == python_path.requests and bool(compiled.resets) == lose_one
    assert compiled.sync.stats() == python_path.sync.stats()


def snapshot_body(states, update_id, pp, sp, usdm):
    bids, asks = states[update_id]
    body = {"lastUpdateId": update_id}
    if usdm:
        body.update(E=1, T=1)
    body["bids"] = [[format_decimal(p, pp), format_decimal(q, sp)] for p, q in bids]
    body["asks"] = [[format_decimal(p, pp), format_decimal(q, sp)] for p, q in asks]
    return json.dumps(body)


@pytest.mark.parametrize("market", [SPOT, USDM])
def test_a_lost_frame_resets_the_book_and_a_later_snapshot_resyncs_it(fixtures_dir, market):
    frames, snapshots, replays = load(fixtures_dir, market)
    symbol = max(replays, key=lambda s: len(replays[s].applied))
    replay = replays[symbol]
    states = reference_states(replay)
    victim_diff = replay.applied[10]
    assert victim_diff.changes
    victim = next(raw for _, raw in frames
                  if f'"u":{victim_diff.final_update_id},' in raw and f'"s":"{symbol}"' in raw)

    pipeline = Pipeline(market, replays)
    iid = pipeline.ids[symbol]
    pending = dict(snapshots)
    later = replay.applied[16]             # the state the second snapshot is taken at
    resynced = False
    gap_seen = False
    for ts, raw in frames:
        for sym, (snap_ts, body) in list(pending.items()):
            if snap_ts <= ts and pipeline.ids[sym] in pipeline.requests:
                assert pipeline.snapshot(sym, body) == SyncStatus.SYNCED
                del pending[sym]
        if raw is victim:
            continue
        status = pipeline.frame(raw.encode())
        info = pipeline.decoder.info
        if info["instrument_id"] != iid or info["event"] != BinanceEvent.DEPTH_UPDATE:
            continue
        if not gap_seen and status == SyncStatus.GAP:
            gap_seen = True
            # the book is void: a reset was published, a snapshot was asked for
            reset = pipeline.resets[-1]
            assert (int(reset["instrument_id"][0]), int(reset["aux0"][0])) == (iid, ResetReason.SEQUENCE_GAP)
            assert int(reset["sequence"][0]) == replay.applied[9].final_update_id
            assert levels(pipeline.books[iid]) == ([], [])
            assert pipeline.sync.needs_snapshot(iid) and pipeline.requests[-1] == iid
            # a snapshot from before the loss cannot be continued by what is buffered
            early = snapshot_body(states, replay.applied[8].final_update_id, replay.price_precision,
                                  replay.size_precision, market == USDM)
            assert pipeline.snapshot(symbol, early) == SyncStatus.SNAPSHOT_TOO_OLD
            continue
        if gap_seen and not resynced:
            assert status == SyncStatus.BUFFERED
            if pipeline.decoder.info["final_update_id"] >= replay.applied[19].final_update_id:
                body = snapshot_body(states, later.final_update_id, replay.price_precision,
                                     replay.size_precision, market == USDM)
                assert pipeline.snapshot(symbol, body) == SyncStatus.SYNCED
                resynced = True
                assert levels(pipeline.books[iid]) == states[replay.applied[19].final_update_id]
    assert gap_seen and resynced
    # after the resync every message leaves the reference's book, to the end of the stream
    assert levels(pipeline.books[iid]) == states[replay.applied[-1].final_update_id]
    after = [(uid, lv) for i, uid, lv in pipeline.after_message if i == iid and uid > later.final_update_id]
    assert after and all(lv == states[uid] for uid, lv in after)
    # the other symbols never noticed
    for other, r in replays.items():
        if other != symbol:
            assert levels(pipeline.books[pipeline.ids[other]]) == reference_states(r)[r.applied[-1].final_update_id]
    assert pipeline.sync.stats()["gaps"] == 1 and pipeline.sync.stats()["snapshots_too_old"] == 1


# ------------------------------------------------------------------------------ the rules one by one

def setup(market):
    registry = InstrumentRegistry()
    inst = registry.register("BTC_USDT" + ("_PERP" if market == USDM else ""), MARKETS[market], "0.01", "0.001",
                             venue_symbol="BTCUSDT")
    decoder = BinanceDecoder(registry, MARKETS[market])
    return decoder, DepthSync(MARKETS[market]), inst


def diff(U, u, pu=None, bids=(("100.00", "1.000"),), asks=()):
    fields = {"e": "depthUpdate", "E": 5, "s": "BTCUSDT", "U": U, "u": u}
    if pu is not None:
        fields["pu"] = pu
    fields["b"] = [list(x) for x in bids]
    fields["a"] = [list(x) for x in asks]
    return json.dumps(fields).encode()


def snap(decoder, last_id, bids=(("99.00", "2.000"),)):
    body = json.dumps({"lastUpdateId": last_id, "bids": [list(b) for b in bids], "asks": [["101.00", "1.000"]]})
    return decoder.decode_depth_snapshot(body, "BTCUSDT", 1)


def accept(decoder, sync, raw):
    records = decoder.decode(raw, 1)
    return sync.accept(records, decoder.info)


def test_spot_rules():
    decoder, sync, inst = setup(SPOT)
    assert accept(decoder, sync, diff(95, 99))[0] == SyncStatus.NEED_SNAPSHOT
    assert accept(decoder, sync, diff(100, 102))[0] == SyncStatus.BUFFERED
    assert accept(decoder, sync, diff(103, 103))[0] == SyncStatus.BUFFERED
    assert sync.needs_snapshot(inst.id) and sync.state(inst.id)["buffered_messages"] == 3
    status, out = sync.snapshot(snap(decoder, 100))
    assert status == SyncStatus.SYNCED
    # the snapshot, then the buffered diffs continuing it: 95..99 is older (u <= 100) and dropped;
    # 100..102 covers 101 = lastUpdateId + 1
    assert out["sequence"].tolist() == [100, 100, 102, 103]
    assert out["flags"][0] & RecordFlag.SNAPSHOT and not out["flags"][2] & RecordFlag.SNAPSHOT
    assert accept(decoder, sync, diff(104, 106))[0] == SyncStatus.EMIT
    assert accept(decoder, sync, diff(104, 106))[0] == SyncStatus.GAP       # a replay breaks U == u + 1
    assert sync.needs_snapshot(inst.id)


def test_spot_first_event_after_an_empty_buffer():
    decoder, sync, inst = setup(SPOT)
    assert sync.snapshot(snap(decoder, 100))[0] == SyncStatus.SYNCED
    assert accept(decoder, sync, diff(90, 100))[0] == SyncStatus.STALE        # u <= lastUpdateId
    assert accept(decoder, sync, diff(102, 104))[0] == SyncStatus.GAP         # 101 was never seen
    status, out = sync.snapshot(snap(decoder, 103))
    assert status == SyncStatus.SYNCED and out["sequence"].tolist() == [103, 103, 104]
    assert sync.state(inst.id)["last_update_id"] == 104


def test_usdm_rules_use_pu():
    decoder, sync, inst = setup(USDM)
    assert accept(decoder, sync, diff(90, 95, 89))[0] == SyncStatus.NEED_SNAPSHOT
    assert accept(decoder, sync, diff(96, 101, 95))[0] == SyncStatus.BUFFERED
    status, out = sync.snapshot(snap(decoder, 98))      # U <= 98 <= u: the 96..101 event
    assert status == SyncStatus.SYNCED and out["sequence"].tolist() == [98, 98, 101]
    assert accept(decoder, sync, diff(105, 110, 101))[0] == SyncStatus.EMIT  # ids may jump: pu links them
    assert accept(decoder, sync, diff(111, 112, 109))[0] == SyncStatus.GAP
    status, out = accept(decoder, sync, diff(113, 114, 112))
    assert status == SyncStatus.BUFFERED and len(out) == 0


def test_usdm_snapshot_older_than_the_buffer():
    decoder, sync, inst = setup(USDM)
    accept(decoder, sync, diff(200, 210, 199))
    assert sync.snapshot(snap(decoder, 150))[0] == SyncStatus.SNAPSHOT_TOO_OLD
    assert sync.needs_snapshot(inst.id)
    assert sync.snapshot(snap(decoder, 205))[0] == SyncStatus.SYNCED


def test_empty_events_advance_the_chain():
    decoder, sync, inst = setup(USDM)
    sync.snapshot(snap(decoder, 10))
    assert accept(decoder, sync, diff(9, 12, 8))[0] == SyncStatus.EMIT
    status, out = accept(decoder, sync, diff(13, 15, 12, bids=(), asks=()))
    assert status == SyncStatus.EMIT and len(out) == 0
    assert accept(decoder, sync, diff(16, 18, 15))[0] == SyncStatus.EMIT     # pu = the empty event's u
    # and while buffering: an empty event is part of the chain the snapshot continues
    decoder, sync, inst = setup(SPOT)
    accept(decoder, sync, diff(10, 12))
    accept(decoder, sync, diff(13, 14, bids=()))
    accept(decoder, sync, diff(15, 16))
    status, out = sync.snapshot(snap(decoder, 11))
    assert status == SyncStatus.SYNCED and out["sequence"].tolist() == [11, 11, 12, 16]
    assert sync.state(inst.id)["last_update_id"] == 16


def test_a_dropped_depth_frame_is_a_gap():
    decoder, sync, inst = setup(SPOT)
    sync.snapshot(snap(decoder, 10))
    assert accept(decoder, sync, diff(11, 12))[0] == SyncStatus.EMIT
    bad = diff(13, 14, bids=(("100.001", "1.000"),))           # too precise: the decoder drops it
    status, out = accept(decoder, sync, bad)
    assert decoder.info["drop_reason"] == DropReason.TOO_PRECISE
    assert status == SyncStatus.GAP and out["kind"].tolist() == [RecordKind.BOOK_RESET]
    assert sync.stats()["lost_frames"] == 1
    # the next frame lines up with the lost one, but its levels are gone: still buffering
    assert accept(decoder, sync, diff(15, 16))[0] == SyncStatus.BUFFERED


def test_snapshot_ignored_when_older_than_the_live_book():
    decoder, sync, inst = setup(SPOT)
    sync.snapshot(snap(decoder, 10))
    accept(decoder, sync, diff(11, 20))
    assert sync.snapshot(snap(decoder, 15))[0] == SyncStatus.SNAPSHOT_IGNORED
    status, out = sync.snapshot(snap(decoder, 25))           # newer: replaces the book
    assert status == SyncStatus.SYNCED and len(out) == 2
    assert accept(decoder, sync, diff(21, 25))[0] == SyncStatus.STALE
    assert accept(decoder, sync, diff(26, 27))[0] == SyncStatus.EMIT


def test_reset_on_reconnect_and_failed_requests():
    decoder, sync, inst = setup(SPOT)
    sync.snapshot(snap(decoder, 10))
    resets = sync.reset(reason=ResetReason.RECONNECT, ts_local=7)
    assert resets["kind"].tolist() == [RecordKind.BOOK_RESET]
    assert (int(resets["instrument_id"][0]), int(resets["aux0"][0]), int(resets["sequence"][0])) == (
        inst.id, ResetReason.RECONNECT, 10)
    assert sync.needs_snapshot(inst.id) and len(sync.reset()) == 0
    assert accept(decoder, sync, diff(30, 31))[0] == SyncStatus.NEED_SNAPSHOT
    assert accept(decoder, sync, diff(32, 33))[0] == SyncStatus.BUFFERED
    sync.snapshot_request_failed(inst.id)
    assert accept(decoder, sync, diff(34, 35))[0] == SyncStatus.NEED_SNAPSHOT


def test_buffer_is_bounded():
    registry = InstrumentRegistry()
    registry.register("BTC_USDT", Market.BINANCE_SPOT, "0.01", "0.001", venue_symbol="BTCUSDT")
    decoder = BinanceDecoder(registry, Market.BINANCE_SPOT)
    sync = DepthSync(Market.BINANCE_SPOT, max_buffered_messages=8)
    for k in range(20):
        accept(decoder, sync, diff(10 * k + 1, 10 * k + 10))
    state = sync.state(1)
    assert state["buffered_messages"] <= 8 and sync.stats()["buffer_overflows"] >= 1
    assert sync.snapshot(snap(decoder, 5))[0] == SyncStatus.SNAPSHOT_TOO_OLD   # the start was let go
    status, out = sync.snapshot(snap(decoder, 185))
    assert status == SyncStatus.SYNCED and out["sequence"].tolist()[-1] == 200


def test_non_depth_frames_pass_through():
    decoder, sync, inst = setup(SPOT)
    status, out = accept(decoder, sync, b'{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1.00","q":"1.000","T":1,"m":true}')
    assert status == SyncStatus.EMIT and out["kind"].tolist() == [RecordKind.TRADE]
    status, out = accept(decoder, sync, b'{"result":null,"id":1}')
    assert status == SyncStatus.EMIT and len(out) == 0


def test_snapshot_input_is_checked():
    decoder, sync, inst = setup(SPOT)
    with pytest.raises(ValueError):
        sync.snapshot(np.zeros(0, dtype=RECORD_DTYPE))
    with pytest.raises(ValueError):
        sync.snapshot(decoder.decode(diff(1, 2)))           # diffs are not a snapshot
    empty = decoder.decode_depth_snapshot('{"lastUpdateId":7,"bids":[],"asks":[]}', "BTCUSDT")
    status, out = sync.snapshot(empty)
    assert status == SyncStatus.SYNCED and out["kind"].tolist() == [RecordKind.BOOK_RESET]
