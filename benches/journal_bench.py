"""Journal write / read throughput: `python benches/journal_bench.py [directory]`.

Appends batches of 1, 10, 1000 and 65536 records (64 MiB segments, fresh journal each) and reads the
journal back; prints records/s and µs per append call. The directory defaults to a temporary one on
the current working directory's filesystem (not /tmp, which may be tmpfs)."""
import sys
import tempfile
import time

import numpy as np

from extrema import RECORD_DTYPE
from extrema.storage import JournalReader, JournalWriter


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    for size in (1, 10, 1000, 65536):
        with tempfile.TemporaryDirectory(dir=root) as d:
            batch = np.zeros(size, RECORD_DTYPE)
            calls = max(200_000 // size, 40)
            w = JournalWriter(d)
            t = time.perf_counter()
            for _ in range(calls):
                w.append(batch)
            dt = time.perf_counter() - t
            w.close()
            t = time.perf_counter()
            n = sum(len(b) for b in JournalReader(d))
            rt = time.perf_counter() - t
            print(f"batch {size:>6}: write {calls * size / dt / 1e6:6.2f} M records/s "
                  f"({dt / calls * 1e6:8.2f} µs/append), read {n / rt / 1e6:6.2f} M records/s")


if __name__ == "__main__":
    main()
