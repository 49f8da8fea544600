"""The Binance depth-sync reference (tests/models/binance_depth.py) on the real captures, and proof that
it notices every kind of break in the update-id chain instead of carrying on with a wrong book."""

import dataclasses

import pytest

from models.binance_depth import (SPOT, USDM, DepthGapError, decimals, iter_synced, read_capture,
                                  replay_capture, replay_symbol, CAPTURES)


@pytest.fixture(scope="module")
def captures(fixtures_dir):
    return fixtures_dir / "binance" / "captures"


@pytest.fixture(scope="module")
def parsed(captures):
    out = {}
    for market, (ws_name, http_name) in CAPTURES.items():
        out[market] = read_capture(captures / ws_name, captures / http_name)
    return out


def test_decimals():
    assert decimals("0.35130000") == 8
    assert decimals("7.6110") == 4
    assert decimals("6") == 0


@pytest.mark.parametrize("market", [SPOT, USDM])
def test_captures_follow_the_documented_rule(captures, market):
    """What the data does: one snapshot per symbol, a few buffered events older than it, then an
    unbroken chain - checked here with the documented formulas written out again."""
    replays = replay_capture(captures, market)
    assert len(replays) == 4
    for symbol, replay in replays.items():
        assert replay.gap is None, replay.gap
        lu = replay.snapshot.last_update_id
        first = replay.applied[0]
        if market == SPOT:
            assert first.first_update_id <= lu + 1 <= first.final_update_id
        else:
            assert first.first_update_id <= lu <= first.final_update_id
        for prev, cur in zip(replay.applied, replay.applied[1:]):
            if market == SPOT:
                assert cur.first_update_id == prev.final_update_id + 1
            else:
                assert cur.prev_final_update_id == prev.final_update_id
        assert replay.dropped >= 1  # the capture buffered events from before the snapshot


def test_precision_from_the_wire_strings(captures):
    spot, usdm = replay_capture(captures, SPOT), replay_capture(captures, USDM)
    assert (spot["NKNUSDT"].price_precision, spot["NKNUSDT"].size_precision) == (8, 8)
    assert (usdm["SUSHIUSDT"].price_precision, usdm["SUSHIUSDT"].size_precision) == (4, 0)
    assert (usdm["AKROUSDT"].price_precision, usdm["AKROUSDT"].size_precision) == (5, 0)


def _symbol_with_most_diffs(parsed, market):
    snapshots, diffs = parsed[market]
    symbol = max(diffs, key=lambda s: len(diffs[s]))
    return snapshots[symbol], diffs[symbol], replay_symbol(market, snapshots[symbol], diffs[symbol])


@pytest.mark.parametrize("market", [SPOT, USDM])
def test_a_missing_event_stops_the_symbol(parsed, market):
    snapshot, diffs, clean = _symbol_with_most_diffs(parsed, market)
    assert clean.gap is None and len(clean.applied) > 20
    lost = clean.applied[10]
    broken = replay_symbol(market, snapshot, [d for d in diffs if d is not lost])
    assert isinstance(broken.gap, DepthGapError)
    assert broken.applied == clean.applied[:10]       # nothing after the break is applied
    assert broken.not_replayed == len(clean.applied) - 11
    with pytest.raises(DepthGapError):
        list(iter_synced(market, snapshot, [d for d in diffs if d is not lost]))


@pytest.mark.parametrize("market", [SPOT, USDM])
def test_a_replayed_event_is_a_break(parsed, market):
    snapshot, diffs, clean = _symbol_with_most_diffs(parsed, market)
    dup = clean.applied[5]
    at = diffs.index(dup)
    broken = replay_symbol(market, snapshot, diffs[:at + 1] + [dup] + diffs[at + 1:])
    assert broken.gap is not None and broken.applied == clean.applied[:6]


def test_usdm_checks_pu_not_just_ids(parsed):
    snapshot, diffs, clean = _symbol_with_most_diffs(parsed, USDM)
    victim = clean.applied[7]
    forged = dataclasses.replace(victim, prev_final_update_id=victim.prev_final_update_id - 1)
    broken = replay_symbol(USDM, snapshot, [forged if d is victim else d for d in diffs])
    assert broken.gap is not None and "pu=" in str(broken.gap)
    assert broken.applied == clean.applied[:7]


@pytest.mark.parametrize("market", [SPOT, USDM])
def test_snapshot_newer_than_the_stream_needs_a_resync(parsed, market):
    snapshot, diffs, clean = _symbol_with_most_diffs(parsed, market)
    first = clean.applied[0]
    broken = replay_symbol(market, snapshot, [d for d in diffs if d is not first])
    assert broken.gap is not None and "resync" in str(broken.gap) and broken.applied == []


@pytest.mark.parametrize("market", [SPOT, USDM])
def test_events_older_than_the_snapshot_are_dropped(parsed, market):
    snapshot, diffs, clean = _symbol_with_most_diffs(parsed, market)
    old = diffs[:clean.dropped]
    assert old and all(d.final_update_id <= snapshot.last_update_id for d in old)
    replay = replay_symbol(market, snapshot, old)
    assert replay.applied == [] and replay.gap is None and replay.dropped == len(old)
    assert list(iter_synced(market, snapshot, old)) == [snapshot]
