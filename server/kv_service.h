/* The key-value service on a node's rpc endpoint (see kv_service.c). */
#ifndef MERIDIAN_SERVER_KV_SERVICE_H
#define MERIDIAN_SERVER_KV_SERVICE_H

#include "proto/kv.pb-c.h"
#include "rpc/rpc.h"
#include "server/host.h"
#include "server/range_desc.h"

/* Registers kv.Get, kv.Write and kv.Scan. Loop thread. */
void kv_service_register(rpc_node *rpc, host *h);

/* Fills err for code/msg (MERR_* to the wire's ErrorKind): NOT_LEADER
 * carries where the leader is, RANGE_MISMATCH r's current descriptor (built
 * in *dp, which must outlive err). r and dp may be NULL. */
void kv_fill_error(host *h, replica *r, Meridian__Kv__Error *err, int code, const char *msg,
                   range_desc_pb *dp);

#endif
