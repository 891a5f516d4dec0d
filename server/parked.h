/* Paxos messages for a group this node does not host yet, kept briefly.
 *
 * A range born of a split starts on each node when that node applies the
 * SPLIT; the parent's leaseholder applies it first and campaigns for the new
 * group at once, so its PREPARE (or PREVOTE) reaches the others before
 * their replica exists. Dropped, it cost the new range an election timeout
 * without a leader. Parked instead, it is handed to the replica once it is
 * there (host tick). Bounded: at most PARKED_MAX messages (the oldest go
 * first), each for at most PARKED_TTL_NS; only election messages are parked.
 * Pure: the caller passes the time. */
#ifndef MERIDIAN_SERVER_PARKED_H
#define MERIDIAN_SERVER_PARKED_H

#include <stddef.h>
#include <stdint.h>

#define PARKED_MAX    64
#define PARKED_TTL_NS (1000LL * 1000 * 1000)

typedef struct parked_msg {
    uint64_t from, group;
    int64_t at_ns;
    uint8_t *data;
    size_t len;
} parked_msg;

typedef struct parked_tab {
    parked_msg v[PARKED_MAX];
    size_t n;
    uint64_t parked, replayed, expired;
} parked_tab;

/* Keeps a copy of the message bytes; when full, the oldest is dropped.
 * 0, or MERR_NOMEM (nothing kept). */
int parked_add(parked_tab *t, uint64_t from, uint64_t group, const uint8_t *data, size_t len,
               int64_t now_ns);
/* Removes expired messages; then moves out (into out, up to cap, in arrival
 * order) those whose group has(arg, group) says is hosted now. Returns how
 * many; the caller frees each out[i].data. */
size_t parked_take(parked_tab *t, int (*has)(void *arg, uint64_t group), void *arg, int64_t now_ns,
                   parked_msg *out, size_t cap);
void parked_free(parked_tab *t);

#endif
