"""Ring suite: extrema.Ring against queue.Queue, multiprocessing.Queue and pyzmq, one producer, N consumers.

Figures (see benches/README.md, "The ring suite"):
  1. throughput (records/s) for 1, 2 and 4 consumers, 1 and 256 records per message, with consumers
     as threads (process-memory ring vs queue.Queue, pyzmq PUSH/PULL and PUB/SUB over inproc) and as
     processes (shared-memory ring vs multiprocessing.Queue, pyzmq PUSH/PULL and PUB/SUB over ipc);
  2. one-way latency (p50 / p99 / p99.9, µs) at a paced rate, 1 record per message, same set-ups.

Every consumer receives every record (fan-out) and does the same work; a trial counts only if every
consumer got all n records with the right checksum (peers/ring_transports.py says how). Throughput
contenders are timed interleaved (harness.measure), each trial sized by a pilot run to last about the
same time; latency runs alternate between transports in rounds.
"""

from __future__ import annotations

import os
import time

import numpy as np

from harness import Case
from peers import ring_transports as rt

PEERS = ["pyzmq"]

FULL = dict(trial_s=0.10, lat_msgs=6_000, lat_rounds=2, lat_interval_us=200, record_pool=1 << 20)
QUICK = dict(trial_s=0.02, lat_msgs=1_000, lat_rounds=1, lat_interval_us=200, record_pool=1 << 18)
CONSUMERS = (1, 2, 4)
BATCHES = (1, 256)
MODES = ("threads", "processes")
MAX_RECORDS = 64_000_000            # per trial
TARGET_RATE = 10e6                  # records/s between processes
TARGET_ZMQ_RATIO = 10.0             # x pyzmq ipc, same run
YIELD_WAIT = dict(spin=1000, yields=100_000)     # latency variant: a consumer that yield-polls for longer


def _transports(mode: str) -> list:
    ts = rt.THREAD_TRANSPORTS if mode == "threads" else rt.PROCESS_TRANSPORTS
    return [t for t in ts if rt.zmq is not None or not rt.needs_zmq(t)]


def _plural(k: int) -> str:
    return f"{k} consumer{'s' if k > 1 else ''}"


def run(ctx) -> list[dict]:
    try:
        import extrema
        extrema.Ring
    except Exception as exc:  # noqa: BLE001
        raise SystemExit(f"ring suite: extrema is not importable ({type(exc).__name__}: {exc}); "
                         "build it first: pip install -e .") from exc

    p = QUICK if ctx.quick else FULL
    if rt.zmq is None:
        ctx.note(f"pyzmq not importable ({rt.ZMQ_ERROR}); zmq peer fields are null. "
                 "Install it with: python benches/run.py ring --install-peers")
    else:
        ctx.log(f"peer: {rt.ZMQ_VERSION}")
    cores = len(os.sched_getaffinity(0))
    ctx.log(f"{cores} usable cores: 2-4 consumers + the producer oversubscribe them (and threads share one GIL)")

    t0 = time.perf_counter()
    pool = rt.WorkerPool(max(CONSUMERS))
    ctx.log(f"started {max(CONSUMERS)} consumer processes (multiprocessing spawn) in {time.perf_counter() - t0:.1f} s")
    zctx = rt.zmq.Context() if rt.zmq is not None else None
    rows: list[dict] = []
    try:
        arr = rt.make_records(p["record_pool"])
        for mode in MODES:
            for k in CONSUMERS:
                for batch in BATCHES:
                    rows += _throughput(ctx, p, mode, k, batch, arr, pool, zctx)
        for mode in MODES:
            for k in CONSUMERS:
                rows += _latency(ctx, p, mode, k, pool, zctx)
    finally:
        pool.close()
        if zctx is not None:
            zctx.term()
    return rows


# -------------------------------------------------------------------------------------- throughput

