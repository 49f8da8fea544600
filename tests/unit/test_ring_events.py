"""RingConsumer.poll / read hand out whole multi-slot events (head + continuation slots), wherever the ring's
end, max_n or an overrun cuts them (the Python-facing mirror of the dispatcher's pump test in
tests/unit/test_order_routing.py)."""
import logging

import numpy as np
import pytest

import extrema
from extrema import Ring, RecordKind

CONT = int(RecordKind.CONTINUATION)


def event(seq):
    """A two-slot event (an ORDER_UPDATE head and its continuation) carrying seq in both slots."""
    rec = extrema.empty_records(2)
    rec[0]["kind"] = RecordKind.ORDER_UPDATE
    rec[0]["flags"] = 1 << 12
    rec[1]["kind"] = CONT
    rec["sequence"] = seq
    rec["price"] = [seq * 10, seq * 10 + 1]
    return rec


def single(seq):
    rec = extrema.empty_records(1)
    rec[0]["kind"] = RecordKind.TRADE
    rec[0]["sequence"] = seq
    rec[0]["price"] = seq * 10
    return rec


def assert_whole(batch):
    kinds = list(batch["kind"])
    assert kinds and kinds[0] != CONT, kinds
    i = 0
    while i < len(kinds):
        n = 1 + (int(batch["flags"][i]) >> 12)
        assert i + n <= len(kinds), f"batch ends inside an event: {kinds}"
        assert all(k == CONT for k in kinds[i + 1:i + n])
        i += n


def read_poll(consumer):
    return consumer.poll()


def read_wait(consumer):
    return consumer.read(timeout=0)


@pytest.mark.parametrize("policy", ["block", "lossy"])
@pytest.mark.parametrize("reader", [read_poll, read_wait], ids=["poll", "read"])
@pytest.mark.parametrize("singles", range(0, 9))
def test_events_the_ring_wraps_are_handed_out_whole(singles, reader, policy):
    """0..8 single-slot records first shift where the two-slot events wrap: every wrap position is met."""
    ring = Ring(8)
    consumer = ring.consumer(policy)
    want, got = [], []
    for k in range(12):
        rec = single(k) if k < singles else event(k)
        ring.publish(rec)
        want.extend(rec[["kind", "sequence", "price"]].tolist())
        batch = reader(consumer)
        assert_whole(batch)
        got.extend(batch[["kind", "sequence", "price"]].tolist())
    assert got == want
    assert consumer.rejoined == sum(1 for k in range(singles, 12) if (singles + 2 * (k - singles)) % 8 == 7)
    assert consumer.torn_dropped == 0 and consumer.lost == 0


@pytest.mark.parametrize("policy", ["block", "lossy"])
def test_batches_end_between_events_and_max_n_never_cuts_one(policy):
    ring = Ring(64)
    consumer = ring.consumer(policy, max_batch=5)
    ring.publish(np.concatenate([event(k) for k in range(10)]))
    seen = []
    while True:
        batch = consumer.poll(max_n=1)              # one slot: the event comes whole, two records
        if not len(batch):
            break
        assert_whole(batch)
        seen.extend(batch["sequence"].tolist())
    assert seen == [k for k in range(10) for _ in range(2)]
    ring.publish(np.concatenate([event(k) for k in range(10, 20)]))
    sizes = []
    while len(batch := consumer.poll()):
        assert_whole(batch)
        sizes.append(len(batch))
    assert sizes == [4, 4, 4, 4, 4]                   # max_batch 5 would cut every batch's third event


def test_an_event_not_all_published_waits_then_a_head_that_never_gets_its_continuation_is_dropped(caplog):
    ring = Ring(4)
    consumer = ring.consumer("block")
    ring.publish(np.concatenate([single(0), single(1), single(2)]))
    with pytest.raises(TimeoutError):
        ring.publish(event(3), timeout=0)         # only the head fits while the consumer holds nothing yet
    assert list(consumer.poll()["sequence"]) == [0, 1, 2]
    assert len(consumer.poll()) == 0                # head alone in the last slot: its continuation is to come
    assert consumer.position == 3 and consumer.torn_dropped == 0
    ring.publish(single(4))                         # ... and never comes: the producer went on
    with caplog.at_level(logging.WARNING, logger="extrema.ring"):
        assert list(consumer.poll()["sequence"]) == [4]
    assert consumer.torn_dropped == 1 and "dropped 1 event" in caplog.text


def test_a_lapped_lossy_consumer_drops_continuations_whose_head_it_lost(caplog):
    ring = Ring(8)
    consumer = ring.consumer("lossy")
    ring.publish(np.concatenate([event(k) for k in range(4)] + [single(4)]))   # 9 records into 8 slots
    with caplog.at_level(logging.WARNING, logger="extrema.ring"):
        first = consumer.poll()
    assert consumer.lost == 1 and consumer.torn_dropped == 1 and "dropped 1 event" in caplog.text
    assert_whole(first)
    assert list(first["sequence"]) == [1, 1, 2, 2, 3, 3]
    assert list(consumer.poll()["sequence"]) == [4]


def test_a_closed_ring_drops_an_unfinished_event_and_reports_closed():
    ring = Ring(4)
    consumer = ring.consumer("block")
    ring.publish(np.concatenate([single(0), single(1), single(2)]))
    with pytest.raises(TimeoutError):
        ring.publish(event(3), timeout=0)
    assert list(consumer.poll()["sequence"]) == [0, 1, 2]
    ring.close()
    with pytest.raises(extrema.RingClosedError):
        consumer.read(timeout=0)
    assert consumer.torn_dropped == 1
