/* Frames and envelopes: incremental frame decoder, envelope encode/decode
 * (see frame.h). No I/O, no clocks: unit-tested and fuzzed directly. */
#include "rpc/frame.h"
#include "proto/rpc.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

void rpc_arena_init(rpc_arena *a)
{
    a->used = 0;
    a->big = NULL;
    a->nbig = a->capbig = 0;
}

void rpc_arena_reset(rpc_arena *a)
{
    for (size_t i = 0; i < a->nbig; i++) free(a->big[i]);
    a->nbig = 0;
    a->used = 0;
}

static void arena_free_all(rpc_arena *a)
{
    rpc_arena_reset(a);
    free(a->big);
    a->big = NULL;
    a->capbig = 0;
}

static void *arena_alloc(void *ctx, size_t n)
{
    rpc_arena *a = ctx;
    size_t need = (n + 15) & ~(size_t)15;
    if (need >= n && need <= sizeof(a->small) - a->used) {
        void *p = a->small + a->used;
        a->used += need;
        return p;
    }
    if (a->nbig == a->capbig) {
        size_t cap = a->capbig ? a->capbig * 2 : 8;
        void **nb = realloc(a->big, cap * sizeof(*nb));
        if (!nb) return NULL;
        a->big = nb;
        a->capbig = cap;
    }
    void *p = malloc(n ? n : 1);
    if (p) a->big[a->nbig++] = p;
    return p;
}

static void arena_noop_free(void *ctx, void *p)
{
    /* Everything goes at once in rpc_arena_reset. */
    (void)ctx;
    (void)p;
}

/* ---- decoder ---- */

void rpc_decoder_init(rpc_decoder *d, size_t max_frame)
{
    mbuf_init(&d->buf);
    d->head = 0;
    d->max_frame = max_frame ? max_frame : RPC_MAX_FRAME_DEFAULT;
    d->frames = d->bytes = 0;
}

void rpc_decoder_free(rpc_decoder *d)
{
    mbuf_free(&d->buf);
    d->head = 0;
}

size_t rpc_decoder_pending(const rpc_decoder *d)
{
    return d->buf.len - d->head;
}

/* Moves unconsumed bytes to the front so the buffer does not grow forever. */
static void decoder_compact(rpc_decoder *d)
{
    if (d->head == 0) return;
    size_t left = d->buf.len - d->head;
    if (left) memmove(d->buf.data, d->buf.data + d->head, left);
    d->buf.len = left;
    d->head = 0;
}

int rpc_decoder_space(rpc_decoder *d, size_t want, uint8_t **p, size_t *cap)
{
    decoder_compact(d);
    int rc = mbuf_reserve(&d->buf, want);
    if (rc) return rc;
    *p = d->buf.data + d->buf.len;
    *cap = d->buf.cap - d->buf.len;
    return 0;
}

void rpc_decoder_commit(rpc_decoder *d, size_t n)
{
    d->buf.len += n;
    d->bytes += n;
}

int rpc_decoder_feed(rpc_decoder *d, const void *p, size_t n)
{
    uint8_t *dst;
    size_t cap;
    if (n == 0) return 0;
    int rc = rpc_decoder_space(d, n, &dst, &cap);
    if (rc) return rc;
    memcpy(dst, p, n);
    rpc_decoder_commit(d, n);
    return 0;
}

int rpc_decoder_next(rpc_decoder *d, const uint8_t **p, size_t *n, merr *e)
{
    size_t left = d->buf.len - d->head;
    if (left < RPC_FRAME_HEADER) return 0;
    uint32_t len = mbe32_get(d->buf.data + d->head);
    if (len == 0) return merr_set(e, MERR_CORRUPT, "empty frame (length 0)");
    if (len > d->max_frame)
        return merr_set(e, MERR_TOOBIG, "frame of %u bytes exceeds the maximum of %zu", len,
                        d->max_frame);
    if (left - RPC_FRAME_HEADER < len) return 0;
    *p = d->buf.data + d->head + RPC_FRAME_HEADER;
    *n = len;
    d->head += RPC_FRAME_HEADER + (size_t)len;
    d->frames++;
    if (d->head == d->buf.len) d->head = d->buf.len = 0;
    return 1;
}

int rpc_decoder_finish(const rpc_decoder *d, merr *e)
{
    size_t left = d->buf.len - d->head;
    if (left == 0) return 0;
    return merr_set(e, MERR_CORRUPT, "truncated frame: %zu bytes left at end of stream", left);
}

/* ---- envelopes ---- */

const char *rpc_kind_name(int kind)
{
    static const char *names[] = {"UNSPECIFIED", "REQUEST",        "RESPONSE", "ONEWAY",
                                  "STREAM",      "STREAM_END",     "CANCEL",   "STREAM_CREDIT",
                                  "HANDSHAKE",   "HANDSHAKE_REPLY"};
    if (kind < 0 || kind >= (int)(sizeof(names) / sizeof(names[0]))) return "UNKNOWN";
    return names[kind];
}

