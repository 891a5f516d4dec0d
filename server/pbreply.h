/* Protobuf messages in and out of rpc handlers: one place for packing, and
 * the caller's deadline. */
#ifndef MERIDIAN_SERVER_PBREPLY_H
#define MERIDIAN_SERVER_PBREPLY_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

#include "rpc/transport.h"

/* Packs m into a malloc'd buffer (caller frees). 0 or MERR_NOMEM. */
int pb_pack(const ProtobufCMessage *m, uint8_t **out, size_t *len);
/* Answers req with m packed (or MERR_NOMEM). */
void pb_reply(rpc_req *req, const ProtobufCMessage *m);
/* The caller's deadline as a monotonic time (0: none). */
int64_t rpc_req_deadline_mono(const rpc_req *req);

#endif
