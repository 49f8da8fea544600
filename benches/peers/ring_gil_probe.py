"""Probe (not a suite): does Ring.publish releasing the GIL on every call hurt consumers that are threads?

    python benches/peers/ring_gil_probe.py          # ~1-2 min
    python benches/peers/ring_gil_probe.py --cpu 0  # the whole process on one CPU: threads share a core

`Ring.publish` copies the records inside `with nogil:` even when the ring has room, so with consumer
*threads* every publish is a chance for a GIL hand-off (a futex wake and a context switch) that the
producer then waits to get back. This compares, in the same run and interleaved, the producer calling

* `ring.publish(batch)` (as shipped), and
* "GIL-first": `Ring.publish_ptr(..., timeout_ns=0)` from Cython with the GIL held (copies what fits
  now, never waits), falling back to `ring.publish` (which releases the GIL) only for what did not fit,

with the consumer threads doing `read()` (or `poll()` first, falling back to `read()` when empty). It
reports records/s (median, min, max over rounds) and the process's context switches per message.
The Cython helper is compiled against the installed extrema like the dispatch suite's strategies.
"""

from __future__ import annotations

import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import extrema  # noqa: E402
from peers.compile_cython import compile_against_extrema  # noqa: E402

SOURCE = r'''
# cython: language_level=3
cimport numpy as cnp
from extrema cimport Ring, Record
cnp.import_array()

def publish_gil_first(Ring ring, cnp.ndarray arr):
    """Copy what fits now with the GIL held (timeout 0: no real wait); release the GIL only to wait."""
    cdef Py_ssize_t n = cnp.PyArray_DIM(arr, 0)
    cdef Py_ssize_t done = ring.publish_ptr(<const Record *>cnp.PyArray_DATA(arr), n, 0)
    if done < n:
        ring.publish(arr[done:])
    return n
'''

POOL = 1 << 20
CONFIGS = ((1, 256, 8_388_608), (2, 256, 4_194_304), (4, 256, 2_097_152), (2, 1, 262_144))  # (consumers, batch, n)


def _consumer(c, n, poll_first, out):
    count = checksum = 0
    read, poll = c.read, c.poll
    while count < n:
        b = poll() if poll_first else read(None, 1.0)
        if poll_first and not len(b):
            b = read(None, 1.0)
        count += len(b)
        checksum += int(b["sequence"].sum())
    out.append((count, checksum))


def _trial(mod, arr, k, batch, n, gil_first, poll_first):
    ring = extrema.Ring(1 << 16)
    consumers = [ring.consumer("block") for _ in range(k)]
    out: list = []
    threads = [threading.Thread(target=_consumer, args=(c, n, poll_first, out)) for c in consumers]
    for t in threads:
        t.start()
    publish = (lambda a: mod.publish_gil_first(ring, a)) if gil_first else ring.publish
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    mask = len(arr) - 1
    for i in range(0, n, batch):
        j = i & mask
        publish(arr[j:j + batch])
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    full, rem = divmod(n, len(arr))
    want = full * (len(arr) * (len(arr) - 1) // 2) + rem * (rem - 1) // 2
    if out != [(n, want)] * k:
        raise RuntimeError(f"consumers got {out}, expected {(n, want)} each")
    switches = (ru1.ru_nvcsw - ru0.ru_nvcsw) + (ru1.ru_nivcsw - ru0.ru_nivcsw)
    return n / dt, switches / (n / batch)


def main(rounds: int = 5) -> None:
    mod, secs, _ = compile_against_extrema(SOURCE, "_extrema_ring_gil_probe")
    arr = extrema.empty_records(POOL)
    arr["sequence"] = np.arange(POOL)
    results: dict = {}
    variants = [(g, p) for g in (False, True) for p in (False, True)]
    for rnd in range(rounds):
        for k, batch, n in CONFIGS:
            r = rnd % len(variants)
            for g, p in variants[r:] + variants[:r]:
                results.setdefault((k, batch, g, p), []).append(_trial(mod, arr, k, batch, n, g, p))
    for (k, batch, g, p), v in results.items():
        rates = sorted(x[0] for x in v)
        cs = sorted(x[1] for x in v)
        print(f"threads, {k} consumer(s), batch {batch:3d}, publish {'GIL-first' if g else 'as shipped'}, "
              f"consumer {'poll-then-read' if p else 'read'}: median {rates[len(rates) // 2] / 1e6:6.2f}M/s "
              f"(min {rates[0] / 1e6:.2f}, max {rates[-1] / 1e6:.2f}), "
              f"context switches per message {cs[len(cs) // 2]:.3f}", flush=True)


if __name__ == "__main__":
    import argparse
    import os
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu", type=int, default=None, help="pin the process (all its threads) to this CPU")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
        print(f"pinned to CPU {args.cpu}", flush=True)
    main(args.rounds)
