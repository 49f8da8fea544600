"""Plain-Python model of the SPMC ring's observable behaviour, single-threaded.

The producer appends records; a back-pressure ("block") consumer holds every record it has not released,
so a publish stops when the slowest such consumer is `capacity` records behind. A "lossy" consumer never
holds the producer; when it is more than `capacity` behind, it skips to the oldest record still in the
ring and counts what it skipped. A poll releases the previous batch, then hands out at most
min(max_n, max_batch) records that are contiguous in the ring (a batch never wraps past the end).
"""


class ReferenceRing:
    def __init__(self, capacity):
        self.capacity = capacity
        self.log = []                # every record ever published, by sequence
        self.consumers = {}          # id -> ReferenceConsumer

    @property
    def published(self):
        return len(self.log)

    def space(self):
        held = [c.released for c in self.consumers.values() if not c.lossy and not c.closed]
        oldest_held = min(held, default=self.published)
        return self.capacity - (self.published - oldest_held)

    def publish(self, records):
        """Publish as many as fit without waiting; returns how many went out. With no back-pressure
        consumer nothing holds the producer, so everything goes out (overwriting the oldest)."""
        done = 0
        while done < len(records) and self.space() > 0:
            n = min(len(records) - done, self.space())
            self.log.extend(records[done:done + n])
            done += n
        return done

    def consumer(self, cid, lossy, max_batch, oldest=False):
        start = max(0, self.published - self.capacity) if oldest else self.published
        self.consumers[cid] = ReferenceConsumer(self, lossy, max_batch, start)
        return self.consumers[cid]


class ReferenceConsumer:
    def __init__(self, ring, lossy, max_batch, start):
        self.ring = ring
        self.lossy = lossy
        self.max_batch = min(max_batch, ring.capacity) if lossy else max_batch
        self.cursor = start
        self.released = start
        self.lost = 0
        self.closed = False

    def poll(self, max_n):
        self.released = self.cursor
        avail = self.ring.published - self.cursor
        if avail == 0:
            return []
        if self.lossy and avail > self.ring.capacity:
            self.lost += avail - self.ring.capacity
            self.cursor = self.ring.published - self.ring.capacity
            avail = self.ring.capacity
        to_end = self.ring.capacity - self.cursor % self.ring.capacity
        n = min(avail, max_n, self.max_batch, to_end)
        batch = self.ring.log[self.cursor:self.cursor + n]
        self.cursor += n
        return batch

    def close(self):
        self.closed = True
