"""Engine-side stops for venues without native stop / take-profit / trailing orders.

A stop watches one instrument's prices and, when it fires, is moved to a queue the engine drains to send
its order (a market order, or a limit order at `limit_price`) through the normal pre-trade checks.

  loss          sell: fires when the price <= trigger (a stop-loss of a long); buy: price >= trigger
  take_profit   sell: fires when the price >= trigger; buy: price <= trigger
  trailing      the trigger follows the best price seen since the stop was armed: a sell stop trails
                max(price) - offset and fires when the price <= it; a buy stop trails min(price) + offset
                and fires when the price >= it. offset is a raw price distance or basis points of the
                best price (truncated). With an activation price it is armed only once the price reaches
                it (sell: >= activation, buy: <= activation).

Price source per stop: "last" (TRADE records) or "bidask" (the side the order would execute against:
the bid for a sell, the ask for a buy, from QUOTE records or the engine's book). A stop only sees the
source it asked for.
"""
cimport cython
from libc.stdint cimport int64_t, uint32_t, int32_t, uint8_t
from libc.stdlib cimport malloc, realloc, free, calloc
from libc.string cimport memset

cimport numpy as cnp

from extrema._core.types cimport Record, KIND_TRADE, KIND_QUOTE, CONT_MASK, CONT_SHIFT
from extrema._core.book cimport OrderBook
from extrema._core.records cimport as_record_array, record_data

cnp.import_array()

KINDS = {"loss": STOP_LOSS, "take_profit": STOP_TAKE_PROFIT, "trailing": STOP_TRAILING}
SOURCES = {"last": SOURCE_LAST, "bidask": SOURCE_BIDASK}
_KIND_NAMES = {v: k for k, v in KINDS.items()}
_SOURCE_NAMES = {v: k for k, v in SOURCES.items()}


