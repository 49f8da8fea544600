"""Compiled Binance order entry: the WebSocket API `order.place` request of a plain order, written,
HMAC-SHA256-signed and handed to the socket in C.

    enc = OrderEncoder(api_key, secret, recv_window_ms=5000)      # signing.BinanceCredentials.order_encoder()
    text = enc.frame(rid, "BTCUSDT", "exab12...", SIDE_BUY, ORDER_LIMIT, TIF_GTC, 43000_00, 2, 1000, 3, now_ms)
    sink = WsApiOrderSink(ws_api, enc, refusable)                 # BinanceWsApi.order_sink: writes to its socket

Why (issue 5, tick-to-order): the general path (ws_api.BinanceWsApi.place_order) builds the parameters
as Python strings, formats Decimals, signs through hashlib and encodes the frame - about a third of the
tick-to-order time. Here the frame is built from the raw int64 price / quantity in one pass into a
buffer this object owns, the signature is two SHA-256 compressions chains over precomputed key states
(OpenSSL's SHA256_*, SHA-NI where the CPU has it), and the bytes go to picows' WSTransport without a
Python object in between.

What it writes is exactly what the general path writes for the same order (tests/adapters/
test_binance_order_encoder.py compares them byte for byte): the parameters of a SIGNED WebSocket API
request sorted by name, the signature payload `k=v&...` over all of them but `signature`, values not
percent-encoded (https://developers.binance.com/docs/binance-spot-api-docs/websocket-api/request-security,
USD-M https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-api-general-info):

    {"id":<rid>,"method":"order.place","params":{"apiKey":"..","newClientOrderId":"..",
     "newOrderRespType":"ACK","price":"..","quantity":"..","recvWindow":5000,"side":"BUY",
     "symbol":"BTCUSDT","timeInForce":"GTC","timestamp":<ms>,"type":"LIMIT","signature":"<hex>"}}

Only the common case is here: LIMIT (GTC / IOC / FOK) and MARKET by quantity, HMAC keys, no
reduce-only / post-only / stop price / expiry. Everything else takes the general path; both share the
parameter rules (the caller checks the order the same way before either is chosen).

HMAC (RFC 2104): H((K ^ opad) || H((K ^ ipad) || m)); the two states after the padded key blocks are
computed once here and copied per signature - the secret itself is not kept.
"""
cimport cython
from libc.stdint cimport int64_t, uint64_t, uint8_t
from libc.string cimport memcpy, memset, strlen
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_AsUTF8AndSize

from picows.picows cimport WSTransport, WSMsgType

from extrema._core.fixedpoint cimport format_fixed
from extrema._core.instruments cimport Instrument
from extrema._core.order_entry cimport OrderSink
from extrema._core.ratelimit cimport LimiterCore, Reservation
from extrema._core.clock cimport now_us, monotonic_ns, ServerClock
from extrema._core.wsframes cimport FrameListener, SessionStats

cdef extern from "openssl/sha.h" nogil:
    # The low-level SHA-256 interface: deprecated for new code in OpenSSL 3 but kept, and the only one
    # whose state is a plain struct that can be copied (EVP contexts need an allocation per copy).
    ctypedef struct SHA256_CTX:
        pass
    int SHA256_Init(SHA256_CTX *c)
    int SHA256_Update(SHA256_CTX *c, const void *data, size_t n)
    int SHA256_Final(unsigned char *md, SHA256_CTX *c)
    unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md)

SIDE_BUY = 0
SIDE_SELL = 1
# extrema.OrderType numbers (types.pxd) of the two order types the encoder writes.
ORDER_MARKET = 1
ORDER_LIMIT = 2
# extrema.TimeInForce numbers (types.pxd): 0 = none (MARKET)
TIF_NONE = 0
TIF_GTC = 1
TIF_IOC = 2
TIF_FOK = 3

DEF PAY_CAP = 1024
DEF FRAME_CAP = 1536
DEF MAX_TEXT = 64            # api key, symbol, client order id: Binance's are far shorter
DEF WS_HEADROOM = 16         # room for the websocket frame header picows writes before the text

cdef const char *_HEX = b"0123456789abcdef"


