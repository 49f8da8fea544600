/* How long a working set stays cached while the thread that owns it spins.

   A thread pinned to one CPU builds a random pointer chain through `lines` cache lines (`stride` bytes
   apart), then repeatedly: spins on clock_gettime for `gap` ns touching nothing else, and times one walk
   of the chain. On a dedicated core the walk costs the same after any gap; on a shared cloud VM the host
   runs other work on the core and evicts the set, so the walk after a long gap runs from memory.
   The tick_to_order figures depend on this (extrema.engine.warm says why).

   usage: cache_residency CPU LINES STRIDE        prints "gap_us ns_per_line" rows, p50 of 300 walks each */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s CPU LINES STRIDE\n", argv[0]);
        return 2;
    }
    int cpu = atoi(argv[1]);
    size_t lines = (size_t)atol(argv[2]), stride = (size_t)atol(argv[3]);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) {
        perror("sched_setaffinity");
        return 1;
    }
    char *mem = aligned_alloc(4096, (lines * stride + 4095) / 4096 * 4096);
    size_t *order = malloc(lines * sizeof(size_t));
    if (mem == NULL || order == NULL || lines < 2 || stride < sizeof(void *)) {
        fprintf(stderr, "bad arguments or no memory\n");
        return 1;
    }
    srand(7);
    for (size_t i = 0; i < lines; i++) order[i] = i;
    for (size_t i = lines - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (size_t i = 0; i < lines; i++)
        *(void **)(mem + order[i] * stride) = mem + order[(i + 1) % lines] * stride;
    static const int64_t gaps_ns[] = {1000, 10000, 100000, 300000, 1000000, 3000000, 10000000};
    enum { WALKS = 300 };
    int64_t took[WALKS];
    for (size_t g = 0; g < sizeof gaps_ns / sizeof gaps_ns[0]; g++) {
        for (int r = 0; r < WALKS; r++) {
            int64_t until = now_ns() + gaps_ns[g];
            while (now_ns() < until) {
            }
            int64_t t0 = now_ns();
            void *p = mem + order[0] * stride;
            for (size_t i = 0; i < lines; i++) p = *(void **)p;
            took[r] = now_ns() - t0;
            if (p == NULL) puts("");          /* keeps the walk */
        }
        qsort(took, WALKS, sizeof took[0], cmp);
        printf("%lld %.2f\n", (long long)(gaps_ns[g] / 1000), (double)took[WALKS / 2] / (double)lines);
    }
    return 0;
}