@cython.final
cdef class StopManager:
    """Stops by id, grouped by instrument; see the module doc."""

    def __cinit__(self):
        self._cap = 64
        self._stops = <Stop *>calloc(self._cap, sizeof(Stop))
        self._free = <int32_t *>malloc(self._cap * sizeof(int32_t))
        self._fired_cap = 64
        self._fired = <int32_t *>malloc(self._fired_cap * sizeof(int32_t))
        if self._stops == NULL or self._free == NULL or self._fired == NULL:
            raise MemoryError()
        self._ids = {}

    def __dealloc__(self):
        cdef uint32_t i
        free(self._stops)
        free(self._free)
        free(self._fired)
        if self._lists != NULL:
            for i in range(self._n_instruments):
                free(self._lists[i])
        free(self._lists)
        free(self._list_n)
        free(self._list_cap)

    cdef int _grow_instruments(self, uint32_t iid) except -1:
        cdef uint32_t n = self._n_instruments
        cdef uint32_t new_n = 16 if n == 0 else n
        while new_n <= iid:
            new_n *= 2
        cdef int32_t **lists = <int32_t **>realloc(self._lists, new_n * sizeof(int32_t *))
        if lists == NULL:
            raise MemoryError()
        self._lists = lists
        cdef int32_t *ln = <int32_t *>realloc(self._list_n, new_n * sizeof(int32_t))
        if ln == NULL:
            raise MemoryError()
        self._list_n = ln
        cdef int32_t *lc = <int32_t *>realloc(self._list_cap, new_n * sizeof(int32_t))
        if lc == NULL:
            raise MemoryError()
        self._list_cap = lc
        memset(&lists[n], 0, (new_n - n) * sizeof(int32_t *))
        memset(&ln[n], 0, (new_n - n) * sizeof(int32_t))
        memset(&lc[n], 0, (new_n - n) * sizeof(int32_t))
        self._n_instruments = new_n
        return 0

    def add(self, int64_t stop_id, int owner, uint32_t instrument_id, side, int64_t quantity_raw, *,
            kind="loss", int64_t trigger_raw=0, int64_t limit_price_raw=0, int64_t trail_offset_raw=0,
            int64_t trail_bps=0, int64_t activation_raw=0, source="last"):
        """Add a stop; `side` is the side of the order it sends. Returns stop_id."""
        cdef int32_t slot
        cdef Stop *s
        cdef int k = KINDS.get(kind, -1)
        cdef int src = SOURCES.get(source, -1)
        cdef int sd = 0 if side == 0 or side == "buy" else (1 if side == 1 or side == "sell" else -1)
        cdef int32_t *lst
        if stop_id == 0 or stop_id in self._ids:
            raise ValueError(f"stop id {stop_id} is 0 or already used")
        if k < 0 or src < 0 or sd < 0:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, source one of {sorted(SOURCES)}, side buy / sell")
        if quantity_raw <= 0 or instrument_id == 0 or limit_price_raw < 0:
            raise ValueError("a stop needs a size > 0, an instrument and a limit price >= 0")
        if k == STOP_TRAILING:
            if (trail_offset_raw > 0) == (trail_bps > 0) or trail_offset_raw < 0 or trail_bps < 0:
                raise ValueError("a trailing stop needs exactly one of trail_offset_raw > 0 or trail_bps > 0")
        elif trigger_raw <= 0:
            raise ValueError("a loss / take-profit stop needs trigger_raw > 0")
        if self._n_free:
            self._n_free -= 1
            slot = self._free[self._n_free]
        else:
            if self._used == self._cap:
                self._stops = <Stop *>_grow(self._stops, self._cap * 2 * sizeof(Stop))
                self._free = <int32_t *>_grow(self._free, self._cap * 2 * sizeof(int32_t))
                self._cap *= 2
            slot = <int32_t>self._used
            self._used += 1
        s = &self._stops[slot]
        memset(s, 0, sizeof(Stop))
        s.stop_id = stop_id
        s.owner = owner
        s.instrument_id = instrument_id
        s.side = <uint8_t>sd
        s.qty = quantity_raw
        s.kind = <uint8_t>k
        s.source = <uint8_t>src
        s.trigger = trigger_raw
        s.limit_price = limit_price_raw
        s.offset = trail_offset_raw
        s.offset_bps = trail_bps
        s.activation = activation_raw
        s.armed = 1 if (k != STOP_TRAILING or activation_raw == 0) else 0
        s.active = 1
        if instrument_id >= self._n_instruments:
            self._grow_instruments(instrument_id)
        if self._list_n[instrument_id] == self._list_cap[instrument_id]:
            lst = <int32_t *>_grow(self._lists[instrument_id],
                                    (2 * self._list_cap[instrument_id] + 4) * sizeof(int32_t))
            self._lists[instrument_id] = lst
            self._list_cap[instrument_id] = 2 * self._list_cap[instrument_id] + 4
        self._lists[instrument_id][self._list_n[instrument_id]] = slot
        self._list_n[instrument_id] += 1
        self._ids[stop_id] = slot
        return stop_id

    def cancel(self, int64_t stop_id):
        """Remove an active stop; False if there is none by that id (or it already fired)."""
        slot = self._ids.get(stop_id)
        if slot is None or not self._stops[<int32_t>slot].active:
            return False
        cdef Stop *s = &self._stops[<int32_t>slot]
        cdef uint32_t iid = s.instrument_id
        cdef int32_t k
        for k in range(self._list_n[iid]):
            if self._lists[iid][k] == <int32_t>slot:
                self._lists[iid][k] = self._lists[iid][self._list_n[iid] - 1]
                self._list_n[iid] -= 1
                break
        s.active = 0
        del self._ids[stop_id]
        self._free[self._n_free] = <int32_t>slot
        self._n_free += 1
        return True

    cdef int _fire(self, uint32_t iid, int32_t k, int64_t price, int64_t ts) except -1:
        cdef int32_t slot = self._lists[iid][k]
        cdef Stop *s = &self._stops[slot]
        s.active = 0
        s.fired_price = price
        s.ts_fired = ts
        self._lists[iid][k] = self._lists[iid][self._list_n[iid] - 1]
        self._list_n[iid] -= 1
        if self._fired_n == self._fired_cap:
            self._fired = <int32_t *>_grow(self._fired, 2 * self._fired_cap * sizeof(int32_t))
            self._fired_cap *= 2
        self._fired[self._fired_n] = slot
        self._fired_n += 1
        self.fired_total += 1
        return 0

    cdef int on_price(self, uint32_t iid, int64_t bid, int64_t ask, int64_t last, int64_t ts) except -1:
        """New prices of an instrument (0 where this update has none); fires what they trigger. Returns
        how many fired."""
        cdef int32_t k
        cdef Stop *s
        cdef int64_t px, off
        cdef bint fire
        cdef int fired = 0
        if not self.watching(iid):
            return 0
        k = self._list_n[iid] - 1
        while k >= 0:                       # backwards: a fired stop is swapped with the last one
            s = &self._stops[self._lists[iid][k]]
            if s.source == SOURCE_LAST:
                px = last
            else:
                px = bid if s.side == 1 else ask
            if px <= 0:
                k -= 1
                continue
            fire = False
            if s.kind == STOP_TRAILING:
                if not s.armed:
                    if (s.side == 1 and px >= s.activation) or (s.side == 0 and px <= s.activation):
                        s.armed = 1
                if s.armed:
                    if s.extreme == 0 or (s.side == 1 and px > s.extreme) or (s.side == 0 and px < s.extreme):
                        s.extreme = px
                    off = s.offset if s.offset > 0 else s.extreme * s.offset_bps // 10000
                    if s.side == 1:
                        s.trigger = s.extreme - off
                        fire = px <= s.trigger
                    else:
                        s.trigger = s.extreme + off
                        fire = px >= s.trigger
            elif s.kind == STOP_LOSS:
                fire = (px <= s.trigger) if s.side == 1 else (px >= s.trigger)
            else:
                fire = (px >= s.trigger) if s.side == 1 else (px <= s.trigger)
            if fire:
                self._fire(iid, k, px, ts)
                fired += 1
            k -= 1
        return fired

    cdef int on_book(self, uint32_t iid, OrderBook book, int64_t ts) except -1:
        if not self.watching(iid):
            return 0
        return self.on_price(iid, book.best_price_raw(0) if book.has_best(0) else 0,
                             book.best_price_raw(1) if book.has_best(1) else 0, 0, ts)

    # ---- Python API ------------------------------------------------------------------------------

    def trade(self, uint32_t instrument_id, int64_t price_raw, int64_t ts=0):
        return self.on_price(instrument_id, 0, 0, price_raw, ts)

    def quote(self, uint32_t instrument_id, int64_t bid_raw, int64_t ask_raw, int64_t ts=0):
        return self.on_price(instrument_id, bid_raw, ask_raw, 0, ts)

    def book(self, uint32_t instrument_id, OrderBook book, int64_t ts=0):
        return self.on_book(instrument_id, book, ts)

    def process(self, records):
        """Feed TRADE and QUOTE records; returns how many stops fired."""
        cdef cnp.ndarray arr = as_record_array(records, "StopManager.process")
        cdef const Record *recs = record_data(arr)
        cdef Py_ssize_t n = cnp.PyArray_DIM(arr, 0), i
        cdef int fired = 0
        for i in range(n):
            if recs[i].kind == KIND_TRADE:
                fired += self.on_price(recs[i].instrument_id, 0, 0, recs[i].price, recs[i].ts_local)
            elif recs[i].kind == KIND_QUOTE:
                fired += self.on_price(recs[i].instrument_id, recs[i].price, recs[i].aux0, 0, recs[i].ts_local)
        return fired

    @property
    def pending(self):
        """Fired stops not yet drained."""
        return self._fired_n

    def drain(self):
        """The fired stops, in firing order, as dicts (the order to send: owner, instrument_id, side,
        quantity_raw, limit_price_raw (0: market)); their ids are free again afterwards."""
        cdef Py_ssize_t i
        cdef Stop *s
        out = []
        for i in range(self._fired_n):
            s = &self._stops[self._fired[i]]
            out.append(_stop_dict(s))
            self._ids.pop(s.stop_id, None)
            self._free[self._n_free] = self._fired[i]
            self._n_free += 1
        self._fired_n = 0
        return out

    def get(self, int64_t stop_id):
        slot = self._ids.get(stop_id)
        if slot is None:
            return None
        return _stop_dict(&self._stops[<int32_t>slot])

    def active(self, instrument_id=None):
        """Ids of the active stops (of one instrument)."""
        cdef uint32_t i
        cdef int32_t k
        out = []
        for i in range(self._n_instruments):
            if instrument_id is not None and i != instrument_id:
                continue
            for k in range(self._list_n[i]):
                out.append(self._stops[self._lists[i][k]].stop_id)
        return out

    def __len__(self):
        return len(self._ids)


cdef void *_grow(void *p, size_t size) except NULL:
    cdef void *q = realloc(p, size)
    if q == NULL:
        raise MemoryError()
    return q


cdef dict _stop_dict(const Stop *s):
    return {"stop_id": s.stop_id, "owner": s.owner, "instrument_id": s.instrument_id,
            "side": "sell" if s.side else "buy", "quantity_raw": s.qty, "limit_price_raw": s.limit_price,
            "kind": _KIND_NAMES[s.kind], "source": _SOURCE_NAMES[s.source], "trigger_raw": s.trigger,
            "extreme_raw": s.extreme, "armed": bool(s.armed), "active": bool(s.active),
            "fired_price_raw": s.fired_price, "ts_fired": s.ts_fired}
