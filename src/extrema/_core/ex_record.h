#pragma once
/* The 64-byte record: ring slot, journal entry, backtest input, ZeroMQ frame, numpy row
 * (extrema.RECORD_DTYPE). Field meanings per kind are documented in records.pyx. */
#include <stdint.h>

typedef struct ex_record {
    uint16_t kind;           /* RecordKind */
    uint16_t flags;          /* RecordFlag bits; bits 12..15 = continuation slot count */
    uint32_t instrument_id;  /* registry id, small int */
    int64_t  ts_exchange;    /* microseconds since the Unix epoch, UTC, as stamped by the venue */
    int64_t  ts_local;       /* microseconds since the Unix epoch, UTC, taken when the frame arrived */
    int64_t  sequence;       /* venue update id / trade id / order id, per kind */
    int64_t  price;          /* raw fixed-point at the instrument's price precision */
    int64_t  quantity;       /* raw fixed-point at the instrument's size precision */
    int64_t  aux0;
    int64_t  aux1;
} ex_record;

#ifdef __cplusplus   /* the simdjson-based decoders are C++ */
static_assert(sizeof(ex_record) == 64, "ex_record must be exactly one 64-byte slot");
#else
_Static_assert(sizeof(ex_record) == 64, "ex_record must be exactly one 64-byte slot");
#endif
