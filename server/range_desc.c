/* Builds a replica's RangeDescriptor (range_desc.h). */
#include "server/range_desc.h"

#include <string.h>

void range_desc_fill(replica *r, range_desc_pb *out)
{
    Meridian__Meta__RangeDescriptor *d = &out->d;
    meridian__meta__range_descriptor__init(d);
    range_meta m;
    memset(&m, 0, sizeof(m));
    range_get_meta(replica_store(r), &m);
    d->range_id = replica_id(r);
    d->start_key.data = (uint8_t *)m.start;
    d->start_key.len = m.start_len;
    d->end_key.data = (uint8_t *)m.end;
    d->end_key.len = m.end_len;
    d->generation = m.generation;
    d->leader_node_id = replica_leader_hint(r);
    paxos_members committed, latest;
    paxos_get_members(replica_group(r), &committed, &latest);
    size_t k = 0;
    for (uint32_t v = 0; v < latest.nvoters; v++, k++) {
        meridian__meta__replica_descriptor__init(&out->rs[k]);
        out->rs[k].node_id = latest.voters[v];
        out->rs[k].type = MERIDIAN__META__REPLICA_TYPE__VOTER;
        out->rp[k] = &out->rs[k];
    }
    for (uint32_t l = 0; l < latest.nlearners; l++, k++) {
        meridian__meta__replica_descriptor__init(&out->rs[k]);
        out->rs[k].node_id = latest.learners[l];
        out->rs[k].type = MERIDIAN__META__REPLICA_TYPE__LEARNER;
        out->rp[k] = &out->rs[k];
    }
    d->replicas = out->rp;
    d->n_replicas = k;
}
