"""The ring under real concurrency (threads and processes at full speed), its lifecycle and bad input.
Exact single-threaded semantics are differential-tested in tests/property/test_ring_differential.py."""
import multiprocessing as mp
import os
import signal
import threading
import time
import uuid

import numpy as np
import pytest

import extrema
from extrema import ProducerGoneError, Ring, RingClosedError
from ring_workers import (checksummed, consume_in_process, hold_slot_forever, own_ring_then_wait,
                          sleep_until_woken, verify_stream)

SPAWN = mp.get_context("spawn")


def unique_name():
    return f"test-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def publish_all(ring, total, rng):
    sent = 0
    while sent < total:
        n = int(min(total - sent, rng.integers(1, 700)))
        ring.publish(checksummed(sent, n), timeout=60)
        sent += n


def consume_in_threads(ring, consumers, total, seed):
    """Each consumer verifies the stream on its own thread while this thread publishes `total` records."""
    results = [None] * len(consumers)

    def run(i):
        results[i] = verify_stream(consumers[i], total)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(consumers))]
    for t in threads:
        t.start()
    publish_all(ring, total, np.random.default_rng(seed))
    ring.close()
    for t in threads:
        t.join(60)
    return results


def test_compiled_ring_ran():
    assert extrema._core.ring.__file__.endswith(".so")


def test_threads_consume_checksummed_records_at_full_speed():
    ring = Ring(256)
    total = 400_000
    consumers = [ring.consumer("block"), ring.consumer("block"), ring.consumer("lossy", max_batch=64)]
    results = consume_in_threads(ring, consumers, total, seed=1)
    for i, (received, lost, torn, out_of_order, first) in enumerate(results):
        assert torn == 0 and out_of_order == 0, results[i]
        assert received + lost == total, results[i]
        if not consumers[i].lossy:
            assert lost == 0 and first == 0


def test_lapped_lossy_consumers_never_see_a_torn_record():
    """A small ring and a producer far faster than the Python-level checks: the lossy consumers are
    lapped all the time, and copy batches while the producer overwrites them. Without the claim check in
    poll_ptr this test sees torn and out-of-order records."""
    ring = Ring(64)
    total = 400_000
    consumers = [ring.consumer("lossy", max_batch=16), ring.consumer("lossy", max_batch=64)]
    results = consume_in_threads(ring, consumers, total, seed=3)
    for received, lost, torn, out_of_order, first in results:
        assert torn == 0 and out_of_order == 0, results
        assert received + lost == total and lost > 0, results


def test_processes_consume_checksummed_records_at_full_speed():
    name = unique_name()
    ring = Ring(128, name=name)
    total = 300_000
    policies = ["block", "block", "lossy"]
    results = SPAWN.Queue()
    ready = [SPAWN.Event() for _ in policies]
    procs = [SPAWN.Process(target=consume_in_process, args=(name, p, e, results)) for p, e in zip(policies, ready)]
    for p in procs:
        p.start()
    for e in ready:
        assert e.wait(60), "a consumer process did not attach"
    publish_all(ring, total, np.random.default_rng(2))
    ring.close()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    for policy, received, lost, torn, out_of_order, first in outcomes:
        assert torn == 0 and out_of_order == 0, outcomes
        assert received + lost == total, outcomes
        if policy == "block":
            assert lost == 0 and first == 0
    assert f"extrema.{name}" not in os.listdir("/dev/shm")


def test_a_killed_back_pressure_consumer_cannot_stall_the_producer():
    name = unique_name()
    ring = Ring(1024, name=name, sleep_us=100)
    ready = SPAWN.Event()
    child = SPAWN.Process(target=hold_slot_forever, args=(name, ready))
    child.start()
    assert ready.wait(60)
    with pytest.raises(TimeoutError, match="published 1024 of 5000"):
        ring.publish(checksummed(0, 5000), timeout=0.2)      # the child holds the ring
    os.kill(child.pid, signal.SIGKILL)
    child.join(10)
    assert ring.publish(checksummed(1024, 50_000), timeout=30) == 50_000
    assert [c["state"] for c in ring.stats()["consumers"]] == ["dead"]
    assert ring.consumer().index == 0                         # the dead slot is reused
    ring.close()


def test_owner_crash_is_detected_and_its_segment_recovered():
    name = unique_name()
    ready = SPAWN.Event()
    owner = SPAWN.Process(target=own_ring_then_wait, args=(name, ready))
    owner.start()
    assert ready.wait(60)
    attached = Ring.attach(name)
    consumer = attached.consumer("lossy", start="oldest")
    assert len(consumer.read(timeout=5)) == 10
    os.kill(owner.pid, signal.SIGKILL)
    owner.join(10)
    with pytest.raises(ProducerGoneError, match=str(owner.pid)):
        consumer.read(timeout=30)
    assert f"extrema.{name}" in os.listdir("/dev/shm")      # SIGKILL left it behind ...
    assert name in extrema.sweep_stale_rings()               # ... and the sweep removes it
    assert f"extrema.{name}" not in os.listdir("/dev/shm")
    # A new owner under the same name also recovers a stale segment by itself.
    ready = SPAWN.Event()
    owner = SPAWN.Process(target=own_ring_then_wait, args=(name, ready))
    owner.start()
    assert ready.wait(60)
    os.kill(owner.pid, signal.SIGKILL)
    owner.join(10)
    with Ring(64, name=name) as ring:
        assert ring.owner_pid == os.getpid() and ring.published == 0


