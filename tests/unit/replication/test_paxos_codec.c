/* Paxos wire codec: round trips of every field, and rejection (never a crash)
 * of malformed, truncated and out-of-range input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "replication/paxos.h"
#include "replication/paxos_codec.h"

static void full_msg(paxos_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = PAXOS_MSG_PROMISE;
    m->flags = PAXOS_F_BEHIND | PAXOS_F_TRANSFER;
    m->group = 0x1122334455667788ULL;
    m->from = 3;
    m->to = 9;
    m->ballot.round = 77;
    m->ballot.node = 3;
    m->slot = 1000;
    m->commit = 999;
    m->lease_start = -5; /* clocks may read before the epoch in tests */
    m->lease_epoch = 4;
    m->aux = 2;
    m->offset = 4096;
    m->total = 65536;
    m->members.nvoters = 3;
    m->members.voters[0] = 1;
    m->members.voters[1] = 2;
    m->members.voters[2] = 3;
    m->members.nlearners = 1;
    m->members.learners[0] = 9;
    m->nentries = 3;
    m->entries = calloc(3, sizeof(*m->entries));
    for (uint32_t i = 0; i < 3; i++) {
        m->entries[i].slot = 1000 + i;
        m->entries[i].ballot.round = 70 + i;
        m->entries[i].ballot.node = 1 + i;
        m->entries[i].type = (uint8_t)(PAXOS_ENTRY_NOOP + i);
        if (i) {
            m->entries[i].len = 5 * i;
            m->entries[i].data = malloc(m->entries[i].len);
            memset(m->entries[i].data, 'a' + (int)i, m->entries[i].len);
        }
    }
    m->len = 7;
    m->data = malloc(7);
    memcpy(m->data, "snapsho", 7);
}

static void test_round_trip(void **state)
{
    (void)state;
    paxos_msg m, d;
    full_msg(&m);
    uint8_t *buf;
    size_t len;
    assert_int_equal(paxos_msg_encode(&m, &buf, &len), 0);
    merr e = {0};
    assert_int_equal(paxos_msg_decode(buf, len, &d, &e), 0);
    assert_int_equal(d.type, m.type);
    assert_int_equal(d.flags, m.flags);
    assert_true(d.group == m.group);
    assert_int_equal(d.from, 3);
    assert_int_equal(d.to, 9);
    assert_int_equal(paxos_ballot_cmp(d.ballot, m.ballot), 0);
    assert_int_equal(d.slot, 1000);
    assert_int_equal(d.commit, 999);
    assert_int_equal(d.lease_start, -5);
    assert_int_equal(d.lease_epoch, 4);
    assert_int_equal(d.aux, 2);
    assert_int_equal(d.offset, 4096);
    assert_int_equal(d.total, 65536);
    assert_memory_equal(&d.members, &m.members, sizeof(m.members));
    assert_int_equal(d.nentries, 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(d.entries[i].slot, m.entries[i].slot);
        assert_int_equal(paxos_ballot_cmp(d.entries[i].ballot, m.entries[i].ballot), 0);
        assert_int_equal(d.entries[i].type, m.entries[i].type);
        assert_int_equal(d.entries[i].len, m.entries[i].len);
        if (m.entries[i].len)
            assert_memory_equal(d.entries[i].data, m.entries[i].data, m.entries[i].len);
    }
    assert_int_equal(d.len, 7);
    assert_memory_equal(d.data, "snapsho", 7);
    /* paxos_msg_copy is deep. */
    paxos_msg cp;
    assert_int_equal(paxos_msg_copy(&cp, &d), 0);
    paxos_msg_free(&d);
    assert_memory_equal(cp.data, "snapsho", 7);
    assert_memory_equal(cp.entries[2].data, "cccccccccc", 10);
    paxos_msg_free(&cp);
    free(buf);
    paxos_msg_free(&m);
}

