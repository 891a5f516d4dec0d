/* Frame decoder and envelope codec: split and coalesced input, every
 * malformed case (empty, oversized, truncated, undecodable, bad kind,
 * version, missing method/id), round trips. */
#include "rpc/frame.h"
#include "proto/rpc.pb-c.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static void encode_req(mbuf *out, uint64_t id, const char *method, const char *payload)
{
    rpc_env env = {.kind = RPC_KIND_REQUEST,
                   .id = id,
                   .method = method,
                   .deadline_us = 1234567,
                   .payload = (const uint8_t *)payload,
                   .payload_len = strlen(payload)};
    merr e = {0};
    assert_int_equal(rpc_env_encode(&env, 0, out, &e), 0);
}

/* Decodes every whole frame in d, checking ids come in order from *next. */
static int drain(rpc_decoder *d, rpc_arena *a, uint64_t *next)
{
    int got = 0;
    const uint8_t *p;
    size_t n;
    merr e = {0};
    int r;
    while ((r = rpc_decoder_next(d, &p, &n, &e)) == 1) {
        rpc_env env;
        assert_int_equal(rpc_env_decode(p, n, a, &env, &e), 0);
        assert_int_equal(env.kind, RPC_KIND_REQUEST);
        assert_int_equal(env.id, *next);
        assert_string_equal(env.method, "kv.get");
        assert_int_equal(env.deadline_us, 1234567);
        assert_int_equal(env.payload_len, 5);
        assert_memory_equal(env.payload, "hello", 5);
        (*next)++;
        got++;
        rpc_arena_reset(a);
    }
    assert_int_equal(r, 0);
    return got;
}

static void test_roundtrip_and_sizes(void **state)
{
    (void)state;
    mbuf b = MBUF_INIT;
    rpc_env env = {.kind = RPC_KIND_RESPONSE,
                   .id = 7,
                   .error_code = MERR_NOT_LEADER,
                   .error_msg = "go away",
                   .payload = (const uint8_t *)"xyz",
                   .payload_len = 3};
    merr e = {0};
    assert_int_equal(rpc_env_encode(&env, 0, &b, &e), 0);
    assert_int_equal(b.len, rpc_env_frame_size(&env));
    assert_int_equal(mbe32_get(b.data), b.len - 4);
    rpc_arena a;
    rpc_arena_init(&a);
    rpc_env out;
    assert_int_equal(rpc_env_decode(b.data + 4, b.len - 4, &a, &out, &e), 0);
    assert_int_equal(out.version, RPC_PROTOCOL_VERSION);
    assert_int_equal(out.kind, RPC_KIND_RESPONSE);
    assert_int_equal(out.id, 7);
    assert_int_equal(out.error_code, MERR_NOT_LEADER);
    assert_string_equal(out.error_msg, "go away");
    assert_memory_equal(out.payload, "xyz", 3);
    rpc_arena_destroy(&a);
    mbuf_free(&b);
}

static void test_split_reads_every_boundary(void **state)
{
    (void)state;
    mbuf b = MBUF_INIT;
    for (uint64_t i = 1; i <= 3; i++) encode_req(&b, i, "kv.get", "hello");
    /* Feed the three frames cut at every possible pair of split points. */
    for (size_t cut1 = 0; cut1 <= b.len; cut1++) {
        for (size_t cut2 = cut1; cut2 <= b.len; cut2 += 7) {
            rpc_decoder d;
            rpc_arena a;
            rpc_decoder_init(&d, 1024);
            rpc_arena_init(&a);
            uint64_t next = 1;
            int got = 0;
            assert_int_equal(rpc_decoder_feed(&d, b.data, cut1), 0);
            got += drain(&d, &a, &next);
            assert_int_equal(rpc_decoder_feed(&d, b.data + cut1, cut2 - cut1), 0);
            got += drain(&d, &a, &next);
            assert_int_equal(rpc_decoder_feed(&d, b.data + cut2, b.len - cut2), 0);
            got += drain(&d, &a, &next);
            assert_int_equal(got, 3);
            assert_int_equal(rpc_decoder_finish(&d, NULL), 0);
            rpc_decoder_free(&d);
            rpc_arena_destroy(&a);
        }
    }
    mbuf_free(&b);
}