def test_a_live_ring_name_cannot_be_taken():
    name = unique_name()
    with Ring(64, name=name):
        with pytest.raises(FileExistsError, match=f"owned by live process {os.getpid()}"):
            Ring(64, name=name)


def test_close_drains_then_stops():
    ring = Ring(64)
    c = ring.consumer()
    ring.publish(checksummed(0, 10))
    ring.close()
    assert ring.closed
    assert len(c.read(timeout=1)) == 10
    with pytest.raises(RingClosedError):
        c.read(timeout=1)
    with pytest.raises(RingClosedError):
        ring.publish(checksummed(0, 1))
    with pytest.raises(RingClosedError):
        ring.consumer()


def test_read_times_out_with_an_empty_batch():
    ring = Ring(64)
    c = ring.consumer()
    batch = c.read(timeout=0.01)
    assert len(batch) == 0 and batch.dtype == extrema.RECORD_DTYPE


def test_batches_are_read_only_views_valid_until_the_next_call():
    ring = Ring(64)
    c = ring.consumer()
    ring.publish(checksummed(0, 5))
    batch = c.poll()
    assert not batch.flags.writeable and batch.base is c
    kept = batch.copy()
    ring.publish(checksummed(5, 5))
    assert list(c.poll()["sequence"]) == [5, 6, 7, 8, 9] and list(kept["sequence"]) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(capacity=1000), ValueError, "power of two"),
    (dict(capacity=1), ValueError, "power of two"),
    (dict(capacity=64, max_consumers=65), ValueError, "max_consumers"),
    (dict(capacity=64, name="bad/name"), ValueError, "letters, digits"),
    (dict(capacity=64, sleep_us=0), ValueError, "sleep_us"),
])
def test_bad_construction(kwargs, error, match):
    with pytest.raises(error, match=match):
        Ring(**kwargs)


def test_bad_use_gives_clear_errors():
    ring = Ring(64, max_consumers=2)
    with pytest.raises(TypeError, match="RECORD_DTYPE"):
        ring.publish(np.zeros(4))
    with pytest.raises(ValueError, match="policy"):
        ring.consumer("fast")
    with pytest.raises(ValueError, match="back-pressure consumer starts at 'latest'"):
        ring.consumer("block", start="oldest")
    a, _ = ring.consumer(), ring.consumer()
    with pytest.raises(RuntimeError, match="all 2 consumer slots"):
        ring.consumer()
    a.close()
    with pytest.raises(ValueError, match="consumer is closed"):
        a.poll()
    with pytest.raises(ValueError, match="consumer is closed"):
        a.read(timeout=0)
    with pytest.raises(TypeError, match="Ring.consumer"):
        extrema.RingConsumer()
    assert ring.consumer().index == a.index
    with pytest.raises(FileNotFoundError, match="no ring named"):
        Ring.attach(unique_name())


def test_attaching_to_an_incompatible_segment_is_refused():
    name = unique_name()
    path = f"/dev/shm/extrema.{name}"
    with open(path, "wb") as f:
        f.write(b"\x01" * 100)
    try:
        with pytest.raises(ValueError, match="smaller than"):
            Ring.attach(name)
        with open(path, "wb") as f:
            f.write(b"\x00" * 8192)
        with pytest.raises(ValueError, match="bad magic"):
            Ring.attach(name, timeout=0.05)
    finally:
        os.unlink(path)
    with Ring(64, name=name):
        with pytest.raises(ValueError, match="capacity 64, the caller expected 128"):
            Ring.attach(name, capacity=128)
        attached = Ring.attach(name)
        with pytest.raises(PermissionError, match="only its owner publishes"):
            attached.publish(checksummed(0, 1))


def test_a_sleeping_thread_consumer_is_woken_by_the_producer():
    ring = Ring(64)
    consumer = ring.consumer("block", spin=0, yields=0, sleep_us=60_000_000)   # sleeps up to 60 s per round
    got = []
    reader = threading.Thread(target=lambda: got.extend(consumer.read(timeout=120)["sequence"]))
    reader.start()
    time.sleep(0.2)                       # let it fall asleep on the futex
    ring.publish(checksummed(0, 3))
    reader.join(20)                       # woken at once; without the wake it would sleep 60 s
    assert not reader.is_alive() and got == [0, 1, 2]


def test_a_sleeping_consumer_process_is_woken_by_the_producer():
    name = unique_name()
    ring = Ring(64, name=name)
    ready, results = SPAWN.Event(), SPAWN.Queue()
    child = SPAWN.Process(target=sleep_until_woken, args=(name, ready, results))
    child.start()
    assert ready.wait(60)
    time.sleep(0.2)
    ring.publish(checksummed(0, 2))
    assert results.get(timeout=20) == [0, 1]
    child.join(10)
    ring.close()


def test_publish_takes_one_record_too():
    ring = Ring(8)
    c = ring.consumer()
    records = checksummed(0, 2)
    assert ring.publish(records[1]) == 1
    assert list(c.poll()["sequence"]) == [1]


def test_a_closed_ring_never_removes_a_newer_ring_of_the_same_name():
    import gc
    name = unique_name()
    old = Ring(64, name=name)
    old.close()
    new = Ring(64, name=name)
    del old
    gc.collect()
    assert Ring.attach(name).owner_pid == new.owner_pid     # the new segment is still there
    new.close()