static int decode_fails(paxos_msg *m)
{
    uint8_t *buf;
    size_t len;
    assert_int_equal(paxos_msg_encode(m, &buf, &len), 0);
    paxos_msg d;
    merr e = {0};
    int rc = paxos_msg_decode(buf, len, &d, &e);
    free(buf);
    if (rc == 0)
        paxos_msg_free(&d);
    else
        assert_true(strlen(merr_msg(&e)) > 0);
    return rc == MERR_CORRUPT;
}

static void test_out_of_range_fields_rejected(void **state)
{
    (void)state;
    paxos_msg m;
    full_msg(&m);
    m.type = 0;
    assert_true(decode_fails(&m));
    m.type = PAXOS_MSG_TYPE_MAX + 1;
    assert_true(decode_fails(&m));
    m.type = PAXOS_MSG_ACCEPT;
    m.flags = 0x800;
    assert_true(decode_fails(&m));
    m.flags = 0;
    m.from = 0;
    assert_true(decode_fails(&m));
    m.from = 1;
    m.entries[1].type = 9;
    assert_true(decode_fails(&m));
    m.entries[1].type = PAXOS_ENTRY_DATA;
    m.entries[0].slot = 0;
    assert_true(decode_fails(&m));
    m.entries[0].slot = 5;
    m.members.voters[1] = 0; /* node id 0 means none */
    assert_true(decode_fails(&m));
    m.members.voters[1] = 2;
    assert_false(decode_fails(&m));
    paxos_msg_free(&m);
    /* More than PAXOS_MAX_NODES voters cannot even be encoded. */
    paxos_msg big = {0};
    big.type = PAXOS_MSG_HEARTBEAT;
    big.members.nvoters = PAXOS_MAX_NODES + 1;
    uint8_t *buf;
    size_t len;
    assert_int_equal(paxos_msg_encode(&big, &buf, &len), MERR_INVALID);
}

static void test_garbage_and_truncation(void **state)
{
    (void)state;
    paxos_msg m;
    full_msg(&m);
    uint8_t *buf;
    size_t len;
    assert_int_equal(paxos_msg_encode(&m, &buf, &len), 0);
    paxos_msg d;
    merr e = {0};
    /* Every proper prefix: decoded or rejected, never a crash or a leak. */
    int rejected = 0;
    for (size_t n = 0; n < len; n++) {
        int rc = paxos_msg_decode(buf, n, &d, &e);
        if (rc == 0)
            paxos_msg_free(&d);
        else
            rejected++;
        assert_true(rc == 0 || rc == MERR_CORRUPT);
    }
    assert_true(rejected > 0);
    /* Flipped bytes, and pseudo-random garbage. */
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 5000; i++) {
        uint8_t tmp[512];
        size_t n = len < sizeof(tmp) ? len : sizeof(tmp);
        memcpy(tmp, buf, n);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (i % 2) {
            tmp[x % n] ^= (uint8_t)(x >> 8);
            tmp[(x >> 16) % n] ^= (uint8_t)(x >> 24);
        } else {
            for (size_t k = 0; k < n; k++) tmp[k] = (uint8_t)(x >> (k % 56));
        }
        int rc = paxos_msg_decode(tmp, n, &d, &e);
        if (rc == 0) {
            /* Whatever got through is within the documented bounds. */
            assert_true(d.type >= 1 && d.type <= PAXOS_MSG_TYPE_MAX);
            assert_true(d.from != 0 && d.to != 0);
            assert_true(d.members.nvoters <= PAXOS_MAX_NODES);
            for (uint32_t k = 0; k < d.nentries; k++)
                assert_true(d.entries[k].type >= 1 && d.entries[k].type <= 3);
            paxos_msg_free(&d);
        } else {
            assert_int_equal(rc, MERR_CORRUPT);
        }
    }
    free(buf);
    paxos_msg_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_out_of_range_fields_rejected),
        cmocka_unit_test(test_garbage_and_truncation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
