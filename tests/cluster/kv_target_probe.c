/* kv_target_probe HOST RANGE_ID GENERATION KEY: one kv.Get addressed to a
 * range by id and generation (as a client with a cached route sends it).
 * Prints "ok", or the error kind and, when the answer carries one, the
 * descriptor's range id and generation: "RANGE_MISMATCH range 2 generation 9".
 * For tests/cluster/merge_test.sh: a request for a range merged away must get
 * a retryable error carrying the range that holds the key now. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mtime.h"
#include "proto/kv.pb-c.h"
#include "server/cli_rpc.h"

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: kv_target_probe HOST RANGE_ID GENERATION KEY\n");
        return 2;
    }
    merr e = {0};
    cli_rpc *c = NULL;
    if (cli_rpc_open(argv[1], NULL, NULL, &c, &e)) {
        fprintf(stderr, "kv_target_probe: %s\n", e.msg);
        return 1;
    }
    Meridian__Kv__RangeTarget t = MERIDIAN__KV__RANGE_TARGET__INIT;
    t.range_id = strtoull(argv[2], NULL, 10);
    t.generation = strtoull(argv[3], NULL, 10);
    Meridian__Kv__GetRequest q = MERIDIAN__KV__GET_REQUEST__INIT;
    q.target = &t;
    q.key = (ProtobufCBinaryData){strlen(argv[4]), (uint8_t *)argv[4]};
    size_t len = meridian__kv__get_request__get_packed_size(&q);
    uint8_t *buf = malloc(len ? len : 1);
    mbuf reply = MBUF_INIT;
    int rc = buf ? 0 : 1;
    if (!rc) meridian__kv__get_request__pack(&q, buf);
    if (!rc && cli_rpc_call(c, "kv.Get", buf, len, 10 * MTIME_S, &reply, &e)) {
        fprintf(stderr, "kv_target_probe: %s\n", e.msg);
        rc = 1;
    }
    Meridian__Kv__GetResponse *r =
        rc ? NULL : meridian__kv__get_response__unpack(NULL, reply.len, reply.data);
    if (!rc && !r) {
        fprintf(stderr, "kv_target_probe: undecodable reply\n");
        rc = 1;
    }
    if (r && !r->error) {
        printf("ok\n");
    } else if (r) {
        const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(
            &meridian__kv__error_kind__descriptor, r->error->kind);
        printf("%s", v ? v->name : "?");
        if (r->error->descriptor)
            printf(" range %" PRIu64 " generation %" PRIu64, r->error->descriptor->range_id,
                   r->error->descriptor->generation);
        printf("\n");
    }
    if (r) meridian__kv__get_response__free_unpacked(r, NULL);
    mbuf_free(&reply);
    free(buf);
    cli_rpc_close(c);
    return rc;
}
