/* A replica's RangeDescriptor (proto/meta.proto) for replies: span,
 * generation, voters and learners, leader hint. One builder for node.Ranges,
 * RANGE_MISMATCH errors, kv.Scan replies, range.Split and the directory. */
#ifndef MERIDIAN_SERVER_RANGE_DESC_H
#define MERIDIAN_SERVER_RANGE_DESC_H

#include "proto/meta.pb-c.h"
#include "replication/paxos.h"
#include "server/replica.h"

/* The descriptor and the storage it points into (no allocation; valid
 * while the replica is not changed). */
typedef struct range_desc_pb {
    Meridian__Meta__RangeDescriptor d;
    Meridian__Meta__ReplicaDescriptor rs[2 * PAXOS_MAX_NODES];
    Meridian__Meta__ReplicaDescriptor *rp[2 * PAXOS_MAX_NODES];
} range_desc_pb;

void range_desc_fill(replica *r, range_desc_pb *out);

#endif
