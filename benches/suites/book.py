"""Order-book suite: extrema.OrderBook vs NautilusTrader and the sortedcontainers reference book.

Figures (see benches/README.md for what each one means):
  1. one delta from Python (raw ints)          apply_delta(side, price_raw, size_raw)
  2. one level change from plain Python floats  update(side, price, size)
  3. batch apply of ~1M BOOK_DELTA records      apply_records(arr)  (updates/s)
  3b. one 10-update exchange message            apply_records(msg)  (the per-call cost of the batch path)
  4. best bid / ask read from Python            best_bid, bbo()
  5. top-10 into numpy                          top(10), levels(BookSide.BID, 10)
  6. bounded memory: price walks 20,000 -> 120,000 at tick 0.01; per-update cost end/start, RSS growth

Every extrema / peer pair is timed interleaved in the same run (harness.measure) and the books are
cross-checked for identical final levels, so a figure can't come from a book that did no work.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc

import numpy as np

from harness import Case, rss_bytes, unrolled
from peers import nautilus_book as nt
from peers import reference_book as refmod
from workloads import book_workload as wl

PEERS = ["nautilus-trader", "sortedcontainers"]

PRICE_PRECISION = 2   # BTCUSDT-like: tick 0.01
SIZE_PRECISION = 3    # lot 0.001
BID, ASK = 0, 1

FULL = dict(batch=1_000_000, single=20_000, reads=20_000, top=3_000, ref_repeats=3,
            probe=50_000, wander_jump=500, wander_sd=1_500, wander_chunk_steps=2_000)
QUICK = dict(batch=100_000, single=5_000, reads=5_000, top=1_000, ref_repeats=1,
             probe=20_000, wander_jump=5_000, wander_sd=15_000, wander_chunk_steps=500)


def _median_note(t) -> str:
    return f"median of {len(t.samples)}, spread {t.spread:.0%}"


def _levels_raw(book, side) -> list:
    return [tuple(x) for x in book.levels(side, raw=True).tolist()]


def _renumbered(rec: np.ndarray, offset: int) -> np.ndarray:
    """A copy whose update ids are shifted by offset (so a replay is never stale)."""
    out = rec.copy()
    out["sequence"] += offset
    out["aux0"] += offset
    out["aux1"] += offset
    return out


def run(ctx) -> list[dict]:
    try:
        import extrema
        extrema.OrderBook
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"book suite: extrema is not importable ({type(exc).__name__}: {exc}); "
                         "build it first: pip install -e .") from exc

    p = QUICK if ctx.quick else FULL
    rows: list[dict] = []

    nb = None
    if nt.AVAILABLE:
        nb = nt.NautilusBooks(PRICE_PRECISION, SIZE_PRECISION)
        ctx.log(f"peer: nautilus-trader {nt.VERSION} (FIXED_PRECISION={nt.FIXED_PRECISION})")
    else:
        ctx.note(f"NautilusTrader not importable ({nt.IMPORT_ERROR}); nautilus peer fields are null. "
                 "Install it with: python benches/run.py book --install-peers")
    ref, why = refmod.load(ctx.repo)
    if ref is None:
        ctx.note(f"reference book unavailable ({why}); reference peer fields are null")

    t0 = time.perf_counter()
    w = wl.near_touch(p["batch"], seed=ctx.seed, price_precision=PRICE_PRECISION, size_precision=SIZE_PRECISION)
    counts = np.bincount(w.action, minlength=4)
    ctx.log(f"workload: {len(w):,} near-touch updates ({counts[wl.ADD]:,} adds, {counts[wl.UPDATE]:,} changes, "
            f"{counts[wl.DELETE]:,} deletes; {int(w.last.sum()):,} messages; prices "
            f"{w.price.min() / 100:,.2f}..{w.price.max() / 100:,.2f}) generated in {time.perf_counter() - t0:.1f} s")

    rows += _single_delta(ctx, p, extrema, w, nb, ref)
    rows += _update_plain(ctx, p, extrema, w, nb, ref)
    rows += _batch(ctx, p, extrema, w, nb, ref)
    rows += _per_message(ctx, p, extrema, w, nb)
    rows += _reads(ctx, p, extrema, w, nb, ref)
    rows += _top(ctx, p, extrema, w, nb, ref)
    rows += _bounded_memory(ctx, p, extrema, w)
    return rows


# --------------------------------------------------------------------------------------- helpers

def _extrema_book_at_snapshot(extrema, w):
    """A book holding the workload's snapshot, and a reset() that restores exactly that state.

    The snapshot records carry update id 0 so that deltas applied afterwards without an update id
    (figures 1 and 2) are never stale."""
    book = extrema.OrderBook(PRICE_PRECISION, SIZE_PRECISION)
    snap = w.snapshot_records(dtype=extrema.RECORD_DTYPE)
    snap["sequence"] = 0

    def reset():
        book.clear()
        book.apply_records(snap)
    reset()
    return book, reset


def _nautilus_books_at_snapshot(nb, w):
    """{api: (book, reset)} for both NautilusTrader APIs."""
    out = {}
    for api in nt.APIS:
        book = nb.new_book(api)
        snap = nb.snapshot_deltas(w, api)

        def reset(book=book, snap=snap, api=api):
            nb.clear(book, api)
            for d in snap:
                book.apply_delta(d)
        reset()
        out[api] = (book, reset)
    return out


def _reference_at_snapshot(ref, w):
    book = ref.ReferenceBook(PRICE_PRECISION, SIZE_PRECISION)

    def reset():
        book.apply_snapshot(w.snapshot_bids, w.snapshot_asks, 0)
    reset()
    return book, reset


def _check_same(ctx, what: str, expected: tuple, got: dict) -> bool:
    """Every book in `got` ({name: (bids, asks)}) must hold the `expected` levels."""
    ok = True
    for name, levels in got.items():
        if levels != expected:
            ok = False
            ctx.note(f"MISMATCH after {what}: {name} levels differ from extrema's "
                     f"(bids {levels[0][:3]}.. vs {expected[0][:3]}..)")
    return ok


def _fastest(timings: dict, names: list) -> str:
    return min(names, key=lambda n: timings[n].median)


# ------------------------------------------------------------------------ 1. one delta, raw ints

def _single_delta(ctx, p, extrema, w, nb, ref) -> list:
    n = p["single"]
    ops = w.ops(0, n)
    book, reset = _extrema_book_at_snapshot(extrema, w)
    apply = book.apply_delta

    def ex_run(ops):
        for side, price, size in ops:
            apply(side, price, size)

    def empty_loop(ops):
        for side, price, size in ops:
            pass

    cases = {"extrema": Case(ex_run, n, lambda: (reset(), ops)[1]),
             "loop": Case(empty_loop, n, lambda: ops)}
    nbooks = {}
    if nb is not None:
        nbooks = _nautilus_books_at_snapshot(nb, w)
        for api, (nbook, nreset) in nbooks.items():
            deltas = nb.workload_deltas(w, api, 0, n)
            cases[api] = Case(nb.apply_loop(nbook), n, lambda nreset=nreset, deltas=deltas: (nreset(), deltas)[1])
    t = ctx.measure(cases)

    # Cross-check the state every contender ended in (after its last repeat).
    expected = (_levels_raw(book, BID), _levels_raw(book, ASK))
    got = {f"nautilus[{api}]": (nb.levels_raw(b, api, BID), nb.levels_raw(b, api, ASK))
           for api, (b, _) in nbooks.items()}
    if ref is not None:
        rb, rreset = _reference_at_snapshot(ref, w)
        for side, price, size in ops:
            rb.apply_delta(side, price, size)
        got["reference"] = (rb.levels(BID), rb.levels(ASK))
    _check_same(ctx, "figure 1 deltas", expected, got)
    if book.stats.get("stale"):
        ctx.note(f"figure 1: extrema counted {book.stats['stale']} stale deltas (expected 0)")

    ex = t["extrema"]
    note = (f"{n:,} deltas (adds/changes/deletes near the touch) per repeat on a 20-level book; "
            f"{_median_note(ex)}; the Python for-loop + tuple unpack alone costs {t['loop'].median:.0f} ns/op "
            f"and is included on both sides")
    if nb is None:
        return [ctx.row("apply one delta from Python (raw ints)", ex.median, "ns/op", None, None,
                        target="<= 1/2 of nautilus", target_met=None, note=note)]
    api = _fastest(t, list(nbooks))
    other = [a for a in nbooks if a != api][0]
    note += f"; nautilus [{other}] apply_delta: {t[other].median:.0f} ns/op"
    return [ctx.row("apply one delta from Python (raw ints)", ex.median, "ns/op",
                    nt.label(api, "OrderBook.apply_delta(prebuilt OrderBookDelta)"), t[api].median,
                    target="<= 1/2 of nautilus", target_met=ex.median <= t[api].median / 2, note=note)]


# ---------------------------------------------------------------- 2. level change from floats

def _update_plain(ctx, p, extrema, w, nb, ref) -> list:
    n = p["single"]
    sl = slice(0, n)
    ops = list(zip(w.side[sl].tolist(), (w.price[sl] / 10**PRICE_PRECISION).tolist(),
                   (w.size[sl] / 10**SIZE_PRECISION).tolist()))
    book, reset = _extrema_book_at_snapshot(extrema, w)
    update = book.update

    def ex_run(ops):
        for side, price, size in ops:
            update(side, price, size)

    cases = {"extrema": Case(ex_run, n, lambda: (reset(), ops)[1])}
    nbooks = {}
    if nb is not None:
        nbooks = _nautilus_books_at_snapshot(nb, w)
        for api, (nbook, nreset) in nbooks.items():
            cases[api] = Case(nb.build_and_apply_loop(nbook, api), n, lambda nreset=nreset: (nreset(), ops)[1])
    t = ctx.measure(cases)

    expected = (_levels_raw(book, BID), _levels_raw(book, ASK))
    got = {f"nautilus[{api}]": (nb.levels_raw(b, api, BID), nb.levels_raw(b, api, ASK))
           for api, (b, _) in nbooks.items()}
    _check_same(ctx, "figure 2 updates", expected, got)
    raw_expected = None
    if ref is not None:
        rb, _ = _reference_at_snapshot(ref, w)
        for side, price, size in w.ops(0, n):
            rb.apply_delta(side, price, size)
        raw_expected = (rb.levels(BID), rb.levels(ASK))
        if raw_expected != expected:
            ctx.note("MISMATCH: extrema update(float) levels differ from the reference fed the raw ints")

    ex = t["extrema"]
    note = f"{n:,} updates per repeat (price/size as Python floats, exact at the precisions); {_median_note(ex)}"
    if nb is None:
        return [ctx.row("level change from Python floats", ex.median, "ns/op", None, None,
                        target="<= 1/5 of nautilus", target_met=None, note=note)]
    api = _fastest(t, list(nbooks))
    other = [a for a in nbooks if a != api][0]
    note += f"; nautilus [{other}] build-and-apply: {t[other].median:.0f} ns/op"
    return [ctx.row("level change from Python floats", ex.median, "ns/op",
                    nt.label(api, "Price+Quantity+BookOrder+OrderBookDelta, apply_delta"), t[api].median,
                    target="<= 1/5 of nautilus", target_met=ex.median <= t[api].median / 5, note=note)]


# ------------------------------------------------------------------------------ 3. batch apply

def _batch(ctx, p, extrema, w, nb, ref) -> list:
    rec = w.records(dtype=extrema.RECORD_DTYPE)
    n_updates = len(w)
    n_rec = len(rec)
    holder = {}

    def ex_setup():
        holder["book"] = extrema.OrderBook(PRICE_PRECISION, SIZE_PRECISION)
        return holder["book"]

    def ex_run(book):
        holder["applied"] = book.apply_records(rec)

    cases = {"extrema": Case(ex_run, n_rec, ex_setup)}
    variants = {}  # case name -> peer label
    if nb is not None:
        t0 = time.perf_counter()
        for api in nt.APIS:
            deltas = nb.workload_deltas(w, api)
            snap = nb.snapshot_deltas(w, api)

            def fresh(api=api, snap=snap):
                book = nb.new_book(api)
                for d in snap:
                    book.apply_delta(d)
                holder[f"nautilus-{api}"] = book
                return book

            one = nb.one_batch(deltas, api)
            cases[f"{api}:one"] = Case(lambda book, one=one: book.apply_deltas(one), n_updates, fresh)
            variants[f"{api}:one"] = nt.label(api, "apply_deltas(one OrderBookDeltas of all)")
            if api == "cython":
                # The per-delta and per-message paths of the API NautilusTrader's own engine uses.
                cases["cython:each"] = Case(lambda book, deltas=deltas: nb.apply_loop(book)(deltas), n_updates, fresh)
                variants["cython:each"] = nt.label(api, "apply_delta per prebuilt delta")
                msgs = nb.batches(deltas, w.last.tolist(), api)
                cases["cython:msg"] = Case(lambda book, msgs=msgs: nb.apply_batches_loop(book)(msgs), n_updates, fresh)
                variants["cython:msg"] = nt.label(api, "apply_deltas per message OrderBookDeltas")
        ctx.log(f"built {n_updates:,} NautilusTrader deltas per API in {time.perf_counter() - t0:.1f} s")
    t = ctx.measure(cases)

    applied = holder["applied"]
    ex_book = holder["book"]
    expected = (_levels_raw(ex_book, BID), _levels_raw(ex_book, ASK))
    if applied != n_rec:
        ctx.note(f"figure 3: apply_records returned {applied:,}, expected {n_rec:,} (stats {ex_book.stats})")
    got = {}
    if nb is not None:
        for api in nt.APIS:
            b = holder[f"nautilus-{api}"]
            got[f"nautilus[{api}]"] = (nb.levels_raw(b, api, BID), nb.levels_raw(b, api, ASK))

    ref_t = None
    if ref is not None:
        args = list(zip(w.side.tolist(), w.price.tolist(), w.size.tolist(), w.update_id.tolist(), w.last.tolist()))

        def ref_setup():
            rb = ref.ReferenceBook(PRICE_PRECISION, SIZE_PRECISION)
            rb.apply_snapshot(w.snapshot_bids, w.snapshot_asks, w.snapshot_id)
            holder["ref"] = rb
            return rb

        def ref_run(rb):
            apply = rb.apply_delta
            for side, price, size, uid, last in args:
                apply(side, price, size, uid, last)
        ref_t = ctx.measure({"ref": Case(ref_run, n_updates, ref_setup)}, repeats=p["ref_repeats"], warmup=0)["ref"]
        rb = holder["ref"]
        got["reference"] = (rb.levels(BID), rb.levels(ASK))
    _check_same(ctx, "figure 3 batch", expected, got)

    ex = t["extrema"]
    figure = f"batch apply {n_updates / 1e6:g}M deltas (apply_records)"
    target = ">= 20M updates/s"
    met = ex.per_second >= 20e6
    base_note = (f"{n_rec:,} BOOK_DELTA records ({int(w.last.sum()):,} messages) on a fresh book per repeat; "
                 f"{_median_note(ex)}")
    out = []
    if nb is not None:
        names = list(variants)
        best = _fastest(t, names)
        others = "; ".join(f"{variants[k].split(' ', 2)[2]}: {t[k].per_second / 1e6:.2f}M/s"
                           for k in names if k != best)
        out.append(ctx.row(figure, ex.per_second, "updates/s", variants[best], t[best].per_second,
                           lower_is_better=False, target=target, target_met=met,
                           note=f"{base_note}; fastest NautilusTrader path shown (prebuilt objects, build time "
                                f"excluded); other paths: {others}"))
    else:
        out.append(ctx.row(figure, ex.per_second, "updates/s", None, None, lower_is_better=False,
                           target=target, target_met=met, note=base_note))
    if ref_t is not None:
        out.append(ctx.row(figure, ex.per_second, "updates/s",
                           "reference (sortedcontainers) apply_delta loop", ref_t.per_second,
                           lower_is_better=False, note=f"reference: {_median_note(ref_t)}"))
    return out


# ------------------------------------------------------------------- 3b. one exchange message

MSG_LEN = 10


def _per_message(ctx, p, extrema, w, nb) -> list:
    """Applying one venue message of MSG_LEN updates: the per-call cost of the batch paths."""
    n_msgs = p["single"] // MSG_LEN
    n = n_msgs * MSG_LEN
    rec = w.records(0, n, dtype=extrema.RECORD_DTYPE, with_snapshot=False)
    rec["flags"] &= ~np.uint16(wl.FLAG_LAST)
    rec["flags"][MSG_LEN - 1::MSG_LEN] |= wl.FLAG_LAST
    msgs = [rec[i:i + MSG_LEN].copy() for i in range(0, n, MSG_LEN)]
    book, reset = _extrema_book_at_snapshot(extrema, w)
    apply_records = book.apply_records

    def ex_records(msgs):
        for m in msgs:
            apply_records(m)

    # The same messages through apply_delta(side, price, size, update_id, last) from Python.
    grouped = []
    for m in msgs:
        grouped.append([(int(r["flags"] & 1), int(r["price"]), int(r["quantity"]), int(r["sequence"]),
                         bool(r["flags"] & wl.FLAG_LAST)) for r in m])
    apply_delta = book.apply_delta

    def ex_deltas(grouped):
        for m in grouped:
            for side, price, size, uid, last in m:
                apply_delta(side, price, size, uid, last)

    cases = {"records": Case(ex_records, n_msgs, lambda: (reset(), msgs)[1]),
             "deltas": Case(ex_deltas, n_msgs, lambda: (reset(), grouped)[1])}
    apis = []
    if nb is not None:
        last_flags = [(i % MSG_LEN) == MSG_LEN - 1 for i in range(n)]
        for api, (nbook, nreset) in _nautilus_books_at_snapshot(nb, w).items():
            batches = nb.batches(nb.workload_deltas(w, api, 0, n), last_flags, api)
            cases[api] = Case(nb.apply_batches_loop(nbook), n_msgs, lambda nreset=nreset, b=batches: (nreset(), b)[1])
            apis.append(api)
    t = ctx.measure(cases)
    ex = t["records"]
    note = (f"{n_msgs:,} messages of {MSG_LEN} near-touch updates per repeat; {_median_note(ex)}; "
            f"the same messages via {MSG_LEN} x apply_delta(side, price_raw, size_raw, update_id, last): "
            f"{t['deltas'].median:,.0f} ns/message")
    figure = f"apply one {MSG_LEN}-update message (apply_records)"
    if not apis:
        return [ctx.row(figure, ex.median, "ns/message", note=note)]
    api = _fastest(t, apis)
    return [ctx.row(figure, ex.median, "ns/message",
                    nt.label(api, f"apply_deltas(OrderBookDeltas of {MSG_LEN} prebuilt)"), t[api].median,
                    note=note)]


# ------------------------------------------------------------------------------------ 4. reads

def _reads(ctx, p, extrema, w, nb, ref) -> list:
    n = p["reads"]
    book, _ = _extrema_book_at_snapshot(extrema, w)
    cases = {"best_bid": unrolled("b.best_bid", {"b": book}, n=n),
             "bbo": unrolled("b.bbo()", {"b": book}, n=n),
             "best_bid_raw": unrolled("b.best_bid_raw", {"b": book}, n=n)}
    apis = []
    if nb is not None:
        for api, (nbook, _) in _nautilus_books_at_snapshot(nb, w).items():
            apis.append(api)
            cases[f"{api}:best_bid"] = unrolled("b.best_bid_price()", {"b": nbook}, n=n)
            cases[f"{api}:bbo"] = unrolled(
                "(b.best_bid_price(), b.best_bid_size(), b.best_ask_price(), b.best_ask_size())", {"b": nbook}, n=n)
            cases[f"{api}:best_bid_float"] = unrolled("b.best_bid_price().as_double()", {"b": nbook}, n=n)
    if ref is not None:
        rb, _ = _reference_at_snapshot(ref, w)
        m = max(n // 20, 200)
        cases["ref:best_bid"] = unrolled("b.best_bid", {"b": rb}, n=m)
        cases["ref:bbo"] = unrolled("b.bbo()", {"b": rb}, n=m)
    t = ctx.measure(cases)

    # Sanity: every contender reads the same best bid.
    expected = w.snapshot_bids[0][0] / 10**PRICE_PRECISION
    seen = {"extrema": book.best_bid}
    if nb is not None:
        for api, (nbook, _) in _nautilus_books_at_snapshot(nb, w).items():
            seen[f"nautilus[{api}]"] = float(str(nbook.best_bid_price()))
    if ref is not None:
        seen["reference"] = rb.best_bid
    if any(v != expected for v in seen.values()):
        ctx.note(f"figure 4: best bids disagree (expected {expected}): {seen}")

    bb = t["best_bid"]
    rows = []
    note = (f"property read on a 20-level book, {_median_note(bb)}; best_bid_raw (int): "
            f"{t['best_bid_raw'].median:.1f} ns")
    target_met = bb.median < 100
    if apis:
        api = _fastest(t, [f"{a}:best_bid" for a in apis]).split(":")[0]
        rows.append(ctx.row("best bid read (book.best_bid)", bb.median, "ns/op",
                            nt.label(api, "book.best_bid_price() -> Price"), t[f"{api}:best_bid"].median,
                            target="< 100 ns", target_met=target_met,
                            note=note + f"; nautilus best_bid_price().as_double() (a float, like extrema): "
                                        f"{t[f'{api}:best_bid_float'].median:.1f} ns"))
    else:
        rows.append(ctx.row("best bid read (book.best_bid)", bb.median, "ns/op", target="< 100 ns",
                            target_met=target_met, note=note))
    if ref is not None:
        rows.append(ctx.row("best bid read (book.best_bid)", bb.median, "ns/op", "reference best_bid",
                            t["ref:best_bid"].median))
    bbo = t["bbo"]
    if apis:
        api = _fastest(t, [f"{a}:bbo" for a in apis]).split(":")[0]
        rows.append(ctx.row("bbo() read (bid px, bid sz, ask px, ask sz)", bbo.median, "ns/op",
                            nt.label(api, "best_bid_price/size + best_ask_price/size"), t[f"{api}:bbo"].median,
                            note=_median_note(bbo)))
    else:
        rows.append(ctx.row("bbo() read (bid px, bid sz, ask px, ask sz)", bbo.median, "ns/op", note=_median_note(bbo)))
    if ref is not None:
        rows.append(ctx.row("bbo() read (bid px, bid sz, ask px, ask sz)", bbo.median, "ns/op", "reference bbo()",
                            t["ref:bbo"].median))
    return rows


# ------------------------------------------------------------------------------- 5. top-N numpy

def _top(ctx, p, extrema, w, nb, ref) -> list:
    n = p["top"]
    book, _ = _extrema_book_at_snapshot(extrema, w)
    cases = {"top": unrolled("b.top(10)", {"b": book}, n=n, unroll=4),
             "levels": unrolled("b.levels(BID, 10)", {"b": book, "BID": extrema.BookSide.BID}, n=n, unroll=4)}
    top_names, lvl_names = {}, {}
    if nb is not None:
        for api, (nbook, _) in _nautilus_books_at_snapshot(nb, w).items():
            for k, (name, fn) in enumerate(nb.top_variants(nbook, api).items()):
                key = f"{api}:top:{k}"
                cases[key] = unrolled("f()", {"f": fn}, n=max(n // 10, 100), unroll=2)
                top_names[key] = nt.label(api, name)
                ex_top = book.top(10)
                if not np.allclose(fn(), ex_top, rtol=1e-12, equal_nan=True):
                    ctx.note(f"figure 5: nautilus[{api}] {name} differs from extrema top(10)")
            for k, (name, fn) in enumerate(nb.bid_levels_variants(nbook, api).items()):
                key = f"{api}:lvl:{k}"
                cases[key] = unrolled("f()", {"f": fn}, n=max(n // 10, 100), unroll=2)
                lvl_names[key] = nt.label(api, name)
    if ref is not None:
        rb, _ = _reference_at_snapshot(ref, w)
        cases["ref:top"] = unrolled("np.array(b.top(10))", {"b": rb, "np": np}, n=max(n // 20, 50), unroll=1)
        if not np.array_equal(np.array(rb.top(10)), book.top(10), equal_nan=True):
            ctx.note("figure 5: reference top(10) differs from extrema top(10)")
    t = ctx.measure(cases)

    rows = []
    top = t["top"]
    if top_names:
        best = _fastest(t, list(top_names))
        others = "; ".join(f"{top_names[k]}: {t[k].median:,.0f} ns" for k in top_names if k != best)
        rows.append(ctx.row("top-10 both sides into numpy (book.top(10))", top.median, "ns/op",
                            top_names[best], t[best].median,
                            note=f"(10, 4) float64 array; {_median_note(top)}; other nautilus paths: {others}"))
    else:
        rows.append(ctx.row("top-10 both sides into numpy (book.top(10))", top.median, "ns/op",
                            note=_median_note(top)))
    if ref is not None:
        rows.append(ctx.row("top-10 both sides into numpy (book.top(10))", top.median, "ns/op",
                            "reference np.array(top(10))", t["ref:top"].median))
    lv = t["levels"]
    if lvl_names:
        best = _fastest(t, list(lvl_names))
        others = "; ".join(f"{lvl_names[k]}: {t[k].median:,.0f} ns" for k in lvl_names if k != best)
        rows.append(ctx.row("top-10 bids into numpy (book.levels(BID, 10))", lv.median, "ns/op",
                            lvl_names[best], t[best].median,
                            note=f"(10, 2) float64 array; {_median_note(lv)}; other nautilus paths: {others}"))
    else:
        rows.append(ctx.row("top-10 bids into numpy (book.levels(BID, 10))", lv.median, "ns/op",
                            note=_median_note(lv)))
    return rows


# ------------------------------------------------------------------------- 6. bounded memory

def _bounded_memory(ctx, p, extrema, w) -> list:
    """Book B walks 20,000 -> 120,000; control book A stays at 20,000. The per-update cost of the same
    near-touch probe stream is measured on B before the walk, then on B (at 120,000) interleaved with
    A (at 20,000) after it, so the end/start ratio is not skewed by background load changing over time.
    """
    start_mid, end_mid = 2_000_000, 12_000_000  # 20,000.00 -> 120,000.00 at precision 2, tick 0.01
    book = extrema.OrderBook(PRICE_PRECISION, SIZE_PRECISION)
    control = extrema.OrderBook(PRICE_PRECISION, SIZE_PRECISION)
    probe_n = min(p["probe"], len(w))
    probe = w.records(0, probe_n, dtype=extrema.RECORD_DTYPE)  # starts with a snapshot: identical repeats
    ids = {"next": 0}
    span = int(probe["sequence"].max()) + 1

    def probe_at(target, mid):
        shifted = probe.copy()
        shifted["price"] += mid - w.mid_raw

        def setup():
            ids["next"] += span
            return _renumbered(shifted, ids["next"])
        return Case(lambda rec: target.apply_records(rec), len(probe), setup)

    t_before = ctx.measure({"start": probe_at(book, start_mid)}, repeats=max(ctx.repeats, 15))["start"]

    path = wl.wander_path(start_mid + 1000, end_mid, mean_jump=p["wander_jump"], sd_jump=p["wander_sd"])
    first = wl.contiguous_snapshot(int(path[0]), update_id=ids["next"] + span, dtype=extrema.RECORD_DTYPE)
    book.apply_records(first)
    next_id = ids["next"] + span + 1
    nbytes = getattr(type(book), "nbytes", None) is not None
    nbytes_before = book.nbytes if nbytes else None
    nbytes_max = nbytes_before
    rss_before = rss_bytes()
    rss_after_first_chunk = None
    tracemalloc.start()
    traced0 = tracemalloc.get_traced_memory()[0]
    chunk = p["wander_chunk_steps"]
    chunk_rates = []
    wander_ns = 0
    wander_records = 0
    prev = int(path[0])
    lo = hi = prev
    for i in range(1, len(path), chunk):
        steps = path[i:i + chunk]
        rec, next_id = wl.wander_records(steps, prev, first_id=next_id, seed=i, dtype=extrema.RECORD_DTYPE)
        t0 = time.perf_counter_ns()
        book.apply_records(rec)
        dt = time.perf_counter_ns() - t0
        wander_ns += dt
        wander_records += len(rec)
        chunk_rates.append(dt / len(rec))
        prev = int(steps[-1])
        lo, hi = min(lo, int(steps.min())), max(hi, int(steps.max()))
        del rec
        if nbytes:
            nbytes_max = max(nbytes_max, book.nbytes)
        if rss_after_first_chunk is None:
            rss_after_first_chunk = rss_bytes()
    traced1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss_after = rss_bytes()
    walk_stats = dict(book.stats)
    ids["next"] = next_id
    end = prev
    # Short probes (~1 ms) in many rounds: a probe rarely spans a scheduler time slice, and the ratio is
    # the median of per-round ratios (walked / control measured back to back), which cancels slow load drift.
    t = ctx.measure({"end": probe_at(book, end), "control": probe_at(control, start_mid)},
                    repeats=max(ctx.repeats, 15))
    rss_final = rss_bytes()

    paired = [e / c for e, c in zip(t["end"].samples, t["control"].samples)]
    ratio = statistics.median(paired)
    growth_mib = (rss_after - (rss_after_first_chunk or rss_before)) / 2**20
    dense_mib = (hi - lo) * 2 * 16 / 2**20
    if book.stats.get("stale") or control.stats.get("stale"):
        ctx.note(f"figure 6: stale records (expected 0): {book.stats} {control.stats} - the probe did less work")
    note_cost = (f"apply_records ns/update of the same {probe_n:,}-update near-touch stream: walked book at "
                 f"{end / 100:,.2f} {t['end'].median:.1f} ns vs control book at {start_mid / 100:,.2f} "
                 f"{t['control'].median:.1f} ns (interleaved, {len(paired)} rounds; value = median of the per-round "
                 f"ratios; the walked book before its walk: {t_before.median:.1f} ns, end/before "
                 f"{t['end'].median / t_before.median:.2f}). Walk: {len(path):,} jumps (mean {p['wander_jump']} ticks, sd "
                 f"{p['wander_sd']}) over {lo / 100:,.2f}..{hi / 100:,.2f}, {wander_records:,} records at "
                 f"{wander_records / wander_ns * 1e3:.1f}M/s (first chunk {chunk_rates[0]:.1f} ns/record, last "
                 f"{chunk_rates[-1]:.1f}); book stats after the walk {walk_stats}")
    note_mem = (f"RSS growth from after the first walk chunk to the end of the walk "
                f"({len(chunk_rates) - 1} more chunks); from before the walk: "
                f"{(rss_after - rss_before) / 2**20:.2f} MiB, after the end probes: "
                f"{(rss_final - rss_before) / 2**20:.2f} MiB; tracemalloc-visible growth "
                f"{(traced1 - traced0) / 2**20:.2f} MiB; a dense array over the walked range would need "
                f"~{dense_mib:,.0f} MiB")
    if nbytes:
        note_mem += (f"; book.nbytes {nbytes_before:,} before the walk, at most {nbytes_max:,} after any chunk, "
                     f"{book.nbytes:,} at the end")
    return [
        ctx.row("bounded memory: per-update cost at 120,000 vs at 20,000", ratio, "x (end/start)",
                target="~1 (0.8..1.25)", target_met=0.8 <= ratio <= 1.25, note=note_cost),
        ctx.row("bounded memory: RSS growth over the 20,000 -> 120,000 walk", growth_mib, "MiB",
                target="< 16 MiB", target_met=growth_mib < 16, note=note_mem),
    ]
