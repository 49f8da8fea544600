"""The compiled ring against tests/models/reference_ring.py, driven by the same hypothesis programs.
Single-threaded, so every batch, every partial publish and every lost count must agree exactly."""
import numpy as np
from hypothesis import settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import extrema
from extrema import Ring
from models.reference_ring import ReferenceRing


def make_records(start, n):
    rec = extrema.empty_records(n)
    rec["sequence"] = np.arange(start, start + n)
    rec["price"] = rec["sequence"] * 7 + 1
    rec["kind"] = extrema.RecordKind.TRADE
    return rec


class RingMachine(RuleBasedStateMachine):
    @initialize(capacity_log2=st.integers(1, 7))
    def setup(self, capacity_log2):
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
        recs = make_records(self.model.published, n)
        expected = self.model.publish(list(recs["sequence"]))
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
        assert list(got["sequence"]) == want
        assert (got["price"] == got["sequence"] * 7 + 1).all()
        assert c.lost == m.lost and c.position == m.cursor

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
