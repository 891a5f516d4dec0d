/* Seed ranges for the randomized checker tests. Each test has a default
 * range; JP_SEEDS=A-B runs seeds A..B instead, so anyone can run seeds
 * nobody ran before, and a failure (which prints its seed) replays with
 * JP_SEEDS=S-S. */
#ifndef MERIDIAN_TESTS_JEPSEN_TEST_SEEDS_H
#define MERIDIAN_TESTS_JEPSEN_TEST_SEEDS_H

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static inline void jp_test_seeds(uint64_t *first, uint64_t *last)
{
    const char *s = getenv("JP_SEEDS");
    uint64_t a, b;
    if (s && sscanf(s, "%" SCNu64 "-%" SCNu64, &a, &b) == 2 && a <= b) {
        *first = a;
        *last = b;
    }
}

/* 1 when the default range runs: only then do the tests insist on how many
 * injections or anomalies a range produced. */
static inline int jp_test_default_seeds(void)
{
    return getenv("JP_SEEDS") == NULL;
}

#endif
