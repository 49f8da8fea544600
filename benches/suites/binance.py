"""Binance suite: one depth-diff frame (bytes off the socket) decoded and applied to a book, then the
tick-to-order latency through the engine and the simulator (suites/tick_to_order.py, also its own suite).

Frames:
  real       a 20-level frame from the USD-M capture (cryptofeed_usdm_ws_2021-07-22.jsonl, SUSHIUSDT,
             8 bids + 12 asks, combined-stream envelope, exact wire bytes), over that symbol's REST
             snapshot from the same capture;
  synthetic  20 bids x 20 asks of the same shape for a BTCUSDT-like instrument (price "67012.30",
             size "0.123"), over a 20 x 20 snapshot.

Contenders, all fed the same bytes, the same snapshot first, timed interleaved (harness.measure):
  extrema, from Python   n = decoder.decode_to(frame, out, ts); book.apply_records(out[:n])
                         (and book.apply_records(decoder.decode(frame, ts)), the faster is shown)
  extrema, compiled      a Cython loop (the connection glue's path): decoder.decode_into(...) then
                         book.apply_record(&out[i]) per record, no Python in between
  NautilusTrader         its Binance data client's own steps (peers/nautilus_binance.py): msgspec
                         wrapper decode, BinanceOrderBookMsg decode, instrument id, parse_to_order_book_
                         deltas (Price / Quantity per level), Cython OrderBook.apply_deltas
  orjson + floats        orjson.loads, float(price) / float(size) per level, the sortedcontainers
                         reference book (tests/models/reference_book.py) keyed by round(float * 10**p)

Applying the same diff again is idempotent (sizes are absolute), so every repeat does identical work;
the books are cross-checked afterwards (extrema, NautilusTrader and the reference must hold the same
levels, or the run notes a MISMATCH).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from harness import Case
from peers import nautilus_binance as nt
from peers import reference_book as refmod
from peers.compile_cython import compile_against_extrema

PEERS = ["nautilus-trader", "orjson", "sortedcontainers"]

FULL = dict(frames=20_000, ref_frames=2_000)
QUICK = dict(frames=4_000, ref_frames=400)

GLUE = r'''
# cython: language_level=3
from libc.stdint cimport int64_t
from extrema._core.types cimport Record
from extrema._core.book cimport OrderBook
from extrema._core.binance cimport BinanceDecoder

def wire_to_book(BinanceDecoder decoder, OrderBook book, bytes frame, Py_ssize_t repeat, int64_t ts_local):
    cdef Record out[512]
    cdef const char *data = frame
    cdef Py_ssize_t size = len(frame), i, k, n = 0
    with nogil:
        for i in range(repeat):
            n = decoder.decode_into(data, size, ts_local, out, 512)
            for k in range(n):
                book.apply_record(&out[k])
    return n

def decode_only(BinanceDecoder decoder, bytes frame, Py_ssize_t repeat, int64_t ts_local):
    cdef Record out[512]
    cdef const char *data = frame
    cdef Py_ssize_t size = len(frame), i, n = 0
    with nogil:
        for i in range(repeat):
            n = decoder.decode_into(data, size, ts_local, out, 512)
    return n
'''

TARGET_NS = 2_000      # the target for a 20-level frame into the book
TARGET_RATIO = 10.0    # ... and at least 10x NautilusTrader


def _fixtures_dir(repo: str) -> Path:
    configured = os.environ.get("EXTREMA_FIXTURES")
    return Path(configured) if configured else Path(repo).parent / "shared" / "fixtures"


def real_frame(repo: str):
    """(frame bytes, symbol, snapshot dict) of a ~20-level depth diff from the USD-M capture."""
    captures = _fixtures_dir(repo) / "binance" / "captures"
    ws = captures / "cryptofeed_usdm_ws_2021-07-22.jsonl"
    http = captures / "cryptofeed_usdm_http_depth_2021-07-22.jsonl"
    if not ws.exists():
        return None
    best = None
    for line in ws.read_text().splitlines():
        entry = json.loads(line)
        if entry["dir"] != "recv":
            continue
        data = json.loads(entry["raw"])["data"]
        if data.get("e") == "depthUpdate":
            n = len(data["b"]) + len(data["a"])
            if best is None or abs(n - 20) < abs(best[0] - 20):
                best = (n, entry["raw"], data["s"])
    _, raw, symbol = best
    for line in http.read_text().splitlines():
        entry = json.loads(line)
        if f"symbol={symbol}&" in entry["url"]:
            return raw.encode(), symbol, json.loads(entry["raw"])
    return None


def synthetic_frame(seed: int):
    """20 x 20 levels of a BTCUSDT-like book around 67,000.00 (tick 0.10, lot 0.001), real envelope."""
    rnd = np.random.default_rng(seed)
    mid = 670_000     # in ticks of 0.10

    def side(start, step):
        return [[f"{(start + step * i) / 10:.2f}", f"{rnd.integers(1, 5000) / 1000:.3f}"] for i in range(20)]
    snapshot = {"lastUpdateId": 1000, "E": 1, "T": 1, "bids": side(mid - 1, -1), "asks": side(mid + 1, 1)}
    data = {"e": "depthUpdate", "E": 1700000000123, "T": 1700000000120, "s": "BTCUSDT", "U": 1001, "u": 1010,
            "pu": 1000, "b": side(mid - 1, -1), "a": side(mid + 1, 1)}
    frame = json.dumps({"stream": "btcusdt@depth@0ms", "data": data}, separators=(",", ":")).encode()
    return frame, "BTCUSDT", snapshot


def _decimals(text: str) -> int:
    return len(text.partition(".")[2])


def run(ctx) -> list[dict]:
    try:
        import extrema
        from extrema._core.binance import BinanceDecoder
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"binance suite: extrema is not importable ({type(exc).__name__}: {exc}); "
                         "build it first: pip install -e .") from exc
    p = QUICK if ctx.quick else FULL
    glue, seconds, cmd = compile_against_extrema(GLUE, "_bench_binance_glue", opt="-O2")
    ctx.log(f"compiled the Cython glue loop in {seconds:.1f} s ({cmd})")
    if nt.AVAILABLE:
        ctx.log(f"peer: nautilus-trader {nt.VERSION}")
    else:
        ctx.note(f"NautilusTrader not importable ({nt.IMPORT_ERROR}); its fields are null. "
                 "Install it with: python benches/run.py binance --install-peers")
    ref, why = refmod.load(ctx.repo)
    if ref is None:
        ctx.note(f"reference book unavailable ({why})")
    try:
        import orjson
    except ImportError:
        orjson = None
        ctx.note("orjson not importable: the orjson + floats + reference row is skipped")

    rows = []
    real = real_frame(ctx.repo)
    if real is None:
        ctx.note(f"USD-M capture not found under {_fixtures_dir(ctx.repo)} (set EXTREMA_FIXTURES): "
                 "the real-frame rows are skipped")
    else:
        rows += _frame_rows(ctx, p, extrema, BinanceDecoder, glue, ref, orjson, "real USD-M", *real)
    rows += _frame_rows(ctx, p, extrema, BinanceDecoder, glue, ref, orjson, "synthetic 20x20", *synthetic_frame(ctx.seed))
    # Issue 5's second figure, through the whole engine against the simulator (its own suite too).
    from suites import tick_to_order
    rows += tick_to_order.run(ctx)
    return rows


def _frame_rows(ctx, p, extrema, BinanceDecoder, glue, ref, orjson, label, frame, symbol, snapshot):
    data = json.loads(frame)["data"]
    n_levels = len(data["b"]) + len(data["a"])
    strings = [x for lv in snapshot["bids"] + snapshot["asks"] + data["b"] + data["a"] for x in lv]
    pp = max(_decimals(s) for s in strings[0::2])
    sp = max(_decimals(s) for s in strings[1::2])
    ctx.log(f"{label} frame: {symbol}, {len(data['b'])} bids + {len(data['a'])} asks, {len(frame)} bytes, "
            f"precision {pp} / {sp}")
    registry = extrema.InstrumentRegistry()
    inst = registry.register(f"{symbol[:-4]}_USDT_PERP", extrema.Market.BINANCE_USDM, f"1e-{pp}", f"1e-{sp}",
                             venue_symbol=symbol)
    decoder = BinanceDecoder(registry, extrema.Market.BINANCE_USDM)
    snap_records = decoder.decode_depth_snapshot(json.dumps(snapshot), inst, 0)
    book = extrema.OrderBook.for_instrument(inst)

    def reset():
        book.apply_records(snap_records)

    n = p["frames"]
    frames = [frame] * n
    out = np.zeros(512, dtype=extrema.RECORD_DTYPE)
    decode_to, decode, apply_records = decoder.decode_to, decoder.decode, book.apply_records

    def ex_decode_to(frames):
        for f in frames:
            k = decode_to(f, out, 0)
            apply_records(out[:k])

    def ex_decode(frames):
        for f in frames:
            apply_records(decode(f, 0))

    def ex_decode_only(frames):
        for f in frames:
            decode_to(f, out, 0)

    cases = {
        "py_decode_to": Case(ex_decode_to, n, lambda: (reset(), frames)[1]),
        "py_decode": Case(ex_decode, n, lambda: (reset(), frames)[1]),
        "compiled": Case(lambda _: glue.wire_to_book(decoder, book, frame, n, 0), n, reset),
        "py_decode_only": Case(ex_decode_only, n, lambda: frames),
        "compiled_decode_only": Case(lambda _: glue.decode_only(decoder, frame, n, 0), n),
    }
    nbook = None
    if nt.AVAILABLE:
        nd = nt.NautilusBinanceDepth(usdm=True)
        nbook, nreset = nd.new_book(symbol, snapshot["lastUpdateId"], snapshot["bids"], snapshot["asks"])
        cases["nautilus"] = Case(nd.wire_to_book_loop(nbook), n, lambda: (nreset(), frames)[1])
        cases["nautilus_decode_only"] = Case(nd.decode_loop(), n, lambda: frames)
    rbook = None
    if ref is not None and orjson is not None:
        m = p["ref_frames"]
        rbook = ref.ReferenceBook(pp, sp)
        ps, qs = 10 ** pp, 10 ** sp
        loads, apply_delta = orjson.loads, rbook.apply_delta

        def ref_reset():
            rbook.apply_snapshot([(round(float(a) * ps), round(float(b) * qs)) for a, b in snapshot["bids"]],
                                 [(round(float(a) * ps), round(float(b) * qs)) for a, b in snapshot["asks"]],
                                 snapshot["lastUpdateId"])
            return frames[:m]

        def ref_path(frames):
            for f in frames:
                d = loads(f)["data"]
                u, bids, asks = d["u"], d["b"], d["a"]
                nb_, na_ = len(bids), len(asks)
                for i, (a, b) in enumerate(bids):
                    apply_delta(0, round(float(a) * ps), round(float(b) * qs), u, i == nb_ - 1 and na_ == 0)
                for i, (a, b) in enumerate(asks):
                    apply_delta(1, round(float(a) * ps), round(float(b) * qs), u, i == na_ - 1)
        cases["orjson_ref"] = Case(ref_path, m, ref_reset)

    t = ctx.measure(cases)

    # Cross-check: every book holds the same levels after the timed runs.
    mine = ([tuple(x) for x in book.levels(extrema.BookSide.BID, raw=True).tolist()],
            [tuple(x) for x in book.levels(extrema.BookSide.ASK, raw=True).tolist()])
    if nbook is not None:
        theirs = (nt.levels(nbook, "bid", pp, sp), nt.levels(nbook, "ask", pp, sp))
        if theirs != mine:
            ctx.note(f"MISMATCH ({label}): NautilusTrader's book differs from extrema's")
    if rbook is not None and (rbook.levels(0), rbook.levels(1)) != (list(mine[0]), list(mine[1])):
        ctx.note(f"MISMATCH ({label}): the reference book differs from extrema's")
    if decoder.stats()["dropped"]:
        ctx.note(f"MISMATCH ({label}): the decoder dropped frames: {decoder.stats()['drops']}")

    forms = {"py_decode_to": "decode_to(frame, out) + apply_records(out[:n])",
             "py_decode": "apply_records(decode(frame))"}
    py = min(forms, key=lambda k: t[k].median)
    other = "py_decode" if py == "py_decode_to" else "py_decode_to"
    notes = (f"{n:,} frames per repeat, median of {len(t[py].samples)}, spread {t[py].spread:.0%}; "
             f"{n_levels} levels; the other Python form, {forms[other]}: {t[other].median:,.0f} ns")
    py_how = forms[py]
    rows = []
    twenty = label.startswith("real")

    def peer_rows(figure, value_key, unit_div, nautilus_key, extra_note):
        value = t[value_key].median / unit_div
        unit = "ns/frame" if unit_div == 1 else "ns/level"
        target = met = None
        if twenty and unit_div == 1 and value_key in ("py_decode_to", "py_decode", "compiled"):
            target = f"<= {TARGET_NS:,} ns for a 20-level frame into the book and >= {TARGET_RATIO:.0f}x nautilus"
            met = value <= TARGET_NS and nautilus_key in t and t[nautilus_key].median / unit_div / value >= TARGET_RATIO
        out = []
        if nautilus_key in t:
            out.append(ctx.row(figure, value, unit, nt.label(
                "wrapper + BinanceOrderBookMsg decode, parse_to_order_book_deltas, OrderBook.apply_deltas"
                if nautilus_key == "nautilus" else "wrapper + BinanceOrderBookMsg decode, parse_to_order_book_deltas"),
                t[nautilus_key].median / unit_div, target=target, target_met=met, note=extra_note))
        else:
            out.append(ctx.row(figure, value, unit, target=target, target_met=met, note=extra_note))
        if "orjson_ref" in t and nautilus_key == "nautilus":
            out.append(ctx.row(figure, value, unit, "orjson + float() + reference book (sortedcontainers)",
                               t["orjson_ref"].median / unit_div))
        return out

    rows += peer_rows(f"{label} frame into the book, from Python ({py_how})", py, 1, "nautilus", notes)
    rows += peer_rows(f"{label} frame into the book, from Python, per level", py, n_levels, "nautilus", None)
    rows += peer_rows(f"{label} frame into the book, compiled glue (decode_into + apply_record, nogil)",
                      "compiled", 1, "nautilus", f"median of {len(t['compiled'].samples)}, "
                      f"spread {t['compiled'].spread:.0%}")
    rows += peer_rows(f"{label} frame decode only, from Python (decode_to)", "py_decode_only", 1,
                      "nautilus_decode_only", f"compiled decode_into alone: {t['compiled_decode_only'].median:,.0f} ns")
    return rows
