"""The plain-Python sortedcontainers reference book (tests/models/reference_book.py), loaded by path.

It is the oracle extrema's OrderBook is differential-tested against, with the same method names and
raw-int conventions (apply_delta(side, price_raw, size_raw, update_id, last), best_bid, bbo(),
levels(side, n), top(n)). It is deliberately unoptimised (exact Fraction arithmetic for floats), so it
is a "what a straightforward Python book costs" baseline, not a tuned peer.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

NAME = "reference (sortedcontainers)"


def load(repo: str):
    """The module, or None with a reason if the file (or sortedcontainers) is missing."""
    path = Path(repo) / "tests" / "models" / "reference_book.py"
    if not path.exists():
        return None, f"{path} not found"
    name = "_bench_reference_book"
    if name in sys.modules:
        return sys.modules[name], None
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - reported by the suite
        return None, f"importing {path} failed: {type(exc).__name__}: {exc}"
    missing = [a for a in ("ReferenceBook",) if not hasattr(module, a)]
    if missing:
        return None, f"{path} has no {missing}"
    book_cls = module.ReferenceBook
    needed = ["apply_delta", "apply_snapshot", "clear", "best_bid", "bbo", "levels", "top"]
    missing = [m for m in needed if not hasattr(book_cls, m)]
    if missing:
        return None, f"{path}: ReferenceBook lacks {missing}"
    sys.modules[name] = module
    return module, None
