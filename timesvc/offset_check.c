/* Clock offset check (see offset_check.h). */
#include "timesvc/offset_check.h"

#include <string.h>

void oc_init(offset_check *c, int64_t fresh_ns)
{
    memset(c, 0, sizeof(*c));
    c->fresh_ns = fresh_ns;
}

static oc_peer *find(offset_check *c, uint64_t peer)
{
    for (size_t i = 0; i < c->npeers; i++)
        if (c->peers[i].id == peer) return &c->peers[i];
    return NULL;
}

const oc_peer *oc_peer_get(const offset_check *c, uint64_t peer)
{
    return find((offset_check *)c, peer);
}

int oc_record(offset_check *c, uint64_t peer, int64_t send_ns, int64_t recv_ns, int64_t remote_ns,
              int64_t remote_eps_ns, int64_t self_eps_ns, int64_t now_mono_ns)
{
    if (recv_ns < send_ns || remote_eps_ns < 0 || self_eps_ns < 0) return -1;
    oc_peer *p = find(c, peer);
    if (!p) {
        if (c->npeers == OC_MAX_PEERS) return -1;
        p = &c->peers[c->npeers++];
        p->id = peer;
    }
    int64_t rtt = recv_ns - send_ns;
    /* send + rtt/2 rather than (send + recv)/2: no overflow near INT64_MAX */
    p->offset_ns = remote_ns - (send_ns + rtt / 2);
    p->rtt_ns = rtt;
    p->allowed_ns = self_eps_ns + remote_eps_ns + rtt / 2;
    p->at_mono_ns = now_mono_ns;
    return 0;
}

void oc_forget(offset_check *c, uint64_t peer)
{
    oc_peer *p = find(c, peer);
    if (!p) return;
    *p = c->peers[--c->npeers];
}

oc_verdict oc_evaluate(const offset_check *c, int64_t now_mono_ns)
{
    oc_verdict v = {0};
    for (size_t i = 0; i < c->npeers; i++) {
        const oc_peer *p = &c->peers[i];
        if (now_mono_ns - p->at_mono_ns > c->fresh_ns) continue;
        v.heard++;
        int64_t abs = p->offset_ns < 0 ? -p->offset_ns : p->offset_ns;
        if (abs > v.worst_ns) v.worst_ns = abs;
        if (abs > p->allowed_ns) v.beyond++;
    }
    v.violation = v.heard > 0 && 2 * v.beyond > v.heard;
    return v;
}
