"""A Binance market-data connection's message consumer, compiled: frame -> records -> book sync -> engine.

    sink = BinanceStreamSink(market_data, decoder, sync, emit)   # WsSession(..., on_message=sink)

Every message of the combined stream goes: compiled decode (BinanceDecoder.decode_into, simdjson) into
this sink's record buffer -> DepthSync.accept_c (Binance's buffering / lastUpdateId / chain rules) ->
the engine's record path (Emitter.emit_ptr: execution core, ring, dispatcher, the strategies' hooks), all
in C from picows' frame to the hook call (extrema._core.wsframes.FrameListener delivers here). Before
(issue 5, tick-to-order) a Python listener, the session's _deliver, the market data's _on_message and the
engine's _emit each took a Python call and numpy arguments per frame.

The rare outcomes go back to the BinanceMarketData (Python): a depth chain that needs a REST snapshot
(`_start_snapshot(instrument_id)`), a gap (`_on_gap(instrument_id, reset_records)`: counted, logged, the
BOOK_RESET emitted, a resync started). Raw-frame recording (`market_data.raw_sink`) gets each message first.
"""
cimport cython
from libc.stdint cimport int64_t
from libc.string cimport memcpy
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.buffer cimport PyBUF_READ
cimport numpy as cnp

from extrema._core.types cimport Record
from extrema._core.binance cimport BinanceDecoder, DepthSync, SYNC_EMIT, SYNC_GAP, SYNC_NEED_SNAPSHOT
from extrema._core.wsframes cimport MessageSink
from extrema._core.emit cimport Emitter

from extrema._core.records import empty_records

cnp.import_array()


@cython.final
cdef class BinanceStreamSink(MessageSink):
    """See the module doc. BinanceStreamSink(market_data, decoder, sync, emit, capacity=8192): `emit` the
    engine's record path (an Emitter; any callable taking a RECORD_DTYPE array also works, through
    Python), `capacity` the records one message may decode into (more is a counted CAPACITY drop)."""

    cdef object _owner
    cdef BinanceDecoder _decoder
    cdef DepthSync _sync
    cdef Emitter _emitter                # the engine's compiled record path, or None:
    cdef object _emit                    # a Python emit(records)
    cdef cnp.ndarray _buffer
    cdef Record *_recs
    cdef Py_ssize_t _cap

    def __init__(self, owner, BinanceDecoder decoder not None, DepthSync sync not None, emit,
                 Py_ssize_t capacity=8192):
        self._owner = owner
        self._decoder = decoder
        self._sync = sync
        self._emitter = emit if isinstance(emit, Emitter) else None
        self._emit = emit
        self._buffer = empty_records(capacity)
        self._recs = <Record *>cnp.PyArray_DATA(self._buffer)
        self._cap = capacity

    cdef int deliver(self, const char *data, Py_ssize_t n, int64_t ts) except -1:
        cdef Py_ssize_t got
        cdef int status
        cdef Record reset
        raw = self._owner.raw_sink
        if raw is not None:
            raw("recv", PyMemoryView_FromMemory(<char *>data, n, PyBUF_READ), ts)
        got = self._decoder.decode_into(data, n, ts, self._recs, self._cap)
        status = self._sync.accept_c(&self._decoder.info, self._recs, got, ts, &reset)
        if status == SYNC_EMIT:
            if got:
                self._hand_over(self._recs, got)
        elif status == SYNC_NEED_SNAPSHOT:
            self._owner._start_snapshot(self._decoder.info.instrument_id)
        elif status == SYNC_GAP:
            out = empty_records(1)
            memcpy(cnp.PyArray_DATA(out), &reset, sizeof(Record))
            self._owner._on_gap(self._decoder.info.instrument_id, out)
        # BUFFERED (waiting for the snapshot) and STALE (older than the book) publish nothing.
        return 0

    def warm(self):
        """Decode the last frame again into the frame buffer, changing nothing observable
        (BinanceDecoder.rehearse): the engine's busy-poll warm-up."""
        self._decoder.rehearse(self._recs, self._cap)

    cdef int _hand_over(self, const Record *recs, Py_ssize_t n) except -1:
        if self._emitter is not None:
            return self._emitter.emit_ptr(recs, n)
        self._emit(self._buffer[:n])
        return 0
