#pragma once
/* Memory layout of an extrema ring: the same bytes in process memory (threads) and in a POSIX
 * shared-memory segment (processes). Every field is written by exactly one side:
 *   meta                      - the owner, once, before anyone can attach
 *   prod.write_claim/seq      - the single producer
 *   consumers[i].read_seq     - consumer i
 *   consumers[i].state        - CAS by whoever claims / frees / reclaims the slot
 * Each block sits on its own 64-byte cache line so the producer and consumers never share one.
 *
 * Sequences are uint64 counters that never wrap in practice (2**64 records). Record `s` lives in slot
 * s & (capacity - 1). write_seq: every record below it is published. write_claim: the producer may be
 * writing any record below it; a lossy reader that copied record s keeps it only if
 * s >= write_claim - capacity, read after the copy (a seqlock over the whole ring).
 */
#include <stdint.h>
#include "ex_record.h"

#define EX_RING_MAGIC 0x474e495241525458ULL   /* "XTRARING" */
#define EX_RING_LAYOUT_VERSION 1
#define EX_RING_MAX_CONSUMERS 64

enum { EX_SLOT_FREE = 0, EX_SLOT_ACTIVE = 1, EX_SLOT_DEAD = 2 };
enum { EX_POLICY_BLOCK = 0, EX_POLICY_LOSSY = 1 };

typedef struct ex_ring_meta {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t slot_size;
    uint64_t capacity;
    uint32_t max_consumers;
    uint32_t header_size;      /* offset of slot 0 from the start of the mapping */
    int64_t  owner_pid;
    int64_t  created_us;
    uint64_t _pad[2];
} ex_ring_meta;

typedef struct ex_ring_producer {
    uint64_t write_seq;
    uint64_t write_claim;
    uint64_t closed;           /* 1 once the producer closed: consumers drain, then stop */
    uint64_t blocked_waits;    /* times the producer had to wait for a back-pressure consumer */
    uint64_t _pad[4];
} ex_ring_producer;

typedef struct ex_ring_consumer {
    uint64_t read_seq;         /* everything below was consumed; the producer may overwrite it */
    uint32_t state;
    uint32_t policy;
    int64_t  pid;
    uint64_t lost;             /* lossy consumers: records overwritten before they were read */
    uint64_t _pad[4];
} ex_ring_consumer;

typedef struct ex_ring_header {
    ex_ring_meta meta;
    ex_ring_producer prod;
    ex_ring_consumer consumers[EX_RING_MAX_CONSUMERS];
} ex_ring_header;

_Static_assert(sizeof(ex_ring_meta) == 64, "meta is one cache line");
_Static_assert(sizeof(ex_ring_producer) == 64, "producer is one cache line");
_Static_assert(sizeof(ex_ring_consumer) == 64, "each consumer is one cache line");

#define EX_RING_HEADER_SIZE ((uint32_t)sizeof(ex_ring_header))

static inline ex_record *ex_ring_slots(ex_ring_header *h) {
    return (ex_record *)((char *)h + h->meta.header_size);
}
