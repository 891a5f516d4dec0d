/* Encode/decode of Paxos wire messages (proto/paxos.proto) for the transport
 * glue. Decoding treats the bytes as hostile: anything malformed or out of
 * range is MERR_CORRUPT with a message, never a crash or a half-filled struct. */
#ifndef MERIDIAN_REPLICATION_PAXOS_CODEC_H
#define MERIDIAN_REPLICATION_PAXOS_CODEC_H

#include "common/err.h"
#include "replication/paxos.h"

#include <stddef.h>
#include <stdint.h>

#define PAXOS_CODEC_MAX_ENTRIES 65536
#define PAXOS_CODEC_MAX_BYTES   (64u << 20)

/* *out is malloc'ed; the caller frees it. Returns 0, MERR_NOMEM or MERR_INVALID. */
int paxos_msg_encode(const paxos_msg *m, uint8_t **out, size_t *len);
/* Fills *m (free with paxos_msg_free) or returns MERR_CORRUPT/MERR_NOMEM with
 * *m zeroed and `e` explaining. */
int paxos_msg_decode(const uint8_t *p, size_t len, paxos_msg *m, merr *e);

#endif
