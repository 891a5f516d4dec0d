/* libFuzzer target: protobuf messages of every service on arbitrary bytes.
 * Mode 0 goes the way a request does: rpc envelope (rpc_env_decode), then the
 * payload unpacked as the request type its method names (kv.Get, node.Join,
 * ...). Otherwise the first byte picks one message type of kv.proto,
 * node.proto, rpc.proto, meta.proto or paxos.proto. Whatever unpacks must pass
 * protobuf-c's own check, repack to exactly get_packed_size bytes, and those
 * bytes must unpack and repack to themselves (no service ever sees a message
 * it cannot echo). Seeds: tests/fuzz/corpus/fuzz_proto/. */
#include "proto/kv.pb-c.h"
#include "proto/meta.pb-c.h"
#include "proto/node.pb-c.h"
#include "proto/paxos.pb-c.h"
#include "proto/rpc.pb-c.h"
#include "rpc/frame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const ProtobufCMessageDescriptor *const descs[] = {
    &meridian__kv__range_target__descriptor,
    &meridian__kv__error__descriptor,
    &meridian__kv__get_request__descriptor,
    &meridian__kv__get_response__descriptor,
    &meridian__kv__mutation__descriptor,
    &meridian__kv__write_request__descriptor,
    &meridian__kv__write_response__descriptor,
    &meridian__kv__scan_request__descriptor,
    &meridian__kv__key_value__descriptor,
    &meridian__kv__scan_response__descriptor,
    &meridian__node__init_request__descriptor,
    &meridian__node__init_response__descriptor,
    &meridian__node__status_request__descriptor,
    &meridian__node__status_response__descriptor,
    &meridian__node__peer__descriptor,
    &meridian__node__join_request__descriptor,
    &meridian__node__join_response__descriptor,
    &meridian__node__peers_message__descriptor,
    &meridian__rpc__envelope__descriptor,
    &meridian__rpc__handshake__descriptor,
    &meridian__rpc__handshake_reply__descriptor,
    &meridian__rpc__fault_spec__descriptor,
    &meridian__meta__locality__descriptor,
    &meridian__meta__replica_descriptor__descriptor,
    &meridian__meta__range_descriptor__descriptor,
    &meridian__meta__node_descriptor__descriptor,
    &meridian__paxos__ballot__descriptor,
    &meridian__paxos__entry__descriptor,
    &meridian__paxos__members__descriptor,
    &meridian__paxos__msg__descriptor,
};
#define NDESCS (sizeof descs / sizeof descs[0])

static const struct {
    const char *method;
    const ProtobufCMessageDescriptor *req;
} methods[] = {
    {"kv.Get", &meridian__kv__get_request__descriptor},
    {"kv.Write", &meridian__kv__write_request__descriptor},
    {"kv.Scan", &meridian__kv__scan_request__descriptor},
    {"node.Init", &meridian__node__init_request__descriptor},
    {"node.Status", &meridian__node__status_request__descriptor},
    {"node.Join", &meridian__node__join_request__descriptor},
    {"node.Peers", &meridian__node__peers_message__descriptor},
    {"paxos.msg", &meridian__paxos__msg__descriptor},
};

/* protobuf-c keeps fields it does not know, even field number 0 when the tag
 * is an overlong varint (80 00), and repacks that tag as 00, which it then
 * rejects. No service re-sends what it received, so the round trip is only
 * required of messages with no unknown fields at any depth. */
static int has_unknown(const ProtobufCMessage *m)
{
    if (m->n_unknown_fields) return 1;
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        if (f->type != PROTOBUF_C_TYPE_MESSAGE) continue;
        const char *base = (const char *)m;
        if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
            *(const uint32_t *)(base + f->quantifier_offset) != f->id)
            continue; /* another member of the union is set */
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)(base + f->quantifier_offset);
            ProtobufCMessage *const *arr = *(ProtobufCMessage *const *const *)(base + f->offset);
            for (size_t k = 0; k < n; k++)
                if (has_unknown(arr[k])) return 1;
        } else {
            const ProtobufCMessage *sub = *(const ProtobufCMessage *const *)(base + f->offset);
            if (sub && has_unknown(sub)) return 1;
        }
    }
    return 0;
}

static void roundtrip(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n)
{
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, n, p);
    if (!m) return;
    if (!protobuf_c_message_check(m)) abort();
    size_t sz = protobuf_c_message_get_packed_size(m);
    uint8_t *a = malloc(sz ? sz : 1);
    if (!a) abort();
    if (protobuf_c_message_pack(m, a) != sz) abort();
    if (has_unknown(m)) {
        free(a);
        protobuf_c_message_free_unpacked(m, NULL);
        return;
    }
    ProtobufCMessage *m2 = protobuf_c_message_unpack(d, NULL, sz, a);
    if (!m2) abort(); /* what we packed must unpack */
    size_t sz2 = protobuf_c_message_get_packed_size(m2);
    uint8_t *b = malloc(sz2 ? sz2 : 1);
    if (!b) abort();
    if (protobuf_c_message_pack(m2, b) != sz2) abort();
    if (sz2 != sz || memcmp(a, b, sz) != 0) abort();
    free(a);
    free(b);
    protobuf_c_message_free_unpacked(m2, NULL);
    protobuf_c_message_free_unpacked(m, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    uint8_t sel = data[0];
    data++;
    size--;
    if (sel == 0) {
        rpc_arena a;
        rpc_arena_init(&a);
        rpc_env env;
        merr e = {0};
        if (rpc_env_decode(data, size, &a, &env, &e) == 0) {
            if (!env.method || (env.payload_len && !env.payload)) abort();
            for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
                if (!strcmp(env.method, methods[i].method))
                    roundtrip(methods[i].req, env.payload, env.payload_len);
        } else if (!e.msg[0]) {
            abort(); /* a rejection always says why */
        }
        rpc_arena_destroy(&a);
        return 0;
    }
    roundtrip(descs[(sel - 1) % NDESCS], data, size);
    return 0;
}
