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
#define EX_RING_LAYOUT_VERSION 2
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
    uint32_t wake;             /* futex word: bumped when records are published and someone sleeps */
    uint32_t sleepers;         /* consumers asleep on `wake` */
    uint64_t _pad[3];
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

/* Sleeping without polling: Linux futexes on the shared `wake` word (not FUTEX_PRIVATE, so they
 * work across processes sharing the segment). A consumer that found nothing registers as a sleeper,
 * looks once more, then sleeps until the producer bumps `wake` (or the timeout). */
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>
#include <limits.h>

static inline void ex_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns) {
    struct timespec ts;
    ts.tv_sec = timeout_ns / 1000000000LL;
    ts.tv_nsec = timeout_ns % 1000000000LL;
    syscall(SYS_futex, word, FUTEX_WAIT, expected, &ts, NULL, 0);
}

static inline void ex_futex_wake_all(uint32_t *word) {
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* Producer side, after publishing: wake the sleepers, if any. The seq_cst fence orders the
 * write_seq store before the sleepers load (pairs with the consumer's fence in ex_ring_sleep). */
static inline void ex_ring_wake(ex_ring_header *h) {
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (__atomic_load_n(&h->prod.sleepers, __ATOMIC_RELAXED) != 0) {
        __atomic_fetch_add(&h->prod.wake, 1, __ATOMIC_RELEASE);
        ex_futex_wake_all(&h->prod.wake);
    }
}

/* Consumer side: sleep until woken, unless write_seq already moved past `cursor` or the ring closed. */
static inline void ex_ring_sleep(ex_ring_header *h, uint64_t cursor, int64_t timeout_ns) {
    uint32_t seen = __atomic_load_n(&h->prod.wake, __ATOMIC_ACQUIRE);
    __atomic_fetch_add(&h->prod.sleepers, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&h->prod.write_seq, __ATOMIC_SEQ_CST) == cursor &&
        __atomic_load_n(&h->prod.closed, __ATOMIC_SEQ_CST) == 0) {
        ex_futex_wait(&h->prod.wake, seen, timeout_ns);
    }
    __atomic_fetch_sub(&h->prod.sleepers, 1, __ATOMIC_RELAXED);
}
