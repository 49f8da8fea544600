"""Functions run in child processes by test_ring.py (importable by multiprocessing's spawn)."""
import time

import numpy as np

import extrema

MASK = (1 << 62) - 1


def checksummed(start, n):
    """Records whose every field is derived from the sequence, plus a checksum over all of them."""
    seq = np.arange(start, start + n, dtype=np.int64)
    rec = extrema.empty_records(n)
    rec["kind"] = extrema.RecordKind.TRADE
    rec["flags"] = (seq & 0xFFF).astype(np.uint16)
    rec["instrument_id"] = (seq % 1000).astype(np.uint32)
    rec["sequence"] = seq
    rec["ts_exchange"] = seq * 3
    rec["ts_local"] = seq * 5 + 1
    rec["price"] = seq * 31 + 7
    rec["quantity"] = seq ^ 0x5555
    rec["aux0"] = (seq * 2654435761) & MASK
    rec["aux1"] = checksum(rec)
    return rec


def checksum(rec):
    total = (rec["kind"].astype(np.int64) + rec["flags"] + rec["instrument_id"] + rec["sequence"] + rec["ts_exchange"]
             + rec["ts_local"] + rec["price"] + rec["quantity"] + rec["aux0"])
    return total & MASK


def verify_stream(consumer, expect_total):
    """Read until the ring closes; returns (received, lost, torn, out_of_order, first_seq)."""
    received = torn = out_of_order = 0
    last = None
    first = None
    for batch in consumer:
        torn += int((checksum(batch) != batch["aux1"]).sum())
        seq = batch["sequence"]
        if first is None and len(seq):
            first = int(seq[0])
        if len(seq):
            expected_next = seq[0] if last is None else last + 1
            if consumer.lossy:
                out_of_order += int(seq[0] < expected_next) + int((np.diff(seq) != 1).sum())
            else:
                out_of_order += int(seq[0] != expected_next) + int((np.diff(seq) != 1).sum())
            last = int(seq[-1])
        received += len(batch)
    return received, consumer.lost, torn, out_of_order, first


def consume_in_process(name, policy, ready, results):
    ring = extrema.Ring.attach(name)
    consumer = ring.consumer(policy)
    ready.set()
    results.put((policy,) + verify_stream(consumer, None))


def hold_slot_forever(name, ready):
    ring = extrema.Ring.attach(name)
    consumer = ring.consumer("block")
    consumer.poll()
    ready.set()
    time.sleep(3600)


def own_ring_then_wait(name, ready):
    ring = extrema.Ring(1024, name=name)
    ring.publish(checksummed(0, 10))
    ready.set()
    time.sleep(3600)


def sleep_until_woken(name, ready, results):
    """A consumer that never polls again by itself for 60 s: only the producer's futex wake gets it going."""
    ring = extrema.Ring.attach(name)
    consumer = ring.consumer("block", spin=0, yields=0, sleep_us=60_000_000)
    ready.set()
    batch = consumer.read(timeout=120)
    results.put(list(batch["sequence"]))
