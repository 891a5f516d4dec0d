/* Exponential backoff of failed authentication attempts, per key (the
 * server uses "user@peer-address"). Pure: the caller passes the time.
 *
 * After the n-th consecutive failure of a key, attempts before
 * now + min(max, base * 2^(n-1)) are refused without checking anything, so
 * an online password guesser gets a handful of tries per minute instead of
 * thousands. A success clears the key. The table is fixed-size: when full,
 * the entry whose wait ended longest ago is reused (an attacker cycling
 * through addresses evicts only expired entries first). */
#ifndef MERIDIAN_COMMON_BACKOFF_H
#define MERIDIAN_COMMON_BACKOFF_H

#include <stdint.h>

#define MBACKOFF_SLOTS   256
#define MBACKOFF_KEY_MAX 160

typedef struct mbackoff_entry {
    char key[MBACKOFF_KEY_MAX];
    uint32_t failures;
    int64_t until_ns;
} mbackoff_entry;

typedef struct mbackoff {
    int64_t base_ns, max_ns;
    mbackoff_entry e[MBACKOFF_SLOTS];
    uint64_t failures_total, refused_total;
} mbackoff;

void mbackoff_init(mbackoff *b, int64_t base_ns, int64_t max_ns);
/* 0 when key may try now; otherwise the ns left to wait (and the refusal is
 * counted). */
int64_t mbackoff_check(mbackoff *b, const char *key, int64_t now_ns);
/* A failed attempt: returns the wait now imposed on key. */
int64_t mbackoff_fail(mbackoff *b, const char *key, int64_t now_ns);
void mbackoff_ok(mbackoff *b, const char *key);
/* Consecutive failures recorded for key. */
uint32_t mbackoff_failures(const mbackoff *b, const char *key);

/* The wait before retry number attempt (0-based) of an operation that lost
 * a conflict or met a range mid-split: base * 2^attempt capped at max,
 * jittered by seed into [d/2, d) so that retries of conflicting
 * transactions do not collide again in lockstep. Pure. */
int64_t mbackoff_retry_ns(int attempt, int64_t base_ns, int64_t max_ns, uint64_t seed);
/* Sleeps mbackoff_retry_ns(attempt, base, max, <the monotonic clock>). */
void mbackoff_retry_sleep(int attempt, int64_t base_ns, int64_t max_ns);

#endif
