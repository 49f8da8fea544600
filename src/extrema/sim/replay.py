"""Replay of recorded Binance websocket captures, re-sent with their original text.

A capture is a pair of JSONL files as in `<fixtures>/binance/captures/` (see fixtures/SOURCES.md): the
websocket file holds lines `{"dir": "recv", "ts": <unix s>, "raw": <exact frame text>}` of a combined
stream connection (`{"stream": ..., "data": ...}`), the http file the REST depth snapshots
(`{"dir": "http_response", "url": ".../depth?symbol=X&limit=N", "raw": ...}`).

The simulator serves each snapshot's text verbatim to `GET .../depth?symbol=X`, re-sends each frame to
the subscribers of its stream (the recorded combined text on `/stream`, the recorded `data` text on
`/ws`), paced by the recorded timestamps divided by `speed` (`speed=None`: as fast as the loop goes), and
drives the matching engine's book with the same data (depth diffs through Binance's sync rule, trades
through `replay_trade`) so user orders placed during a replay fill against the recorded market.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlparse

from .matching import SPOT, USDM, SymbolSpec, decimals_of

_QUOTES = ("FDUSD", "USDT", "BUSD", "USDC", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "GBP", "AUD", "BRL")

BUNDLED = {
    SPOT: ("cryptofeed_spot_ws_2021-10-12.jsonl", "cryptofeed_spot_http_depth_2021-10-12.jsonl"),
    USDM: ("cryptofeed_usdm_ws_2021-07-22.jsonl", "cryptofeed_usdm_http_depth_2021-07-22.jsonl"),
}


@dataclass(frozen=True)
class ReplayFrame:
    ts: float  # recorded receive time, unix seconds
    stream: str  # e.g. "nknusdt@depth@100ms"
    text: str  # the recorded combined-stream frame, exactly
    data_text: str  # the recorded payload text, exactly (what a raw /ws/<stream> connection gets)
    data: dict


@dataclass(frozen=True)
class ReplaySnapshot:
    symbol: str
    text: str  # the recorded REST body, exactly
    last_update_id: int
    bids: tuple[tuple[str, str], ...]
    asks: tuple[tuple[str, str], ...]


def split_symbol(symbol: str) -> tuple[str, str]:
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise ValueError(f"cannot tell base and quote of {symbol!r}")


def _payload_text(text: str, stream: str) -> str:
    """The `data` member's exact text inside a recorded combined frame."""
    prefix = '{"stream":' + json.dumps(stream) + ',"data":'
    if text.startswith(prefix) and text.endswith("}"):
        return text[len(prefix):-1]
    # Not the compact layout Binance sends: fall back to re-encoding the payload compactly.
    return json.dumps(json.loads(text)["data"], separators=(",", ":"))


