"""Plain-Python model of the SPMC ring's observable behaviour, single-threaded.

The producer appends records; a back-pressure ("block") consumer holds every record it has not released,
so a publish stops when the slowest such consumer is `capacity` records behind. A "lossy" consumer never
holds the producer; when it is more than `capacity` behind, it skips to the oldest record still in the
ring and counts what it skipped. A poll releases the previous batch, then hands out at most
min(max_n, max_batch) records that are contiguous in the ring (a batch never wraps past the end).

Whole events: a record is a head with `conts` continuation slots after it (conts >= 0) or a continuation
(conts == CONT). A batch never ends inside an event: it is cut before one the ring's end or max_n would cut
(the rest goes back to the ring), and an event at a batch's start is joined with its continuations from
the next slots (`rejoined`); one whose continuations are not published yet is left for the next poll. A
lossy consumer drops the continuations whose head it lost and an event whose continuations it lost (or
that the producer never finished: a head comes next), counting each in `torn_dropped`. An event larger
than the ring comes in pieces.
"""

CONT = -1


def whole_events(batch):
    """How many records of the batch (records are (seq, conts)) form complete events."""
    h = len(batch) - 1
    while h > 0 and batch[h][1] == CONT:
        h -= 1
    if batch[h][1] != CONT and h + 1 + batch[h][1] > len(batch):
        return h
    return len(batch)



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
        self.rejoined = 0
        self.torn_dropped = 0
        self.owed = 0

    def poll(self, max_n):
        while True:
            batch = self.raw_poll(max_n)
            if not batch:
                return []
            torn = self.torn_dropped
            out = self._whole(batch)
            if out or self.torn_dropped == torn:
                return out

    def give_back(self, k):
        self.cursor -= k

    def _whole(self, batch):
        n = len(batch)
        if self.owed:
            m = min(self.owed, n)
            self.owed -= m
            self.give_back(n - m)
            return batch[:m]
        lead = 0
        while lead < n and batch[lead][1] == CONT:
            lead += 1
        if lead:
            self.torn_dropped += 1
            if lead == n:
                return []
            batch, n = batch[lead:], n - lead
        whole = whole_events(batch)
        if whole == n:
            return batch
        if whole > 0:
            self.give_back(n - whole)
            return batch[:whole]
        size = 1 + batch[0][1]
        need = size - n
        if size > self.ring.capacity:
            self.owed = need
            return batch
        if self.ring.published - self.cursor < need:
            self.give_back(n)
            return []
        joined = list(batch)
        while need > 0:
            start = self.cursor
            more = self.raw_poll(need)
            if not more:
                break
            if self.cursor - len(more) != start:
                self.give_back(len(more))
                break
            j = 0
            while j < len(more) and more[j][1] == CONT:
                j += 1
            joined += more[:j]
            need -= j
            if j < len(more):
                self.give_back(len(more) - j)
                break
        if need:
            self.torn_dropped += 1
            return []
        self.rejoined += 1
        return joined

    def raw_poll(self, max_n):
        """The slots a poll takes before events are made whole."""
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
