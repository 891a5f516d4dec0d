/* Wire schemas: round trips of the shared messages, and protobuf-c refusing
 * truncated or garbage input instead of reading past it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "kv.pb-c.h"
#include "meta.pb-c.h"
#include "rpc.pb-c.h"

static void test_descriptor_roundtrip_and_truncation(void **state)
{
    (void)state;
    Meridian__Meta__ReplicaDescriptor r1 = MERIDIAN__META__REPLICA_DESCRIPTOR__INIT;
    Meridian__Meta__ReplicaDescriptor r2 = MERIDIAN__META__REPLICA_DESCRIPTOR__INIT;
    r1.node_id = 1;
    r1.type = MERIDIAN__META__REPLICA_TYPE__VOTER;
    r2.node_id = 4;
    r2.type = MERIDIAN__META__REPLICA_TYPE__LEARNER;
    Meridian__Meta__ReplicaDescriptor *reps[] = {&r1, &r2};
    Meridian__Meta__RangeDescriptor d = MERIDIAN__META__RANGE_DESCRIPTOR__INIT;
    d.range_id = 42;
    d.start_key.data = (uint8_t *)"a\0b";
    d.start_key.len = 3;
    d.generation = 7;
    d.n_replicas = 2;
    d.replicas = reps;
    size_t n = meridian__meta__range_descriptor__get_packed_size(&d);
    uint8_t *buf = malloc(n);
    assert_int_equal(meridian__meta__range_descriptor__pack(&d, buf), n);

    Meridian__Meta__RangeDescriptor *back = meridian__meta__range_descriptor__unpack(NULL, n, buf);
    assert_non_null(back);
    assert_int_equal(back->range_id, 42);
    assert_int_equal(back->generation, 7);
    assert_int_equal(back->start_key.len, 3);
    assert_memory_equal(back->start_key.data, "a\0b", 3);
    assert_int_equal(back->end_key.len, 0); /* +infinity */
    assert_int_equal(back->n_replicas, 2);
    assert_int_equal(back->replicas[1]->type, MERIDIAN__META__REPLICA_TYPE__LEARNER);
    meridian__meta__range_descriptor__free_unpacked(back, NULL);

    /* Every strict prefix that cuts a field short is refused. */
    int refused = 0;
    for (size_t cut = 1; cut < n; cut++) {
        Meridian__Meta__RangeDescriptor *t =
            meridian__meta__range_descriptor__unpack(NULL, cut, buf);
        if (t)
            meridian__meta__range_descriptor__free_unpacked(t, NULL);
        else
            refused++;
    }
    assert_true(refused > 0);
    free(buf);
}

static void test_kv_error_carries_descriptor(void **state)
{
    (void)state;
    Meridian__Meta__RangeDescriptor d = MERIDIAN__META__RANGE_DESCRIPTOR__INIT;
    d.range_id = 9;
    d.generation = 3;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    err.kind = MERIDIAN__KV__ERROR_KIND__RANGE_MISMATCH;
    err.message = "key outside range";
    err.descriptor = &d;
    Meridian__Kv__GetResponse resp = MERIDIAN__KV__GET_RESPONSE__INIT;
    resp.error = &err;
    size_t n = meridian__kv__get_response__get_packed_size(&resp);
    uint8_t buf[256];
    assert_true(n <= sizeof(buf));
    meridian__kv__get_response__pack(&resp, buf);
    Meridian__Kv__GetResponse *back = meridian__kv__get_response__unpack(NULL, n, buf);
    assert_non_null(back);
    assert_non_null(back->error);
    assert_int_equal(back->error->kind, MERIDIAN__KV__ERROR_KIND__RANGE_MISMATCH);
    assert_int_equal(back->error->descriptor->range_id, 9);
    assert_string_equal(back->error->message, "key outside range");
    meridian__kv__get_response__free_unpacked(back, NULL);
}

static void test_garbage_refused(void **state)
{
    (void)state;
    /* A length-delimited field claiming more bytes than exist, a bad wire
     * type, and an overlong varint. */
    const uint8_t g1[] = {0x12, 0x7f, 'a'};
    const uint8_t g2[] = {0x0f, 0x01};
    const uint8_t g3[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_null(meridian__meta__range_descriptor__unpack(NULL, sizeof(g1), g1));
    assert_null(meridian__meta__range_descriptor__unpack(NULL, sizeof(g2), g2));
    assert_null(meridian__meta__range_descriptor__unpack(NULL, sizeof(g3), g3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor_roundtrip_and_truncation),
        cmocka_unit_test(test_kv_error_carries_descriptor),
        cmocka_unit_test(test_garbage_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
