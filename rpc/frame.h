/* Frames and envelopes: the pure, I/O-free edge of the rpc wire format.
 *
 * A frame is a 4-byte big-endian length N (1 <= N <= max_frame) followed by N
 * bytes holding one protobuf Envelope (proto/rpc.proto). The decoder is an
 * incremental state machine: bytes go in (in any split or coalesced pieces),
 * whole frames come out, and anything malformed becomes an error code plus a
 * reason; it never reads out of bounds and never allocates more than one
 * frame's worth (the length is checked before the body is buffered). The
 * connection code reads straight into the decoder's buffer (space/commit), so
 * the socket bytes are copied once. Protobuf stays here: the rest of rpc sees
 * rpc_env, a plain C struct. */
#ifndef MERIDIAN_RPC_FRAME_H
#define MERIDIAN_RPC_FRAME_H

#include "common/buf.h"
#include "common/err.h"

#include <stddef.h>
#include <stdint.h>

#define RPC_PROTOCOL_VERSION  1
#define RPC_FRAME_HEADER      4
#define RPC_MAX_FRAME_DEFAULT (64u << 20)
/* Frames before the rpc handshake completed (Handshake, HandshakeReply:
 * under 2 KiB): a peer nobody knows yet cannot make a node buffer more. */
#define RPC_HANDSHAKE_FRAME_MAX (64u << 10)

/* Envelope kinds; equal to the proto enum values. */
enum rpc_kind {
    RPC_KIND_REQUEST = 1,
    RPC_KIND_RESPONSE = 2,
    RPC_KIND_ONEWAY = 3,
    RPC_KIND_STREAM = 4,
    RPC_KIND_STREAM_END = 5,
    RPC_KIND_CANCEL = 6,
    RPC_KIND_STREAM_CREDIT = 7,
    RPC_KIND_HANDSHAKE = 8,
    RPC_KIND_HANDSHAKE_REPLY = 9,
};

/* The C view of an Envelope. Pointers borrow from the decoded frame (or, when
 * encoding, from the caller) and live as long as it. */
typedef struct rpc_env {
    uint32_t version;
    int kind;
    uint64_t id;
    const char *method;  /* "" when absent */
    int64_t deadline_us; /* absolute, Unix microseconds; 0 = none */
    const uint8_t *payload;
    size_t payload_len;
    int error_code; /* 0 or a MERR_* code */
    const char *error_msg;
    uint32_t credit;
} rpc_env;

/* A bump allocator for protobuf-c unpacking, reset after each frame, so the
 * hot path does not malloc per message. Big requests fall back to malloc. */
typedef struct rpc_arena {
    uint8_t small[8192];
    size_t used;
    void **big;
    size_t nbig, capbig;
} rpc_arena;

void rpc_arena_init(rpc_arena *a);
void rpc_arena_reset(rpc_arena *a);   /* frees big blocks, keeps `small` */
void rpc_arena_destroy(rpc_arena *a); /* frees everything */

typedef struct rpc_decoder {
    mbuf buf;
    size_t head; /* start of unconsumed bytes in buf */
    size_t max_frame;
    uint64_t frames, bytes;
} rpc_decoder;

void rpc_decoder_init(rpc_decoder *d, size_t max_frame);
void rpc_decoder_free(rpc_decoder *d);
/* Copies n bytes in. Returns 0 or MERR_NOMEM. */
int rpc_decoder_feed(rpc_decoder *d, const void *p, size_t n);
/* Zero-copy input: room for at least `want` bytes at *p (cap in *cap); the
 * caller writes into it and then calls commit with how many bytes it wrote. */
int rpc_decoder_space(rpc_decoder *d, size_t want, uint8_t **p, size_t *cap);
void rpc_decoder_commit(rpc_decoder *d, size_t n);
/* Takes the next whole frame body: returns 1 (frame in *p, length in *n, valid until the
 * next feed/space call), 0 (need more bytes), or a negative MERR code with a
 * reason in e: MERR_TOOBIG (length over max_frame) or MERR_CORRUPT (length 0).
 * After an error the decoder must not be used again. */
int rpc_decoder_next(rpc_decoder *d, const uint8_t **p, size_t *n, merr *e);
/* At end of stream: 0 if no partial frame is buffered, else MERR_CORRUPT
 * ("truncated frame"). */
int rpc_decoder_finish(const rpc_decoder *d, merr *e);
/* Bytes buffered but not yet returned as frames. */
size_t rpc_decoder_pending(const rpc_decoder *d);

/* Appends one frame (length prefix + packed Envelope) to out. Returns 0,
 * MERR_TOOBIG when the envelope exceeds max_frame, or MERR_NOMEM. */
int rpc_env_encode(const rpc_env *env, size_t max_frame, mbuf *out, merr *e);
/* Bytes rpc_env_encode would append. */
size_t rpc_env_frame_size(const rpc_env *env);
/* Decodes a frame body into env, allocating from the arena. Validates what
 * the protocol needs: a known kind, version RPC_PROTOCOL_VERSION, a method on
 * REQUEST/ONEWAY, a non-zero id on everything but ONEWAY and handshakes.
 * Returns 0, MERR_CORRUPT (not protobuf) or MERR_PROTOCOL, with a reason. */
int rpc_env_decode(const uint8_t *p, size_t n, rpc_arena *a, rpc_env *env, merr *e);

const char *rpc_kind_name(int kind);

#endif