class _TrialCase:
    """One transport in a throughput figure: setup() builds a handshaken Trial (untimed), run() sends
    n records and waits until every consumer has them all (timed); errors are collected, not raised."""

    def __init__(self, transport, k, batch, n, arr, pool, zctx, read_max=None):
        self.transport, self.k, self.batch, self.n, self.read_max = transport, k, batch, n, read_max
        self.arr, self.pool, self.zctx = arr, pool, zctx
        self.trial = None
        self.errors: list = []
        self.batches_seen: list = []

    def setup(self):
        self.teardown()
        self.trial = rt.Trial(self.transport, self.k, self.n, pool=self.pool, zctx=self.zctx,
                              read_max=self.read_max)
        if self.trial.error:
            self.errors.append(self.trial.error)
        return self.trial

    def run(self, trial):
        if trial.error is None:
            trial.run_throughput(self.arr, self.batch)
            trial.collect()
        if trial.error:
            self.errors.append(trial.error)
        else:
            self.batches_seen.append(sum(r["batches"] for r in trial.results) / len(trial.results))

    def teardown(self):
        if self.trial is not None:
            self.trial.close()
            self.trial = None

    def case(self) -> Case:
        return Case(self.run, self.n, self.setup)


def _size_trial(transport, k, batch, arr, pool, zctx, target_s, read_max=None) -> tuple:
    """Pilot runs (also a warm-up): grow n until a trial lasts >= target_s / 4, then size n for target_s."""
    n = batch * (4096 if batch == 1 else 64)
    while True:
        tc = _TrialCase(transport, k, batch, n, arr, pool, zctx, read_max)
        tr = tc.setup()
        t0 = time.perf_counter()
        tc.run(tr)
        dt = time.perf_counter() - t0
        tc.teardown()
        if tc.errors:
            return None, tc.errors[0]
        if dt >= target_s / 4 or n * 4 > MAX_RECORDS:
            break
        n *= 4
    rate = n / dt
    n = int(min(max(rate * target_s, n), MAX_RECORDS)) // batch * batch
    return n, None


def _throughput(ctx, p, mode, k, batch, arr, pool, zctx) -> list:
    names = _transports(mode)
    ring = names[0]
    # An extra ring contender whose consumers take at most one message's worth of records per read,
    # like the message transports do: separates the transport from the ring's read-everything batching.
    one = ring + "@1"
    contenders = names + [one]
    cases, tcs, broken = {}, {}, {}
    for c in contenders:
        t, read_max = (ring, batch) if c == one else (c, None)
        n, err = _size_trial(t, k, batch, arr, pool, zctx, p["trial_s"], read_max)
        if err:
            broken[c] = err
            continue
        tcs[c] = _TrialCase(t, k, batch, n, arr, pool, zctx, read_max)
        cases[c] = tcs[c].case()
    timings = ctx.measure(cases) if cases else {}
    for c, tc in tcs.items():
        tc.teardown()
        if tc.errors:
            broken[c] = tc.errors[0]
    labels = dict(rt.LABELS)
    labels[one] = f"{rt.LABELS[ring]} read(max_n={batch})"
    for c, err in broken.items():
        ctx.note(f"BROKEN {mode} {_plural(k)} batch {batch}: {labels[c]}: {err} - no figure posted")

    def rate(t):
        return None if t in broken or t not in timings else timings[t].per_second

    figure = f"throughput, {mode}, {_plural(k)}, {batch} record{'s' if batch > 1 else ''}/message"
    over = " (oversubscribed: more runnable consumers + producer than cores)" if k + 1 > 2 else ""
    ring_rate = rate(ring)
    ring_note = ""
    if ring_rate is not None:
        tt = timings[ring]
        ring_note = (f"{rt.LABELS[ring]}: {tcs[ring].n:,} records per trial, median of {len(tt.samples)}, "
                     f"spread {tt.spread:.0%}, consumers read {np.mean(tcs[ring].batches_seen):,.0f} batches "
                     f"per trial (a read returns every record available, up to 4096){over}")
        if rate(one) is not None:
            ring_note += (f"; with read(max_n={batch}) (one message's worth per read, like the peers) "
                          f"{rate(one) / 1e6:.2f}M/s")
    rows = []
    zmq_rates = {t: rate(t) for t in names if rt.needs_zmq(t)}
    for t in names[1:]:
        pr = rate(t)
        note = ring_note
        if pr is not None:
            tt = timings[t]
            note += f"; peer: {tcs[t].n:,} records per trial, median of {len(tt.samples)}, spread {tt.spread:.0%}"
        target = target_met = None
        if mode == "processes" and rt.needs_zmq(t):
            target = f">= {TARGET_RATE / 1e6:.0f}M records/s and >= {TARGET_ZMQ_RATIO:.0f}x pyzmq ipc"
            if ring_rate is not None and pr is not None:
                best_zmq = max(v for v in zmq_rates.values() if v is not None)
                target_met = ring_rate >= TARGET_RATE and ring_rate / pr >= TARGET_ZMQ_RATIO
                note += (f"; target: {ring_rate / 1e6:.2f}M/s vs 10M/s, {ring_rate / pr:.1f}x this peer, "
                         f"{ring_rate / best_zmq:.1f}x the faster pyzmq ipc")
            else:
                target_met = False
        rows.append(ctx.row(figure, ring_rate if ring_rate is not None else float("nan"), "records/s",
                            rt.LABELS[t], pr, lower_is_better=False, target=target, target_met=target_met,
                            note=note))
    ctx.log(f"{figure}: " + ", ".join(f"{c} {rate(c) / 1e6:.2f}M/s" if rate(c) else f"{c} BROKEN"
                                      for c in contenders))
    return rows