static void env_to_pb(const rpc_env *env, Meridian__Rpc__Envelope *pb)
{
    meridian__rpc__envelope__init(pb);
    pb->protocol_version = env->version ? env->version : RPC_PROTOCOL_VERSION;
    pb->kind = (Meridian__Rpc__Kind)env->kind;
    pb->request_id = env->id;
    /* protobuf-c wants non-const strings; it only reads them when packing. */
    pb->method = (char *)(env->method ? env->method : "");
    pb->deadline_unix_us = env->deadline_us > 0 ? (uint64_t)env->deadline_us : 0;
    pb->payload.data = (uint8_t *)env->payload;
    pb->payload.len = env->payload ? env->payload_len : 0;
    pb->error_code = env->error_code;
    pb->error_message = (char *)(env->error_msg ? env->error_msg : "");
    pb->credit = env->credit;
}

size_t rpc_env_frame_size(const rpc_env *env)
{
    Meridian__Rpc__Envelope pb;
    env_to_pb(env, &pb);
    return RPC_FRAME_HEADER + meridian__rpc__envelope__get_packed_size(&pb);
}

int rpc_env_encode(const rpc_env *env, size_t max_frame, mbuf *out, merr *e)
{
    Meridian__Rpc__Envelope pb;
    env_to_pb(env, &pb);
    size_t n = meridian__rpc__envelope__get_packed_size(&pb);
    if (n > (max_frame ? max_frame : RPC_MAX_FRAME_DEFAULT) || n > UINT32_MAX)
        return merr_set(e, MERR_TOOBIG, "envelope of %zu bytes exceeds the maximum frame", n);
    int rc = mbuf_reserve(out, RPC_FRAME_HEADER + n + 2);
    if (rc) return merr_set(e, rc, "encode envelope: out of memory");
    uint8_t *p = out->data + out->len;
    size_t packed = meridian__rpc__envelope__pack(&pb, p + RPC_FRAME_HEADER);
    if (packed == 0) {
        /* Never happens for a valid kind (kind != 0 is always packed), but
         * keep frames non-empty: an empty frame is malformed on the wire. */
        return merr_set(e, MERR_INVALID, "encode envelope: empty envelope");
    }
    mbe32_put(p, (uint32_t)packed);
    out->len += RPC_FRAME_HEADER + packed;
    return 0;
}

int rpc_env_decode(const uint8_t *p, size_t n, rpc_arena *a, rpc_env *env, merr *e)
{
    ProtobufCAllocator alloc = {arena_alloc, arena_noop_free, a};
    Meridian__Rpc__Envelope *pb = meridian__rpc__envelope__unpack(&alloc, n, p);
    if (!pb) return merr_set(e, MERR_CORRUPT, "undecodable envelope (%zu bytes)", n);
    memset(env, 0, sizeof(*env));
    env->version = pb->protocol_version;
    env->kind = (int)pb->kind;
    env->id = pb->request_id;
    env->method = pb->method ? pb->method : "";
    env->deadline_us =
        pb->deadline_unix_us > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)pb->deadline_unix_us;
    env->payload = pb->payload.data;
    env->payload_len = pb->payload.len;
    env->error_code = pb->error_code;
    env->error_msg = pb->error_message ? pb->error_message : "";
    env->credit = pb->credit;
    /* The Envelope struct itself came from the arena; nothing to free. */
    if (env->version != RPC_PROTOCOL_VERSION)
        return merr_set(e, MERR_PROTOCOL, "protocol version %u, expected %u", env->version,
                        RPC_PROTOCOL_VERSION);
    if (env->kind < RPC_KIND_REQUEST || env->kind > RPC_KIND_HANDSHAKE_REPLY)
        return merr_set(e, MERR_PROTOCOL, "unknown envelope kind %d", env->kind);
    if ((env->kind == RPC_KIND_REQUEST || env->kind == RPC_KIND_ONEWAY) && !env->method[0])
        return merr_set(e, MERR_PROTOCOL, "%s without a method", rpc_kind_name(env->kind));
    if (env->id == 0 && env->kind != RPC_KIND_ONEWAY && env->kind != RPC_KIND_HANDSHAKE &&
        env->kind != RPC_KIND_HANDSHAKE_REPLY)
        return merr_set(e, MERR_PROTOCOL, "%s without a request id", rpc_kind_name(env->kind));
    if (env->error_code > 0)
        return merr_set(e, MERR_PROTOCOL, "unknown error code %d", env->error_code);
    return 0;
}

void rpc_arena_destroy(rpc_arena *a)
{
    arena_free_all(a);
}