class CaptureReplay:
    """Market data source replaying one capture pair (`ws_path`, `http_path`).

    `speed`: recorded time / `speed` is wall time (1.0 = as recorded); None replays as fast as possible.
    `loop`: start over when the capture ends (the book is reset from the snapshot again).
    `autostart`: start at the first market-data subscription; False waits for `sim.start_feed()`.
    """

    kind = "replay"

    def __init__(self, ws_path, http_path=None, *, speed: float | None = 1.0, loop: bool = False,
                 autostart: bool = True):
        if speed is not None and speed <= 0:
            raise ValueError(f"speed must be > 0 or None, got {speed}")
        self.ws_path = Path(ws_path)
        self.http_path = Path(http_path) if http_path is not None else None
        self.speed = speed
        self.loop = loop
        self.autostart = autostart
        self.frames: list[ReplayFrame] = []
        self.snapshots: dict[str, ReplaySnapshot] = {}
        self.market: str | None = None
        self._load()

    @classmethod
    def bundled(cls, market: str, captures_dir, **kwargs) -> "CaptureReplay":
        """The capture pair of `market` in a fixtures captures directory."""
        ws_name, http_name = BUNDLED[market]
        return cls(Path(captures_dir) / ws_name, Path(captures_dir) / http_name, **kwargs)

    def _load(self):
        bad = 0
        with open(self.ws_path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                rec = json.loads(line)
                if rec.get("dir") == "connect":
                    host = urlparse(rec.get("url", "")).hostname or ""
                    self.market = USDM if host.startswith("fstream") else SPOT
                    continue
                if rec.get("dir") != "recv":
                    continue
                text = rec["raw"]
                try:
                    msg = json.loads(text)
                    stream, data = msg["stream"], msg["data"]
                except (ValueError, KeyError, TypeError):
                    bad += 1  # not a combined-stream frame: nothing to route it by
                    continue
                self.frames.append(ReplayFrame(float(rec["ts"]), stream, text, _payload_text(text, stream), data))
        if not self.frames:
            raise ValueError(f"{self.ws_path}: no combined-stream frames to replay")
        self.skipped_lines = bad
        if self.http_path is not None:
            with open(self.http_path, encoding="utf-8") as f:
                for line in f:
                    if not line.strip():
                        continue
                    rec = json.loads(line)
                    if rec.get("dir") != "http_response" or "/depth" not in rec.get("url", ""):
                        continue
                    symbol = parse_qs(urlparse(rec["url"]).query)["symbol"][0].upper()
                    body = json.loads(rec["raw"])
                    self.snapshots[symbol] = ReplaySnapshot(
                        symbol, rec["raw"], int(body["lastUpdateId"]),
                        tuple((p, q) for p, q in body["bids"]), tuple((p, q) for p, q in body["asks"]))
        if self.market is None:
            self.market = USDM if any("pu" in fr.data for fr in self.frames) else SPOT

    def symbols(self) -> list[str]:
        seen = {}
        for fr in self.frames:
            sym = fr.data.get("s") or fr.stream.split("@", 1)[0].upper()
            seen.setdefault(sym.upper(), None)
        for sym in self.snapshots:
            seen.setdefault(sym, None)
        return list(seen)

    def specs(self, market: str) -> list[SymbolSpec]:
        """Listings inferred from the recorded text: tick / step are the finest decimals that occur,
        the wire precision the widest strings (spot always writes 8 decimals)."""
        if market != self.market:
            raise ValueError(f"this capture is {self.market}, not {market}")
        prices: dict[str, list[str]] = {}
        sizes: dict[str, list[str]] = {}

        def add(sym, p, q):
            prices.setdefault(sym, []).append(p)
            sizes.setdefault(sym, []).append(q)

        for fr in self.frames:
            d = fr.data
            sym = (d.get("s") or "").upper()
            if d.get("e") == "depthUpdate":
                for p, q in d["b"] + d["a"]:
                    add(sym, p, q)
            elif d.get("e") in ("aggTrade", "trade"):
                add(sym, d["p"], d["q"])
            elif "b" in d and "B" in d:  # bookTicker
                add(sym, d["b"], d["B"])
                add(sym, d["a"], d["A"])
        for snap in self.snapshots.values():
            for p, q in snap.bids + snap.asks:
                add(snap.symbol, p, q)
        out = []
        for sym in self.symbols():
            ps, qs = prices.get(sym, ["1"]), sizes.get(sym, ["1"])
            pdp = max(decimals_of(p) for p in ps)
            qdp = max(decimals_of(q) for q in qs)
            base, quote = split_symbol(sym)
            tick = "1" if pdp == 0 else "0." + "0" * (pdp - 1) + "1"
            step = "1" if qdp == 0 else "0." + "0" * (qdp - 1) + "1"
            wire_p = max(len(p.partition(".")[2]) for p in ps)
            wire_q = max(len(q.partition(".")[2]) for q in qs)
            out.append(SymbolSpec(sym, base, quote, tick=tick, step=step, min_notional="0", max_qty="100000000",
                                  price_precision=wire_p, qty_precision=wire_q))
        return out