static void test_byte_at_a_time_and_coalesced(void **state)
{
    (void)state;
    mbuf b = MBUF_INIT;
    for (uint64_t i = 1; i <= 200; i++) encode_req(&b, i, "kv.get", "hello");
    rpc_decoder d;
    rpc_arena a;
    rpc_arena_init(&a);
    uint64_t next = 1;
    int got = 0;
    rpc_decoder_init(&d, 1024);
    for (size_t i = 0; i < b.len; i++) {
        /* Through the zero-copy path, one byte at a time. */
        uint8_t *p;
        size_t cap;
        assert_int_equal(rpc_decoder_space(&d, 1, &p, &cap), 0);
        assert_true(cap >= 1);
        *p = b.data[i];
        rpc_decoder_commit(&d, 1);
        got += drain(&d, &a, &next);
    }
    assert_int_equal(got, 200);
    rpc_decoder_free(&d);
    /* All 200 frames in one read. */
    rpc_decoder_init(&d, 1024);
    next = 1;
    assert_int_equal(rpc_decoder_feed(&d, b.data, b.len), 0);
    assert_int_equal(drain(&d, &a, &next), 200);
    assert_int_equal(rpc_decoder_pending(&d), 0);
    rpc_decoder_free(&d);
    rpc_arena_destroy(&a);
    mbuf_free(&b);
}

static void test_oversized_rejected_from_header(void **state)
{
    (void)state;
    rpc_decoder d;
    rpc_decoder_init(&d, 100);
    uint8_t hdr[4];
    mbe32_put(hdr, 101);
    assert_int_equal(rpc_decoder_feed(&d, hdr, 4), 0);
    const uint8_t *p;
    size_t n;
    merr e = {0};
    /* Refused as soon as the length is known: no body is buffered. */
    assert_int_equal(rpc_decoder_next(&d, &p, &n, &e), MERR_TOOBIG);
    assert_non_null(strstr(e.msg, "exceeds the maximum"));
    rpc_decoder_free(&d);
    /* Exactly at the limit is fine. */
    rpc_decoder_init(&d, 100);
    uint8_t frame[104] = {0};
    mbe32_put(frame, 100);
    assert_int_equal(rpc_decoder_feed(&d, frame, sizeof(frame)), 0);
    assert_int_equal(rpc_decoder_next(&d, &p, &n, &e), 1);
    assert_int_equal(n, 100);
    rpc_decoder_free(&d);
    /* 0xFFFFFFFF with the default 64 MiB limit. */
    rpc_decoder_init(&d, 0);
    memset(hdr, 0xff, 4);
    assert_int_equal(rpc_decoder_feed(&d, hdr, 4), 0);
    assert_int_equal(rpc_decoder_next(&d, &p, &n, &e), MERR_TOOBIG);
    rpc_decoder_free(&d);
}

static void test_empty_and_truncated(void **state)
{
    (void)state;
    rpc_decoder d;
    const uint8_t *p;
    size_t n;
    merr e = {0};
    rpc_decoder_init(&d, 100);
    uint8_t zero[4] = {0};
    assert_int_equal(rpc_decoder_feed(&d, zero, 4), 0);
    assert_int_equal(rpc_decoder_next(&d, &p, &n, &e), MERR_CORRUPT);
    rpc_decoder_free(&d);
    /* A header alone, then half a body: truncated at end of stream. */
    rpc_decoder_init(&d, 100);
    assert_int_equal(rpc_decoder_finish(&d, &e), 0);
    uint8_t part[3] = {0, 0, 0};
    assert_int_equal(rpc_decoder_feed(&d, part, 3), 0);
    assert_int_equal(rpc_decoder_next(&d, &p, &n, &e), 0);
    assert_int_equal(rpc_decoder_finish(&d, &e), MERR_CORRUPT);
    assert_non_null(strstr(e.msg, "truncated"));
    uint8_t rest[6] = {10, 1, 2, 3, 4, 5};
    assert_int_equal(rpc_decoder_feed(&d, rest, sizeof(rest)), 0);
    assert_int_equal(rpc_decoder_next(&d, &p, &n, &e), 0);
    assert_int_equal(rpc_decoder_pending(&d), 9);
    assert_int_equal(rpc_decoder_finish(&d, &e), MERR_CORRUPT);
    rpc_decoder_free(&d);
}

static int decode_raw(const uint8_t *p, size_t n, merr *e)
{
    rpc_arena a;
    rpc_arena_init(&a);
    rpc_env env;
    int rc = rpc_env_decode(p, n, &a, &env, e);
    rpc_arena_destroy(&a);
    return rc;
}

