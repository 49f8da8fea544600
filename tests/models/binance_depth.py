"""Reference of Binance's documented local-order-book synchronisation, over real wire captures.

The rule ("How to manage a local order book correctly"):

spot   https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams#how-to-manage-a-local-order-book-correctly
       buffer the diff events, get a REST snapshot, drop every event with u <= lastUpdateId; the first
       event kept must satisfy U <= lastUpdateId + 1 <= u; after it, each event's U == previous u + 1.
       (The wording current at the time of the 2021 capture; the 2024 rewording - ignore u <= local id,
       restart when U > local id + 1 - gives the same book on a contiguous stream and also catches gaps.)
USD-M  https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/How-to-manage-a-local-order-book-correctly
       drop every event with u < lastUpdateId; the first event kept must satisfy
       U <= lastUpdateId AND u >= lastUpdateId; after it, each event's pu == previous event's u.
Any other event is a gap: the book must be rebuilt from a new snapshot ("initialize the process
from step 3"). Sizes are absolute; size 0 removes the level (removing an absent level is normal).

This module is pure data handling: it yields the snapshot and the in-sync diffs as plain strings and
ints, and never builds a book itself, so tests can feed the same messages to any book.

Captures (`<fixtures>/binance/captures/`, see fixtures/SOURCES.md) are JSONL lines
`{"dir", "url", "ts", "raw"}` where `raw` is the exact wire text: the websocket file holds combined
stream frames `{"stream", "data"}` (depth, bookTicker, kline, aggTrade), the http file the REST depth
snapshots, one per symbol.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import parse_qs, urlparse

BID, ASK = 0, 1  # as extrema.BookSide
SPOT, USDM = "spot", "usdm"

CAPTURES = {
    SPOT: ("cryptofeed_spot_ws_2021-10-12.jsonl", "cryptofeed_spot_http_depth_2021-10-12.jsonl"),
    USDM: ("cryptofeed_usdm_ws_2021-07-22.jsonl", "cryptofeed_usdm_http_depth_2021-07-22.jsonl"),
}


@dataclass(frozen=True)
class DepthSnapshot:
    symbol: str
    last_update_id: int
    bids: tuple[tuple[str, str], ...]  # (price, size) exactly as on the wire, best first
    asks: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class DepthDiff:
    symbol: str
    changes: tuple[tuple[int, str, str], ...]  # (side, price, size) in wire order: bids, then asks
    first_update_id: int  # U
    final_update_id: int  # u
    prev_final_update_id: int | None  # pu (USD-M only; None on spot)


class DepthGapError(Exception):
    """The diff stream no longer continues the local book: a new snapshot is required."""

    def __init__(self, symbol: str, message: str):
        super().__init__(f"{symbol}: {message}")
        self.symbol = symbol


class DepthSync:
    """Binance's sync rule for one symbol after one snapshot.

    `accept(diff)` returns True when the diff is in sync and must be applied, False when it is older
    than the snapshot and must be dropped, and raises DepthGapError on any break in the chain.
    """

    def __init__(self, market: str, snapshot: DepthSnapshot):
        if market not in (SPOT, USDM):
            raise ValueError(f"unknown market {market!r}")
        self.market = market
        self.symbol = snapshot.symbol
        self.snapshot_id = snapshot.last_update_id
        self.prev_u: int | None = None  # u of the last applied diff; None until the first one

    def accept(self, diff: DepthDiff) -> bool:
        if diff.symbol != self.symbol:
            raise ValueError(f"diff of {diff.symbol} fed to the {self.symbol} sync")
        lu, big_u, u = self.snapshot_id, diff.first_update_id, diff.final_update_id
        if self.prev_u is None:
            if self.market == SPOT:
                if u <= lu:
                    return False
                if not big_u <= lu + 1 <= u:
                    raise DepthGapError(self.symbol, f"first event U={big_u} u={u} does not cover "
                                                     f"lastUpdateId+1={lu + 1}: resync")
            else:
                if u < lu:
                    return False
                if not (big_u <= lu and u >= lu):
                    raise DepthGapError(self.symbol, f"first event U={big_u} u={u} does not cover "
                                                     f"lastUpdateId={lu}: resync")
        elif self.market == SPOT:
            if big_u != self.prev_u + 1:
                raise DepthGapError(self.symbol, f"event U={big_u} does not follow previous u={self.prev_u}")
        elif diff.prev_final_update_id != self.prev_u:
            raise DepthGapError(self.symbol, f"event pu={diff.prev_final_update_id} != previous u={self.prev_u}")
        self.prev_u = u
        return True


def iter_synced(market: str, snapshot: DepthSnapshot, diffs: Iterable[DepthDiff]) -> Iterator[DepthSnapshot | DepthDiff]:
    """Yield the snapshot, then every in-sync diff; raise DepthGapError at the first break."""
    sync = DepthSync(market, snapshot)
    yield snapshot
    for diff in diffs:
        if sync.accept(diff):
            yield diff


# ----------------------------------------------------------------------------------- capture files

def _read_jsonl(path: Path) -> Iterator[dict]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def parse_snapshot(symbol: str, raw: str) -> DepthSnapshot:
    body = json.loads(raw)
    return DepthSnapshot(
        symbol=symbol,
        last_update_id=int(body["lastUpdateId"]),
        bids=tuple((p, q) for p, q in body["bids"]),
        asks=tuple((p, q) for p, q in body["asks"]),
    )


def parse_diff(data: dict) -> DepthDiff:
    changes = [(BID, p, q) for p, q in data["b"]] + [(ASK, p, q) for p, q in data["a"]]
    return DepthDiff(
        symbol=data["s"],
        changes=tuple(changes),
        first_update_id=int(data["U"]),
        final_update_id=int(data["u"]),
        prev_final_update_id=int(data["pu"]) if "pu" in data else None,
    )


def read_capture(ws_path: Path, http_path: Path) -> tuple[dict[str, DepthSnapshot], dict[str, list[DepthDiff]]]:
    """The REST snapshots by symbol, and every depth diff by symbol in receive order."""
    snapshots: dict[str, DepthSnapshot] = {}
    for line in _read_jsonl(http_path):
        if line["dir"] != "http_response" or "/depth" not in line["url"]:
            continue
        symbol = parse_qs(urlparse(line["url"]).query)["symbol"][0]
        if symbol in snapshots:
            # One snapshot per symbol is all these captures hold; a second one would be a resync
            # point, which this replay does not implement: say so rather than pick one.
            raise ValueError(f"{http_path.name}: more than one depth snapshot of {symbol}")
        snapshots[symbol] = parse_snapshot(symbol, line["raw"])
    diffs: dict[str, list[DepthDiff]] = {}
    for line in _read_jsonl(ws_path):
        if line["dir"] != "recv":
            continue
        data = json.loads(line["raw"]).get("data", {})
        if data.get("e") == "depthUpdate":
            diff = parse_diff(data)
            diffs.setdefault(diff.symbol, []).append(diff)
    return snapshots, diffs


def decimals(text: str) -> int:
    """Digits after the decimal point of a wire decimal ("0.35130000" -> 8, "6" -> 0)."""
    return len(text.partition(".")[2])


@dataclass
class SymbolReplay:
    market: str
    symbol: str
    price_precision: int  # Binance sends fixed decimals per symbol: the widest string seen
    size_precision: int
    snapshot: DepthSnapshot
    applied: list[DepthDiff] = field(default_factory=list)  # in-sync diffs, in order
    dropped: int = 0  # diffs older than the snapshot
    gap: DepthGapError | None = None  # set when the chain broke; `applied` stops before the break
    not_replayed: int = 0  # diffs after the break


def replay_symbol(market: str, snapshot: DepthSnapshot, diffs: list[DepthDiff]) -> SymbolReplay:
    """Run the sync rule over one symbol's capture; on a break, stop that symbol and record why."""
    prices = [p for p, _ in snapshot.bids + snapshot.asks] + [p for d in diffs for _, p, _ in d.changes]
    sizes = [q for _, q in snapshot.bids + snapshot.asks] + [q for d in diffs for _, _, q in d.changes]
    replay = SymbolReplay(market, snapshot.symbol, max(map(decimals, prices)), max(map(decimals, sizes)), snapshot)
    sync = DepthSync(market, snapshot)
    for i, diff in enumerate(diffs):
        try:
            keep = sync.accept(diff)
        except DepthGapError as gap:
            replay.gap = gap
            replay.not_replayed = len(diffs) - i
            break
        if keep:
            replay.applied.append(diff)
        else:
            replay.dropped += 1
    return replay


def replay_capture(captures_dir: Path, market: str) -> dict[str, SymbolReplay]:
    """Every symbol of one market's capture pair, synchronised by Binance's rule."""
    ws_name, http_name = CAPTURES[market]
    snapshots, diffs = read_capture(captures_dir / ws_name, captures_dir / http_name)
    missing = sorted(set(diffs) - set(snapshots))
    if missing:
        raise ValueError(f"{market} capture has diffs but no snapshot for {missing}")
    return {symbol: replay_symbol(market, snapshots[symbol], diffs.get(symbol, [])) for symbol in snapshots}
