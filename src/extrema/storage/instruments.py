"""The instrument table of a journal: `instruments.json` beside the segments.

Records carry small instrument ids, which mean something only with the registry that assigned them. The
recorder writes that registry's table next to the segments (atomically: a temporary file renamed into
place), so a journal replays with the right instruments wherever it goes: `registry_for_journal` builds
the registry from it, and a replay given its own registry checks it agrees, id by id, instead of
silently reading BTC records as ETH.

    {"version": 1, "instruments": [{"id": 1, "name": "BTC_USDT", "market": "BINANCE_SPOT",
      "tick_size": "0.01", "lot_size": "0.00001", "min_notional": "5", "multiplier": "1",
      "venue_symbol": "BTCUSDT", "price_precision": 2, "size_precision": 5}, ...]}
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from extrema._core.instruments import InstrumentRegistry, Market

TABLE_NAME = "instruments.json"
_VERSION = 1


def instrument_table(registry) -> list[dict]:
    """Every instrument of `registry`, in id order, as JSON-ready dicts (decimals as exact text)."""
    return [{"id": inst.id, "name": inst.name, "market": inst.market.name, "tick_size": str(inst.tick_size),
             "lot_size": str(inst.lot_size), "min_notional": str(inst.min_notional),
             "multiplier": str(inst.multiplier), "venue_symbol": inst.venue_symbol,
             "price_precision": inst.price_precision, "size_precision": inst.size_precision}
            for inst in sorted(registry, key=lambda i: i.id)]


def write_instrument_table(directory, registry) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / TABLE_NAME
    tmp = directory / (TABLE_NAME + ".tmp")
    tmp.write_text(json.dumps({"version": _VERSION, "instruments": instrument_table(registry)}, indent=1))
    os.replace(tmp, path)
    return path


def read_instrument_table(directory) -> Optional[list[dict]]:
    """The journal's table, or None when it has none (journals written by hand with JournalWriter)."""
    path = Path(directory) / TABLE_NAME
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text())
        table = doc["instruments"]
        if doc.get("version") != _VERSION or not isinstance(table, list):
            raise ValueError(f"version {doc.get('version')!r}")
        for row in table:
            if not isinstance(row, dict) or not {"id", "name", "market", "tick_size", "lot_size"} <= row.keys():
                raise ValueError(f"bad row {row!r}")
    except (ValueError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not an extrema instrument table ({e})") from None
    return table


def registry_for_journal(directory) -> InstrumentRegistry:
    """A registry holding the journal's instruments under the ids its records use."""
    table = read_instrument_table(directory)
    if table is None:
        raise ValueError(f"{directory}: this journal has no {TABLE_NAME}; register its instruments yourself, "
                         f"in the order the recording registered them")
    registry = InstrumentRegistry()
    for row in sorted(table, key=lambda r: r["id"]):
        spec = {k: row[k] for k in ("min_notional", "multiplier", "venue_symbol", "price_precision",
                                    "size_precision") if k in row}
        inst = registry.register(row["name"], Market[row["market"]], row["tick_size"], row["lot_size"], **spec)
        if inst.id != row["id"]:
            raise ValueError(f"{directory}/{TABLE_NAME}: instrument ids are not 1..n (id {row['id']} "
                             f"for {row['name']}); the table was edited")
    return registry


def check_registry_matches(directory, registry) -> None:
    """Raise ValueError naming the first instrument whose id means something else in `registry` than in
    the recording (nothing to check when the journal has no table)."""
    table = read_instrument_table(directory)
    if table is None:
        return
    by_id = {inst.id: inst for inst in registry}
    for row in table:
        inst = by_id.get(row["id"])
        if inst is None:
            continue                                     # not registered: its records are counted drops
        if inst.name != row["name"] or inst.market.name != row["market"]:
            raise ValueError(f"{directory}: instrument id {row['id']} was {row['name']} on {row['market']} "
                             f"when recorded, but is {inst.name} on {inst.market.name} in this registry "
                             f"(use extrema.storage.registry_for_journal, or register in the recording's order)")