static int decode_pb(Meridian__Rpc__Envelope *pb, merr *e)
{
    uint8_t buf[512];
    size_t n = meridian__rpc__envelope__pack(pb, buf);
    return decode_raw(buf, n, e);
}

static void test_malformed_envelopes(void **state)
{
    (void)state;
    merr e = {0};
    /* Not protobuf: a field with wire type 7. */
    uint8_t junk[] = {0x0f, 0xff, 0xff, 0xff};
    assert_int_equal(decode_raw(junk, sizeof(junk), &e), MERR_CORRUPT);
    /* A length-delimited field running past the end. */
    uint8_t shortlen[] = {0x22, 0x40, 'a'};
    assert_int_equal(decode_raw(shortlen, sizeof(shortlen), &e), MERR_CORRUPT);

    Meridian__Rpc__Envelope pb = MERIDIAN__RPC__ENVELOPE__INIT;
    pb.protocol_version = 1;
    pb.kind = MERIDIAN__RPC__KIND__REQUEST;
    pb.request_id = 1;
    pb.method = "m";
    assert_int_equal(decode_pb(&pb, &e), 0);
    pb.protocol_version = 2;
    assert_int_equal(decode_pb(&pb, &e), MERR_PROTOCOL);
    assert_non_null(strstr(e.msg, "version"));
    pb.protocol_version = 1;
    pb.kind = 0;
    assert_int_equal(decode_pb(&pb, &e), MERR_PROTOCOL);
    pb.kind = 42;
    assert_int_equal(decode_pb(&pb, &e), MERR_PROTOCOL);
    assert_non_null(strstr(e.msg, "kind"));
    pb.kind = MERIDIAN__RPC__KIND__REQUEST;
    pb.method = "";
    assert_int_equal(decode_pb(&pb, &e), MERR_PROTOCOL);
    assert_non_null(strstr(e.msg, "method"));
    pb.method = "m";
    pb.request_id = 0;
    assert_int_equal(decode_pb(&pb, &e), MERR_PROTOCOL);
    pb.kind = MERIDIAN__RPC__KIND__ONEWAY; /* one-way needs no id */
    assert_int_equal(decode_pb(&pb, &e), 0);
    pb.kind = MERIDIAN__RPC__KIND__RESPONSE;
    pb.request_id = 3;
    pb.error_code = 5; /* error codes are <= 0 */
    assert_int_equal(decode_pb(&pb, &e), MERR_PROTOCOL);
}

static void test_encode_too_big(void **state)
{
    (void)state;
    static uint8_t big[2000];
    rpc_env env = {.kind = RPC_KIND_ONEWAY, .method = "m", .payload = big, .payload_len = 2000};
    mbuf b = MBUF_INIT;
    merr e = {0};
    assert_int_equal(rpc_env_encode(&env, 1000, &b, &e), MERR_TOOBIG);
    assert_int_equal(b.len, 0);
    mbuf_free(&b);
}

static void test_arena_large_payload(void **state)
{
    (void)state;
    /* A payload bigger than the arena's inline block falls back to malloc
     * and is freed by reset (ASan checks). */
    size_t len = 100000;
    uint8_t *big = malloc(len);
    memset(big, 'z', len);
    rpc_env env = {.kind = RPC_KIND_ONEWAY, .method = "m", .payload = big, .payload_len = len};
    mbuf b = MBUF_INIT;
    merr e = {0};
    assert_int_equal(rpc_env_encode(&env, 0, &b, &e), 0);
    rpc_arena a;
    rpc_arena_init(&a);
    rpc_env out;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rpc_env_decode(b.data + 4, b.len - 4, &a, &out, &e), 0);
        assert_int_equal(out.payload_len, len);
        assert_memory_equal(out.payload, big, len);
        rpc_arena_reset(&a);
    }
    rpc_arena_destroy(&a);
    mbuf_free(&b);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_sizes),
        cmocka_unit_test(test_split_reads_every_boundary),
        cmocka_unit_test(test_byte_at_a_time_and_coalesced),
        cmocka_unit_test(test_oversized_rejected_from_header),
        cmocka_unit_test(test_empty_and_truncated),
        cmocka_unit_test(test_malformed_envelopes),
        cmocka_unit_test(test_encode_too_big),
        cmocka_unit_test(test_arena_large_payload),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
