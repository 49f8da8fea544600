"""Websocket frames -> whole messages, compiled: the listener picows calls for every frame of a WsSession
(extrema.adapters.ws), and the interface of compiled message consumers.

picows parses frames in C and calls its listener's on_ws_frame; a Python listener costs a Python call,
attribute reads and a memoryview per frame before the message reaches its decoder. FrameListener is a
`cdef class` subclass of picows.WSListener: picows calls it through its C vtable, and a compiled consumer
(a MessageSink, e.g. the Binance stream sink) gets the frame's bytes as a pointer. A Python consumer
(any callable) still gets a memoryview valid during the call.

What the listener does (the session's rules, see extrema.adapters.ws): the receive time is taken before
anything else; fragmented messages (FIN = 0, then CONTINUATION frames) are reassembled up to the session's
max_message_size (a longer one is a protocol error: counted, logged, connection dropped); a CLOSE is
answered and the connection dropped; PING is answered by picows (auto-pong). A consumer that raises loses
that message only: counted in handler_errors and logged, the connection stays up.
"""
cimport cython
from libc.stdint cimport int64_t
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.buffer cimport PyObject_GetBuffer, PyBuffer_Release, PyBUF_SIMPLE, PyBUF_READ

from picows.picows cimport WSListener, WSTransport, WSFrame, WSMsgType

from extrema._core.clock cimport monotonic_ns, wall_us_at

import logging

log = logging.getLogger("extrema.adapters.ws")


cdef class SessionStats:
    """A session's counters (compiled: the listener updates them per frame without Python)."""

    def as_dict(self):
        return {"connects": self.connects, "disconnects": self.disconnects,
                "connect_failures": self.connect_failures, "stale_drops": self.stale_drops,
                "age_rotations": self.age_rotations, "messages": self.messages, "bytes": self.bytes,
                "sent": self.sent, "handler_errors": self.handler_errors, "last_message_us": self.last_message_us}

    def __repr__(self):
        return f"SessionStats({', '.join(f'{k}={v}' for k, v in self.as_dict().items())})"


cdef class MessageSink:
    """Base of compiled message consumers; subclasses override deliver(). A sink is also an on_message
    callable: sink(payload, ts_local) delivers a bytes-like message from Python (replays, tests)."""

    cdef int deliver(self, const char *data, Py_ssize_t n, int64_t ts_local) except -1:
        raise TypeError(f"{type(self).__name__} does not override MessageSink.deliver")

    def __call__(self, payload, int64_t ts_local):
        cdef Py_buffer view
        PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
        try:
            self.deliver(<const char *>view.buf, view.len, ts_local)
        finally:
            PyBuffer_Release(&view)


@cython.final
cdef class FrameListener(WSListener):
    """The listener of one connection of a WsSession (see the module doc)."""

    def __init__(self, session):
        self.session = session
        self.transport = None
        self._stats = <SessionStats?>session.stats
        on_message = session.on_message
        if isinstance(on_message, MessageSink):
            self._sink = <MessageSink>on_message
            self._on_message = None
        else:
            self._sink = None
            self._on_message = on_message
        self._fragments = None
        self._max_message_size = session.max_message_size

    cpdef on_ws_connected(self, WSTransport transport):
        self.transport = transport

    cpdef on_ws_disconnected(self, WSTransport transport):
        self.transport = None
        self._fragments = None

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef int64_t t_ns = monotonic_ns()
        cdef int64_t ts = wall_us_at(t_ns)        # the local receive time, before anything else
        cdef WSMsgType msg_type = frame.msg_type
        cdef bytearray whole
        if msg_type == WSMsgType.TEXT or msg_type == WSMsgType.BINARY:
            self.frame_ns = t_ns
            if frame.fin:
                self._deliver(frame.payload_ptr, frame.payload_size, None, ts)
            else:
                self._fragments = bytearray(frame.get_payload_as_memoryview())
        elif msg_type == WSMsgType.CONTINUATION:
            if self._fragments is None:
                self._protocol_error("continuation frame without a first fragment")
                return
            self._fragments += frame.get_payload_as_memoryview()
            if PyByteArray_GET_SIZE(self._fragments) > self._max_message_size:
                self._fragments = None
                self._protocol_error("fragmented message above max_message_size")
                transport.disconnect()
                return
            if frame.fin:
                self.frame_ns = t_ns
                whole, self._fragments = self._fragments, None
                self._deliver(PyByteArray_AS_STRING(whole), PyByteArray_GET_SIZE(whole), whole, ts)
        elif msg_type == WSMsgType.CLOSE:
            self.session.close_reason = f"{frame.get_close_code()} {frame.get_close_message()!r}"
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        # PING is answered by picows (enable_auto_pong); our own pings' PONGs are consumed by picows.

    cdef int _deliver(self, const char *data, Py_ssize_t n, object whole, int64_t ts) except -1:
        cdef SessionStats stats = self._stats
        stats.messages += 1
        stats.bytes += n
        stats.last_message_us = ts
        try:
            if self._sink is not None:
                self._sink.deliver(data, n, ts)
            else:
                self._on_message(memoryview(whole) if whole is not None
                                 else _frame_view(data, n), ts)
        except Exception:       # a bad handler must not take the connection down with it
            stats.handler_errors += 1
            log.exception("%s: message handler failed; message dropped", self.session.name)
        return 0

    def _protocol_error(self, what):
        self._stats.handler_errors += 1
        log.warning("%s: %s", self.session.name, what)


from cpython.memoryview cimport PyMemoryView_FromMemory


cdef inline object _frame_view(const char *data, Py_ssize_t n):
    # a read-only view of picows' receive buffer, valid during the call (the consumer decodes or copies)
    return PyMemoryView_FromMemory(<char *>data, n, PyBUF_READ)