cdef inline char *_put(char *p, const char *s, Py_ssize_t n) noexcept nogil:
    memcpy(p, s, n)
    return p + n


cdef inline char *_puts(char *p, const char *s) noexcept nogil:
    # constant strings: strlen of a literal folds at compile time once inlined
    cdef size_t n = strlen(s)
    memcpy(p, s, n)
    return p + n


cdef inline char *_put_uint(char *p, uint64_t v) noexcept nogil:
    cdef char tmp[24]
    cdef int n = 0
    while True:
        tmp[n] = <char>(48 + v % 10)
        v //= 10
        n += 1
        if v == 0:
            break
    while n > 0:
        n -= 1
        p[0] = tmp[n]
        p += 1
    return p


cdef inline bint _safe_text(const char *s, Py_ssize_t n, bint symbol) noexcept nogil:
    """Client order ids: Binance's `^[\\.A-Z\\:/a-z0-9_-]{1,36}$`; symbols: A-Z a-z 0-9 _ - . (1-40).
    Nothing else may be written into the JSON text unescaped."""
    cdef Py_ssize_t i
    cdef char c
    if n < 1 or n > (40 if symbol else 36):
        return False
    for i in range(n):
        c = s[i]
        if not ((b'A' <= c <= b'Z') or (b'a' <= c <= b'z') or (b'0' <= c <= b'9') or c == b'_' or c == b'-'
                or c == b'.' or (not symbol and (c == b':' or c == b'/'))):
            return False
    return True


