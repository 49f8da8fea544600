"""The live terminal summary of `extrema demo` / `extrema run`: per strategy orders, fills, position and
P&L; per instrument the touch and mid; the feed's frames per second.

On a terminal the block is redrawn in place with plain ANSI escapes (cursor up, clear line); when
stdout is not a terminal (a pipe, a log file, CI) it prints one compact line per period instead.
Everything is read from the main thread: the order table and portfolio calls hold the GIL for their
whole duration, so each read is consistent with the engine thread's updates.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from extrema.backtest.results import OWNER_ALL

CLEAR_LINE = "\x1b[2K"


def _up(n):
    return f"\x1b[{n}A"


class LiveSummary:
    def __init__(self, engine, venues=(), *, out=None, tty=None, interval=None):
        self.engine = engine
        self.venues = list(venues)
        self.out = out if out is not None else sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.interval = interval if interval is not None else (0.5 if self.tty else 5.0)
        self.t0 = time.monotonic()
        self._last = (self.t0, 0, 0)          # (time, frames, records) of the previous refresh
        self._drawn = 0
        self._next = self.t0

    def frames(self) -> int:
        total = 0
        for v in self.venues:
            md = getattr(v, "market_data", None)
            if md is not None:
                total += md.stats().get("decoder", {}).get("frames", 0)
        return total

    def rows(self):
        """(strategy name, orders, fills, {instrument: position}, P&L) per strategy."""
        engine = self.engine
        table = engine.orders.to_numpy()
        out = []
        for i, s in enumerate(engine.dispatcher.strategies):
            mine = table[table["owner"] == i]
            pos = engine.portfolio.positions(owner=i)
            positions = {engine.registry[int(p["instrument_id"])].name: float(p["quantity"]) for p in pos}
            out.append((s.name, len(mine), int(mine["fills"].sum()) if len(mine) else 0, positions,
                        engine.portfolio.equity(i)))
        return out

    def books(self):
        """(instrument name, bid, ask) of every book the engine keeps."""
        out = []
        for inst in self.engine.registry:
            book = self.engine.dispatcher.book(inst.id)
            if book is not None:
                out.append((inst.name, book.best_bid, book.best_ask))
        return out

    def _rates(self, now):
        frames, records = self.frames(), self.engine.published
        t, f0, r0 = self._last
        dt = max(now - t, 1e-9)
        self._last = (now, frames, records)
        return (frames - f0) / dt, (records - r0) / dt

    def plain_line(self, now=None):
        """One line for logs: time, rates, books, then each strategy."""
        now = time.monotonic() if now is None else now
        fps, rps = self._rates(now)
        parts = [f"{now - self.t0:.1f} s: feed {fps:,.0f} frames/s, engine {rps:,.0f} records/s"]
        for name, bid, ask in self.books():
            parts.append(f"{name} {bid:,.2f} / {ask:,.2f}" if bid == bid and ask == ask else f"{name} not synced")
        for name, n_orders, n_fills, positions, pnl in self.rows():
            pos = ", ".join(f"{k} {v:+.5g}" for k, v in positions.items()) or "flat"
            parts.append(f"{name}: orders {n_orders} fills {n_fills} P&L {pnl:+.2f} position {pos}")
        return " | ".join(parts)

    def lines(self, now=None):
        now = time.monotonic() if now is None else now
        fps, rps = self._rates(now)
        head = (f"extrema  {now - self.t0:6.1f} s  feed {fps:8,.0f} frames/s  "
                f"engine {rps:9,.0f} records/s  equity {self.engine.portfolio.equity(OWNER_ALL):+,.2f}")
        out = [head]
        for name, bid, ask in self.books():
            mid = (bid + ask) / 2
            out.append(f"  {name:16s} bid {bid:>12,.2f}  ask {ask:>12,.2f}  mid {mid:>12,.3f}"
                       if np.isfinite(mid) else f"  {name:16s} (book not synced yet)")
        out.append(f"  {'strategy':16s} {'orders':>7s} {'fills':>6s} {'P&L':>11s}  position")
        for name, n_orders, n_fills, positions, pnl in self.rows():
            pos = ", ".join(f"{k} {v:+.5g}" for k, v in positions.items()) or "flat"
            out.append(f"  {name:16s} {n_orders:7d} {n_fills:6d} {pnl:+11.2f}  {pos}")
        return out

    def tick(self, force=False):
        """Refresh when the period is due (or `force`)."""
        now = time.monotonic()
        if not force and now < self._next:
            return
        self._next = now + self.interval
        if self.tty:
            lines = self.lines(now)
            text = (_up(self._drawn) if self._drawn else "") + "".join(f"{CLEAR_LINE}{l}\n" for l in lines)
            self._drawn = len(lines)
        else:
            text = self.plain_line(now) + "\n"
        self.out.write(text)
        self.out.flush()

    def wait(self, seconds, stop=None):
        """Refresh until `seconds` have passed (None: forever) or `stop()` is true; KeyboardInterrupt passes."""
        end = None if seconds is None else time.monotonic() + seconds
        while True:
            self.tick()
            now = time.monotonic()
            if (end is not None and now >= end) or (stop is not None and stop()):
                return
            time.sleep(max(min(self._next, end if end is not None else self._next) - now, 0.01))
