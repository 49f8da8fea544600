"""The compiled ring against tests/models/reference_ring.py, driven by the same hypothesis programs.
Single-threaded, so every batch, every partial publish and every lost / rejoined / torn count must agree
exactly. The stream mixes single-slot records and events of 2 and 3 slots, cut anywhere by publishes."""
import numpy as np
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import extrema
from extrema import Ring
from models.reference_ring import CONT, ReferenceRing


def stream(sizes, total):
    """conts of records 0 .. total - 1 of an endless stream of events of the given sizes, in turn."""
    out, k = [], 0
    while len(out) < total:
        out += [sizes[k % len(sizes)] - 1] + [CONT] * (sizes[k % len(sizes)] - 1)
        k += 1
    return out[:total]


def make_records(start, n, conts):
    """Records start .. start + n - 1 of the stream: heads (TRADE, or ORDER_UPDATE with continuation slots)
    and continuations. A publish may end inside an event: its continuations come with the next one."""
    rec = extrema.empty_records(n)
    rec["sequence"] = np.arange(start, start + n)
    rec["price"] = rec["sequence"] * 7 + 1
    c = np.array(conts[start:start + n], dtype=np.int64)
    rec["kind"] = np.where(c == CONT, extrema.RecordKind.CONTINUATION,
                           np.where(c > 0, extrema.RecordKind.ORDER_UPDATE, extrema.RecordKind.TRADE))
    rec["flags"] = np.where(c > 0, c << 12, 0)
    return rec


def recs_conts(recs):
    return [CONT if k == extrema.RecordKind.CONTINUATION else int(f) >> 12 for k, f in zip(recs["kind"], recs["flags"])]


class RingMachine(RuleBasedStateMachine):
    @initialize(capacity_log2=st.integers(1, 7), sizes=st.lists(st.integers(1, 3), min_size=1, max_size=6))
    def setup(self, capacity_log2, sizes):
        self.conts = stream(sizes, 40 * 300 + 1)
        self.capacity = 1 << capacity_log2
        self.ring = Ring(self.capacity, max_consumers=8)
        self.model = ReferenceRing(self.capacity)
        self.consumers = {}
        self.next_id = 0

    def teardown(self):
        for c, _ in self.consumers.values():
            c.close()
        if hasattr(self, "ring"):
            self.ring.close()

    @rule(n=st.integers(0, 300))
    def publish(self, n):
        recs = make_records(self.model.published, n, self.conts)
        expected = self.model.publish([(int(s), c) for s, c in zip(recs["sequence"], recs_conts(recs))])
        if n == 0:
            assert self.ring.publish(recs) == 0
            return
        try:
            done = self.ring.publish(recs, timeout=0)
        except TimeoutError as e:
            done = int(str(e).split()[1])
        assert done == expected

    @precondition(lambda self: len(self.consumers) < 8)
    @rule(lossy=st.booleans(), max_batch=st.integers(1, 200), oldest=st.booleans())
    def add_consumer(self, lossy, max_batch, oldest):
        oldest = oldest and lossy
        c = self.ring.consumer("lossy" if lossy else "block", max_batch=max_batch,
                               start="oldest" if oldest else "latest")
        m = self.model.consumer(self.next_id, lossy, max_batch, oldest)
        self.consumers[self.next_id] = (c, m)
        self.next_id += 1

    @precondition(lambda self: self.consumers)
    @rule(data=st.data(), max_n=st.integers(1, 300))
    def poll(self, data, max_n):
        cid = data.draw(st.sampled_from(sorted(self.consumers)))
        c, m = self.consumers[cid]
        got = c.poll(max_n)
        want = m.poll(max_n)
        assert list(got["sequence"]) == [seq for seq, _ in want]
        assert (got["price"] == got["sequence"] * 7 + 1).all()
        assert c.lost == m.lost and c.position == m.cursor
        assert c.rejoined == m.rejoined and c.torn_dropped == m.torn_dropped

    @precondition(lambda self: self.consumers)
    @rule(data=st.data())
    def close_consumer(self, data):
        cid = data.draw(st.sampled_from(sorted(self.consumers)))
        c, m = self.consumers.pop(cid)
        c.close()
        m.close()
        del self.model.consumers[cid]

    @invariant()
    def published_agrees(self):
        if hasattr(self, "ring"):
            assert self.ring.published == self.model.published


RingMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
TestRingMatchesReference = RingMachine.TestCase
