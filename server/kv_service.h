/* The key-value service on a node's rpc endpoint (see kv_service.c). */
#ifndef MERIDIAN_SERVER_KV_SERVICE_H
#define MERIDIAN_SERVER_KV_SERVICE_H

#include "rpc/rpc.h"
#include "server/host.h"

/* Registers kv.Get, kv.Write and kv.Scan. Loop thread. */
void kv_service_register(rpc_node *rpc, host *h);

#endif