@cython.final
cdef class OrderEncoder:
    """The `order.place` writer of one API key (HMAC). See the module doc.

    OrderEncoder(api_key: str, secret: bytes, recv_window_ms: int = 5000). The api key must be plain
    text (no quotes, backslashes or control characters: it is written into the JSON as it is)."""

    cdef SHA256_CTX _inner
    cdef SHA256_CTX _outer
    cdef char _key[MAX_TEXT]
    cdef Py_ssize_t _key_n
    cdef char _rw[24]
    cdef Py_ssize_t _rw_n
    cdef char _pay[PAY_CAP]           # the signature payload of the last request
    # The JSON text of the last request, at _wire + WS_HEADROOM: picows' send_reuse_external_buffer writes
    # the websocket frame header (up to 14 bytes) in front of the message it is given, in place.
    cdef char _wire[WS_HEADROOM + FRAME_CAP]
    cdef char *_frame
    cdef Py_ssize_t _pay_n
    cdef char _prefix[16]             # client_id_prefix: an int client id is written `<prefix><digits>`
    cdef Py_ssize_t _prefix_n
    cdef readonly Py_ssize_t frame_len
    cdef readonly uint64_t written

    def __cinit__(self, str api_key, bytes secret, int recv_window_ms=5000):
        cdef bytes key = api_key.encode()
        cdef const char *k = PyBytes_AS_STRING(key)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(key), i
        cdef unsigned char block[64]
        cdef unsigned char pad[64]
        self._frame = self._wire + WS_HEADROOM
        if n < 1 or n > MAX_TEXT:
            raise ValueError(f"api key of {n} characters: the order encoder takes 1..{MAX_TEXT}")
        for i in range(n):
            if k[i] == b'"' or k[i] == b'\\' or <unsigned char>k[i] < 0x20 or <unsigned char>k[i] >= 0x7f:
                raise ValueError("the api key has characters that would need escaping in JSON")
        if not 0 < recv_window_ms <= 60000:
            raise ValueError(f"recv_window_ms must be in (0, 60000], got {recv_window_ms}")
        if not secret:
            raise ValueError("empty HMAC secret")
        memcpy(self._key, k, n)
        self._key_n = n
        self._rw_n = _put_uint(self._rw, <uint64_t>recv_window_ms) - self._rw
        memset(block, 0, 64)
        if len(secret) > 64:
            SHA256(<const unsigned char *>PyBytes_AS_STRING(secret), len(secret), block)
        else:
            memcpy(block, PyBytes_AS_STRING(secret), len(secret))
        for i in range(64):
            pad[i] = block[i] ^ 0x36
        SHA256_Init(&self._inner)
        SHA256_Update(&self._inner, pad, 64)
        for i in range(64):
            pad[i] = block[i] ^ 0x5C
        SHA256_Init(&self._outer)
        SHA256_Update(&self._outer, pad, 64)
        memset(block, 0, 64)
        memset(pad, 0, 64)

    cdef Py_ssize_t encode(self, int64_t rid, const char *sym, Py_ssize_t sym_n, const char *coid,
                           Py_ssize_t coid_n, int side, int order_type, int tif, int64_t price_raw,
                           int price_precision, int64_t qty_raw, int size_precision,
                           int64_t ts_ms, bint ack=True) noexcept nogil:
        """Write the signed request into the frame buffer; its length, or -1 when the order is not one this
        encoder writes (bad side / type / time in force, non-positive numbers, unsafe symbol or client id,
        precision out of range) - the caller checks before and raises. An empty client id leaves
        newClientOrderId out (the venue makes one); ack=False leaves newOrderRespType out (the venue's default).
        """
        cdef char *p = self._pay
        cdef char *j = self._frame
        cdef char num[48]
        cdef Py_ssize_t nn
        cdef const char *side_text
        cdef const char *tif_text = NULL
        cdef unsigned char digest[32]
        cdef SHA256_CTX ctx
        cdef int i
        if side != 0 and side != 1:
            return -1
        if qty_raw <= 0 or rid < 0 or ts_ms <= 0 or not (0 <= price_precision <= 18) or not (0 <= size_precision <= 18):
            return -1
        if order_type == 2:                  # LIMIT
            if price_raw <= 0 or tif < 1 or tif > 3:
                return -1
            tif_text = b"GTC" if tif == 1 else (b"IOC" if tif == 2 else b"FOK")
        elif order_type == 1:                # MARKET
            if price_raw != 0 or tif != 0:
                return -1
        else:
            return -1
        if not _safe_text(sym, sym_n, True) or (coid_n and not _safe_text(coid, coid_n, False)):
            return -1
        side_text = b"BUY" if side == 0 else b"SELL"
        # payload and JSON side by side, parameters in name order
        j = _puts(j, b'{"id":')
        j = _put_uint(j, <uint64_t>rid)
        j = _puts(j, b',"method":"order.place","params":{"apiKey":"')
        j = _put(j, self._key, self._key_n)
        p = _puts(p, b"apiKey=")
        p = _put(p, self._key, self._key_n)
        j = _puts(j, b'"')
        if coid_n:
            j = _puts(j, b',"newClientOrderId":"')
            j = _put(j, coid, coid_n)
            j = _puts(j, b'"')
            p = _puts(p, b"&newClientOrderId=")
            p = _put(p, coid, coid_n)
        if ack:
            j = _puts(j, b',"newOrderRespType":"ACK"')
            p = _puts(p, b"&newOrderRespType=ACK")
        if order_type == 2:
            nn = format_fixed(price_raw, price_precision, num)
            j = _puts(j, b',"price":"')
            j = _put(j, num, nn)
            p = _puts(p, b"&price=")
            p = _put(p, num, nn)
            j = _puts(j, b'"')
        nn = format_fixed(qty_raw, size_precision, num)
        j = _puts(j, b',"quantity":"')
        j = _put(j, num, nn)
        p = _puts(p, b"&quantity=")
        p = _put(p, num, nn)
        j = _puts(j, b'","recvWindow":')
        j = _put(j, self._rw, self._rw_n)
        p = _puts(p, b"&recvWindow=")
        p = _put(p, self._rw, self._rw_n)
        j = _puts(j, b',"side":"')
        j = _put(j, side_text, 3 if side == 0 else 4)
        p = _puts(p, b"&side=")
        p = _put(p, side_text, 3 if side == 0 else 4)
        j = _puts(j, b'","symbol":"')
        j = _put(j, sym, sym_n)
        p = _puts(p, b"&symbol=")
        p = _put(p, sym, sym_n)
        j = _puts(j, b'"')
        if tif_text != NULL:
            j = _puts(j, b',"timeInForce":"')
            j = _put(j, tif_text, 3)
            j = _puts(j, b'"')
            p = _puts(p, b"&timeInForce=")
            p = _put(p, tif_text, 3)
        j = _puts(j, b',"timestamp":')
        j = _put_uint(j, <uint64_t>ts_ms)
        p = _puts(p, b"&timestamp=")
        p = _put_uint(p, <uint64_t>ts_ms)
        if order_type == 2:
            j = _puts(j, b',"type":"LIMIT"')
            p = _puts(p, b"&type=LIMIT")
        else:
            j = _puts(j, b',"type":"MARKET"')
            p = _puts(p, b"&type=MARKET")
        self._pay_n = p - self._pay
        # HMAC-SHA256 over the payload, lower-case hex (Binance's HMAC signature)
        memcpy(&ctx, &self._inner, sizeof(SHA256_CTX))
        SHA256_Update(&ctx, self._pay, self._pay_n)
        SHA256_Final(digest, &ctx)
        memcpy(&ctx, &self._outer, sizeof(SHA256_CTX))
        SHA256_Update(&ctx, digest, 32)
        SHA256_Final(digest, &ctx)
        j = _puts(j, b',"signature":"')
        for i in range(32):
            j[0] = _HEX[digest[i] >> 4]
            j[1] = _HEX[digest[i] & 15]
            j += 2
        j = _puts(j, b'"}}')
        self.frame_len = j - self._frame
        return self.frame_len

    @property
    def client_id_prefix(self):
        """The engine's client order id prefix (`ex<tag>`, ClientOrderIds.prefix): frame / send given an int
        client order id write `<prefix><decimal id>` themselves (no text built in Python)."""
        return PyBytes_FromStringAndSize(self._prefix, self._prefix_n).decode("ascii")

    @client_id_prefix.setter
    def client_id_prefix(self, str prefix):
        cdef bytes b = prefix.encode("ascii")
        if len(b) > 15 or (len(b) and not _safe_text(b, len(b), False)):
            raise ValueError(f"a client order id prefix is up to 15 letters / digits, got {prefix!r}")
        memcpy(self._prefix, PyBytes_AS_STRING(b), len(b))
        self._prefix_n = len(b)

    cdef int _encode_checked(self, int64_t rid, str symbol, object client_order_id, int side, int order_type,
                             int tif, int64_t price_raw, int price_precision, int64_t qty_raw,
                             int size_precision, int64_t ts_ms, bint ack=True) except -1:
        # The UTF-8 of an ASCII str is its own buffer (no copy); anything else is refused by the checks.
        # An int client id is one of the engine's: its text is written here, `<prefix><digits>`.
        cdef Py_ssize_t sym_n, coid_n
        cdef const char *sym = PyUnicode_AsUTF8AndSize(symbol, &sym_n)
        cdef const char *coid
        cdef char own[40]
        cdef int64_t coid_int
        if type(client_order_id) is str:
            coid = PyUnicode_AsUTF8AndSize(client_order_id, &coid_n)
        else:
            coid_int = client_order_id
            if self._prefix_n == 0 or coid_int <= 0 or coid_int >= (<int64_t>1 << 62):
                raise ValueError(f"int client order id {client_order_id!r}: needs client_id_prefix and an id in "
                                 f"1 .. 2**62 - 1")
            memcpy(own, self._prefix, self._prefix_n)
            coid_n = _put_uint(own + self._prefix_n, <uint64_t>coid_int) - own
            coid = own
        if self.encode(rid, sym, sym_n, coid, coid_n, side, order_type, tif, price_raw, price_precision,
                       qty_raw, size_precision, ts_ms, ack) < 0:
            raise ValueError(
                f"order not writable by the compiled encoder: side={side} type={order_type} tif={tif} "
                f"price_raw={price_raw}/{price_precision} qty_raw={qty_raw}/{size_precision} "
                f"symbol={symbol!r} client_order_id={client_order_id!r}")
        return 0

    def frame(self, int64_t rid, str symbol not None, client_order_id not None, int side, int order_type,
              int tif, int64_t price_raw, int price_precision, int64_t qty_raw, int size_precision, int64_t ts_ms,
              *, bint ack=True):
        """The request text (bytes) for these arguments, nothing sent. `client_order_id`: the wire text (str)
        or one of the engine's int ids (written with client_id_prefix). ValueError when the encoder does not
        write such an order."""
        self._encode_checked(rid, symbol, client_order_id, side, order_type, tif, price_raw, price_precision,
                             qty_raw, size_precision, ts_ms, ack)
        return PyBytes_FromStringAndSize(self._frame, self.frame_len)

    def sign(self, payload):
        """HMAC-SHA256 of `payload` (bytes, or str as UTF-8) with this encoder's key, lower-case hex: the
        signature the frames carry."""
        cdef bytes data = payload.encode() if isinstance(payload, str) else bytes(payload)
        cdef unsigned char digest[32]
        cdef char out[64]
        cdef SHA256_CTX ctx
        cdef int i
        memcpy(&ctx, &self._inner, sizeof(SHA256_CTX))
        SHA256_Update(&ctx, PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        SHA256_Final(digest, &ctx)
        memcpy(&ctx, &self._outer, sizeof(SHA256_CTX))
        SHA256_Update(&ctx, digest, 32)
        SHA256_Final(digest, &ctx)
        for i in range(32):
            out[2 * i] = _HEX[digest[i] >> 4]
            out[2 * i + 1] = _HEX[digest[i] & 15]
        return PyBytes_FromStringAndSize(out, 64).decode("ascii")

    def payload(self):
        """The signature payload of the last request (bytes): what was signed."""
        return PyBytes_FromStringAndSize(self._pay, self._pay_n)


@cython.final
cdef class WsApiOrderSink(OrderSink):
    """BinanceWsApi's `order.place` path for plain orders given as raw numbers: readiness, the rate-limit
    reservation, the request id, the frame (OrderEncoder) written to the socket, the pending-answer entry -
    without a Python frame between the engine's Context.submit and the socket.

    WsApiOrderSink(api, encoder, refusable, clock=None): `api` the BinanceWsApi it writes for (its
    connection, rate limiter, request ids and pending answers), `refusable` the exception classes that mean
    "not sent" (send() hands those to `on_refused` instead of raising), `clock` the api's ServerClock (None:
    the api's now_ms callable). BinanceWsApi makes one (`order_sink`);
    BinanceExecution.order_sink() binds its deferred order book with bind()."""

    cdef readonly OrderEncoder encoder
    cdef object _api
    cdef SessionStats _stats                # the api's session's stats and the api's counters (made once)
    cdef dict _counters
    cdef FrameListener _listener            # the ready connection's listener; None: requests may not be sent
    cdef object _refusable
    cdef ServerClock _clock                 # the request timestamps' clock (None: the api's own now_ms callable)
    cdef LimiterCore _limiter               # the api's rate limiter (made once, with the api)
    cdef int64_t _weight, _orders           # the documented cost of order.place
    cdef list _book
    cdef object _on_refused
    cdef readonly int64_t entry_ns          # CLOCK_MONOTONIC ns at the last send's entry (its sent_ns)
    cdef readonly int64_t last_ts_ms        # the request timestamp of the last order written
    cdef readonly int64_t write_ns          # how long the last frame's socket write took (picows + kernel)
    cdef readonly int64_t written_ns        # CLOCK_MONOTONIC ns when that write returned
    # the last order written, as the encoder took it (warm() writes it again, byte for byte)
    cdef str _last_symbol
    cdef object _last_coid
    cdef int64_t _last_rid, _last_price_raw, _last_qty_raw
    cdef int _last_side, _last_type, _last_tif, _last_pp, _last_sp

    def __init__(self, api, OrderEncoder encoder not None, refusable, ServerClock clock=None):
        self._api = api
        self._stats = api.session.stats
        self._counters = api.counters
        self._clock = clock
        self._limiter = <LimiterCore?>api.rate_limiter
        self.encoder = encoder
        self._refusable = tuple(refusable)
        cost = api._place_cost
        self._weight = cost.weight
        self._orders = cost.orders

    def bind(self, list book not None, on_refused):
        """Where send() leaves its work for the execution client: after the frame is written,
        `((client_order_id, strategy, side, order_type, time_in_force, price_raw, quantity_raw), inst,
        timestamp_ms)` is appended to `book` (the client makes its order record from it later); an order not
        sent for a `refusable` reason goes to `on_refused(entry, exc)`. Returns self."""
        self._book = book
        self._on_refused = on_refused
        return self

    def connected(self, FrameListener listener):
        """The api is ready to send on this connection's listener (None: it is not: down, being set up or
        draining). BinanceWsApi._set_ready calls it whenever its readiness changes."""
        self._listener = listener

    def place(self, str symbol not None, client_order_id not None, int side, int order_type, int tif,
              int64_t price_raw, int price_precision, int64_t qty_raw, int size_precision):
        """BinanceWsApi.place_order_raw: write the order now or raise (BinanceConnectionError not connected,
        RateLimitError over the budget, ValueError not writable); returns the request id."""
        self.entry_ns = monotonic_ns()
        return self._place(symbol, client_order_id, side, order_type, tif, price_raw, price_precision, qty_raw,
                           size_precision)

    cdef object _place(self, str symbol, object coid, int side, int order_type, int tif, int64_t price_raw,
                       int price_precision, int64_t qty_raw, int size_precision):
        cdef WSTransport transport
        cdef FrameListener listener = self._listener
        cdef int64_t t0, ts
        api = self._api
        if listener is None:
            api._check_sendable("order.place", True)       # raises, saying why
            api._not_connected("order.place")
        if listener.transport is None:
            api._not_connected("order.place")
        transport = <WSTransport?>listener.transport
        ts = self._clock.now_ms() if self._clock is not None else api._now_ms()
        res = self._limiter.acquire_now(self._weight, self._orders, "order.place", ts)
        rid = next(api._ids)
        try:
            self.encoder._encode_checked(rid, symbol, coid, side, order_type, tif, price_raw, price_precision,
                                         qty_raw, size_precision, ts)
            t0 = monotonic_ns()
            transport.send_reuse_external_buffer(WSMsgType.TEXT, self.encoder._frame, self.encoder.frame_len)
            self.written_ns = monotonic_ns()
            self.write_ns = self.written_ns - t0
        except BaseException:
            self._limiter.settle(res, None, reached_server=False)
            raise
        self.encoder.written += 1
        self.last_ts_ms = ts
        self._last_symbol = symbol
        self._last_coid = coid
        self._last_rid = rid
        self._last_side = side
        self._last_type = order_type
        self._last_tif = tif
        self._last_price_raw = price_raw
        self._last_pp = price_precision
        self._last_qty_raw = qty_raw
        self._last_sp = size_precision
        self._stats.sent += 1
        # the pending answer's entry (BinanceWsApi._pending_entry makes it a _Pending when it needs one)
        api._pending[rid] = (res, coid, symbol, self.entry_ns)
        self._counters["sent"] += 1
        return rid

    def warm(self):
        """Go through what an order reads on its way out - readiness, the connection, the clock, the rate
        limiter's windows, the encoder and its HMAC - without sending or changing anything: the last order is
        encoded again with its own request id and timestamp, so the buffer holds the same bytes. The engine's
        busy-poll loop calls it between events (extrema.engine.warm says why). Nothing before the first
        order."""
        cdef FrameListener listener = self._listener
        if self._last_symbol is None or listener is None or listener.transport is None:
            return
        api = self._api
        ts = self._clock.now_ms() if self._clock is not None else api._now_ms()
        self._limiter.warm(self._weight, self._orders, ts)
        self.encoder._encode_checked(self._last_rid, self._last_symbol, self._last_coid, self._last_side,
                                     self._last_type, self._last_tif, self._last_price_raw, self._last_pp,
                                     self._last_qty_raw, self._last_sp, self.last_ts_ms)

    cdef int send(self, int64_t coid, str strategy, Instrument inst, int side, int order_type, int tif,
                  int64_t qty_raw, int64_t price_raw) except -1:
        self.entry_ns = monotonic_ns()
        if self._book is None:
            raise RuntimeError("WsApiOrderSink.send before bind(): no order book to leave the order in")
        oid = coid
        order = (oid, strategy, side, order_type, tif, price_raw, qty_raw)     # what the client books
        try:
            self._place(inst.venue_symbol, oid, side, order_type, tif, price_raw, inst.price_precision, qty_raw,
                        inst.size_precision)
        except BaseException as exc:
            if not isinstance(exc, self._refusable):
                raise
            self._on_refused((order, inst, now_us() // 1000), exc)
            return 0
        self._book.append((order, inst, self.last_ts_ms))
        return 0