# ----------------------------------------------------------------------------------------- latency

PCTS = (50.0, 99.0, 99.9)


def _latency(ctx, p, mode, k, pool, zctx) -> list:
    names = _transports(mode)
    ring = names[0]
    variants = [(t, None) for t in names]
    if k == 1:
        variants.append((ring, YIELD_WAIT))
    per_round = p["lat_msgs"] // p["lat_rounds"]
    arr = rt.make_records(per_round)
    interval = p["lat_interval_us"] * 1000
    samples = {v: [] for v in range(len(variants))}
    cpu = {v: [] for v in range(len(variants))}
    broken = {}
    for rnd in range(p["lat_rounds"]):
        order = list(range(len(variants)))
        r = rnd % len(order)
        for v in order[r:] + order[:r]:
            t, wait = variants[v]
            if v in broken:
                continue
            tr = rt.Trial(t, k, per_round, latency=True, pool=pool, zctx=zctx, wait=wait)
            if tr.error is None:
                tr.run_paced(arr, interval)
                tr.collect()
            tr.close()
            if tr.error:
                broken[v] = tr.error
                continue
            samples[v].extend(res["lat"] for res in tr.results)
            cpu[v].extend(res["cpu_share"] for res in tr.results)

    def pcts(v):
        if v in broken or not samples[v]:
            return None
        lat = np.concatenate(samples[v]) / 1000.0
        return dict(zip(PCTS, np.percentile(lat, PCTS))), len(lat)

    got = {v: pcts(v) for v in range(len(variants))}
    for v, err in broken.items():
        ctx.note(f"BROKEN latency {mode} {_plural(k)}: {rt.LABELS[variants[v][0]]}: {err} - no figure posted")

    def label(v):
        t, wait = variants[v]
        return rt.LABELS[t] + (f" [consumer wait spin={wait['spin']}, yields={wait['yields']:,}]" if wait else "")

    summary = "; ".join(
        f"{label(v)}: " + ("BROKEN" if got[v] is None else
                           " / ".join(f"{got[v][0][q]:.1f}" for q in PCTS)
                           + f" (consumer CPU {100 * np.mean(cpu[v]):.0f}%)")
        for v in range(len(variants)))
    ctx.log(f"latency {mode}, {_plural(k)} (p50 / p99 / p99.9 µs): {summary}")
    rate = 1e6 / p["lat_interval_us"]
    rows = []
    ring_v = 0
    for q in PCTS:
        peers = [v for v in range(1, len(names)) if got[v] is not None]
        best = min(peers, key=lambda v: got[v][0][q]) if peers else None
        value = got[ring_v][0][q] if got[ring_v] is not None else float("nan")
        note = (f"1 record per message, paced at {rate:,.0f} messages/s (sleeping between sends), "
                f"{per_round * p['lat_rounds']:,} messages per transport in {p['lat_rounds']} interleaved round(s), "
                f"receive - send stamp (CLOCK_MONOTONIC) pooled over all consumers; consumer CPU = the consumer "
                f"thread's CPU time / wall time while waiting and receiving"
                + (f" ({got[ring_v][1]:,} samples)" if got[ring_v] is not None else "")
                + f"; ring consumers use the default wait (spin 1000, yield 100, then sleep 50 µs); peer shown is the "
                  f"best at this percentile; all (p50 / p99 / p99.9 µs): {summary}")
        rows.append(ctx.row(f"one-way latency p{q:g}, {mode}, {_plural(k)}", value, "µs",
                            label(best) if best is not None else None,
                            got[best][0][q] if best is not None else None, note=note))
    return rows
