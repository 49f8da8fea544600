from libc.stdint cimport int64_t

from picows.picows cimport WSListener, WSTransport, WSFrame


cdef class SessionStats:
    cdef public int64_t connects, disconnects, connect_failures, stale_drops, age_rotations
    cdef public int64_t messages, bytes, sent, handler_errors, last_message_us


cdef class MessageSink:
    # A compiled consumer of whole websocket messages (WsSession(on_message=sink)): data[0:n] is valid
    # during the call only; ts_local the receive time (µs). Raising is a handler error (counted, logged).
    cdef int deliver(self, const char *data, Py_ssize_t n, int64_t ts_local) except -1


cdef class FrameListener(WSListener):
    cdef public object session
    cdef public object transport
    cdef SessionStats _stats
    cdef MessageSink _sink               # the session's compiled consumer, or None
    cdef object _on_message              # else its Python callable (payload memoryview, ts_local)
    cdef bytearray _fragments
    cdef Py_ssize_t _max_message_size
    cdef readonly int64_t frame_ns       # CLOCK_MONOTONIC ns at the last data frame's arrival
    cdef int _deliver(self, const char *data, Py_ssize_t n, object view, int64_t ts) except -1
