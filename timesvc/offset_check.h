/* Clock offset check: does this node's clock disagree with its peers by more
 * than the uncertainty bounds allow? (CockroachDB's max-offset check; the
 * measurement is NTP's: Mills, RFC 5905 §8.)
 *
 * A probe sends at our clock reading s, the peer answers with its reading r
 * and its ε, and the answer arrives at our reading a. Then
 *   offset = r - (s + a) / 2,   measurement error <= rtt / 2 = (a - s) / 2.
 * If both clocks hold true time within their ε, |offset| <= ε_self + ε_peer +
 * rtt/2. A sample beyond that proves one of the two clocks is off beyond its
 * bound. Which one is decided by majority: when the samples of more than half
 * of the peers heard from recently are beyond, the fault is (most likely) ours,
 * and the node must stop using its clock: no leases, no timestamps, no reads.
 * It trusts its clock again as soon as a majority is back in bounds.
 *
 * Pure: no clock reads, no I/O; the caller passes readings and monotonic
 * times in. */
#ifndef MERIDIAN_TIMESVC_OFFSET_CHECK_H
#define MERIDIAN_TIMESVC_OFFSET_CHECK_H

#include <stddef.h>
#include <stdint.h>

#define OC_MAX_PEERS 64

typedef struct oc_peer {
    uint64_t id;
    int64_t offset_ns;  /* peer - us, last sample */
    int64_t rtt_ns;     /* round trip of that sample */
    int64_t allowed_ns; /* ε_self + ε_peer + rtt/2 at that sample */
    int64_t at_mono_ns; /* when it was taken (monotonic) */
} oc_peer;

typedef struct offset_check {
    int64_t fresh_ns; /* samples older than this do not count */
    oc_peer peers[OC_MAX_PEERS];
    size_t npeers;
} offset_check;

typedef struct oc_verdict {
    size_t heard;     /* peers with a fresh sample */
    size_t beyond;    /* ... of which beyond their allowed offset */
    int violation;    /* beyond a majority of heard (and heard > 0) */
    int64_t worst_ns; /* the largest |offset| among fresh samples */
} oc_verdict;

void oc_init(offset_check *c, int64_t fresh_ns);
/* Records one probe: send/recv are our clock readings around it, remote the
 * peer's reading and remote_eps its ε, self_eps ours. Returns 0, or -1 when
 * the sample is unusable (recv before send) or the table is full. */
int oc_record(offset_check *c, uint64_t peer, int64_t send_ns, int64_t recv_ns, int64_t remote_ns,
              int64_t remote_eps_ns, int64_t self_eps_ns, int64_t now_mono_ns);
/* Forgets a peer (it left the cluster). */
void oc_forget(offset_check *c, uint64_t peer);
oc_verdict oc_evaluate(const offset_check *c, int64_t now_mono_ns);
/* The peer's last sample, or NULL. */
const oc_peer *oc_peer_get(const offset_check *c, uint64_t peer);

#endif
