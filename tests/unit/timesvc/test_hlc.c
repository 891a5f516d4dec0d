/* Hybrid logical clock: layout, encoding order, text round trip, the clock
 * rules (monotonic, logical overflow, receive, reject far future), and the
 * high-water mark across a restart, with its failure modes. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "timesvc/hlc.h"

/* One temp folder per test, removed in teardown even when an assertion fails. */
static char dir[64];

static int tmp_setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/meridian-hlc-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int tmp_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

#define US 1000LL
#define MS (1000 * US)
#define S  (1000 * MS)

static const int64_t T0 = 1795667463LL * S; /* 2026-11-26T04:31:03Z */

static void test_layout_and_encoding(void **state)
{
    (void)state;
    hlc_ts t = hlc_make(1795667463123456ULL, 5);
    assert_int_equal(hlc_physical_us(t), 1795667463123456ULL);
    assert_int_equal(hlc_logical(t), 5);
    assert_int_equal(hlc_physical_ns(t), 1795667463123456000LL);
    assert_int_equal(t, (1795667463123456ULL << 12) | 5);
    uint8_t b[8];
    hlc_encode(t, b);
    assert_int_equal(b[0], (uint8_t)(t >> 56));
    assert_int_equal(b[7], (uint8_t)t);
    assert_int_equal(hlc_decode(b), t);
    hlc_ts d;
    merr e = {0};
    assert_int_equal(hlc_decode_buf(b, 8, &d, &e), 0);
    assert_int_equal(d, t);
    assert_int_equal(hlc_decode_buf(b, 7, &d, &e), MERR_CORRUPT);

    /* memcmp order of the encoding == numeric order == hlc_cmp order */
    srand(42);
    for (int i = 0; i < 10000; i++) {
        hlc_ts a = ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 11) ^ (uint64_t)rand();
        hlc_ts c = i % 3 ? ((uint64_t)rand() << 33) ^ ((uint64_t)rand() << 11) ^ (uint64_t)rand()
                         : a + (uint64_t)(i % 2);
        uint8_t ea[8], ec[8];
        hlc_encode(a, ea);
        hlc_encode(c, ec);
        int m = memcmp(ea, ec, 8);
        m = m < 0 ? -1 : m > 0;
        assert_int_equal(m, hlc_cmp(a, c));
        assert_int_equal(hlc_cmp(a, c), a < c ? -1 : a > c);
    }
}

static void test_format_parse(void **state)
{
    (void)state;
    char buf[HLC_FORMAT_MAX];
    hlc_ts t = hlc_make(1795667463123456ULL, 5), p;
    merr e = {0};
    assert_int_equal(hlc_format(t, buf, sizeof(buf)), (int)strlen("2026-11-26T04:31:03.123456Z+5"));
    assert_string_equal(buf, "2026-11-26T04:31:03.123456Z+5");
    assert_int_equal(hlc_parse(buf, &p, &e), 0);
    assert_int_equal(p, t);
    /* round trips across the range */
    hlc_ts samples[] = {0, hlc_make(0, HLC_LOGICAL_MAX), hlc_make(951782400000000ULL, 1),
                        hlc_make(HLC_PHYS_MAX_US, HLC_LOGICAL_MAX), t + 4096ULL * 999999};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        assert_true(hlc_format(samples[i], buf, sizeof(buf)) > 0);
        assert_int_equal(hlc_parse(buf, &p, &e), 0);
        assert_int_equal(p, samples[i]);
    }
    assert_int_equal(hlc_format(t, buf, 10), MERR_TOOBIG);
    /* shorter forms */
    assert_int_equal(hlc_parse("2026-11-26T04:31:03Z", &p, &e), 0);
    assert_int_equal(p, hlc_make(1795667463000000ULL, 0));
    assert_int_equal(hlc_parse("2026-11-26T04:31:03.5Z+12", &p, &e), 0);
    assert_int_equal(p, hlc_make(1795667463500000ULL, 12));
    /* leap day exists in 2028, not in 2026 */
    assert_int_equal(hlc_parse("2028-02-29T00:00:00Z", &p, &e), 0);
    static const char *bad[] = {
        "",
        "garbage",
        "2026-11-26 04:31:03Z",
        "2026-11-26T04:31:03",
        "2026-11-26T04:31:03.Z",
        "2026-11-26T04:31:03.1234567Z",
        "2026-11-26T04:31:03Z+",
        "2026-11-26T04:31:03Z+4096",
        "2026-11-26T04:31:03Z+99999999999999999999",
        "2026-11-26T04:31:03Z+5x",
        "2026-11-26T04:31:03Z-5",
        "2026-02-29T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-11-26T24:00:00Z",
        "2026-11-26T04:60:00Z",
        "2026-11-26T04:31:60Z",
        "1969-12-31T23:59:59Z",
        "2200-01-01T00:00:00Z",
        "+026-11-26T04:31:03Z",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        merr_clear(&e);
        assert_int_equal(hlc_parse(bad[i], &p, &e), MERR_INVALID);
        assert_true(strlen(e.msg) > 0);
    }
    assert_int_equal(hlc_parse(NULL, &p, &e), MERR_INVALID);
}

static hlc make_clock(void)
{
    hlc h;
    hlc_config cfg;
    hlc_config_default(&cfg);
    merr e = {0};
    assert_int_equal(hlc_init(&h, &cfg, NULL, &e), 0);
    return h;
}

static void test_now_strictly_increasing(void **state)
{
    (void)state;
    hlc h = make_clock();
    merr e = {0};
    hlc_ts prev = 0, t;
    int64_t wall = T0;
    for (int i = 0; i < 20000; i++) {
        /* the wall clock stands still, moves, and jumps back */
        if (i % 100 == 0) wall += 3 * US;
        if (i == 10000) wall -= 5 * S;
        assert_int_equal(hlc_now(&h, wall, &t, &e), 0);
        assert_true(t > prev);
        assert_true(hlc_physical_ns(t) >= (i < 10000 ? wall - 999 : T0));
        prev = t;
    }
    /* A wall clock ahead of the HLC takes over, logical back to 0. */
    assert_int_equal(hlc_now(&h, wall + 60 * S, &t, &e), 0);
    assert_int_equal(hlc_physical_ns(t), wall + 60 * S);
    assert_int_equal(hlc_logical(t), 0);
    /* Nonsense readings are refused, not wrapped. */
    assert_int_equal(hlc_now(&h, -1, &t, &e), MERR_CLOCK);
    assert_int_equal(hlc_now(&h, INT64_MAX, &t, &e), MERR_CLOCK);
}

static void test_logical_overflow_carries(void **state)
{
    (void)state;
    hlc h = make_clock();
    merr e = {0};
    hlc_ts t;
    uint64_t us = (uint64_t)(T0 / US);
    for (uint32_t i = 0; i <= HLC_LOGICAL_MAX; i++) {
        assert_int_equal(hlc_now(&h, T0, &t, &e), 0);
        assert_int_equal(hlc_physical_us(t), us);
        assert_int_equal(hlc_logical(t), i);
    }
    /* The 4097th timestamp in one µs runs 1 µs ahead of the wall. */
    assert_int_equal(hlc_now(&h, T0, &t, &e), 0);
    assert_int_equal(hlc_physical_us(t), us + 1);
    assert_int_equal(hlc_logical(t), 0);
    /* the end of the representable range is an error, not a wrap */
    h.last = UINT64_MAX;
    assert_int_equal(hlc_now(&h, T0, &t, &e), MERR_CLOCK);
}

static void test_update(void **state)
{
    (void)state;
    hlc h = make_clock();
    merr e = {0};
    hlc_ts t, out;
    assert_int_equal(hlc_now(&h, T0, &t, &e), 0);
    /* A message from a node 100 ms ahead (within the max offset). */
    hlc_ts remote = hlc_make((uint64_t)((T0 + 100 * MS) / US), 7);
    assert_int_equal(hlc_update(&h, remote, T0, &out, &e), 0);
    assert_int_equal(out, remote);
    assert_int_equal(hlc_now(&h, T0, &t, &e), 0);
    assert_true(t > remote);
    assert_int_equal(t, remote + 1);
    /* An older timestamp changes nothing. */
    assert_int_equal(hlc_update(&h, hlc_make(1, 0), T0, &out, &e), 0);
    assert_int_equal(out, t);
    /* Far beyond latest + max offset: rejected, clock unchanged. */
    hlc_ts wild = hlc_make((uint64_t)((T0 + 3600 * S) / US), 0);
    assert_int_equal(hlc_update(&h, wild, T0, &out, &e), MERR_CLOCK);
    assert_non_null(strstr(e.msg, "rejected"));
    assert_non_null(strstr(e.msg, "2026-11-26T05:31:03"));
    assert_int_equal(h.last, t);
    /* Exactly at the limit is accepted. */
    hlc_ts edge = hlc_make((uint64_t)((T0 + HLC_DEFAULT_MAX_OFFSET_NS) / US), HLC_LOGICAL_MAX);
    assert_int_equal(hlc_update(&h, edge, T0, NULL, &e), 0);
    assert_int_equal(hlc_update(&h, edge + 1, T0, NULL, &e), MERR_CLOCK);
}

/* An applied log entry's timestamp is adopted however far ahead it is: a
 * replica that later leads must stamp above it (docs/time.md). */
static void test_observe(void **state)
{
    (void)state;
    hlc h = make_clock();
    merr e = {0};
    hlc_ts t;
    assert_int_equal(hlc_now(&h, T0, &t, &e), 0);
    hlc_ts ahead = hlc_make((uint64_t)((T0 + 3600 * S) / US), 3);
    assert_int_equal(hlc_observe(&h, ahead, &e), 0);
    assert_int_equal(hlc_now(&h, T0, &t, &e), 0);
    assert_int_equal(t, ahead + 1);
    /* an older one changes nothing */
    assert_int_equal(hlc_observe(&h, hlc_make(1, 0), &e), 0);
    assert_int_equal(h.last, ahead + 1);
}

/* ---- persistence ---- */

typedef struct counting_store {
    hlc_file_store fs;
    hlc_store_ops file;
    int saves;
    int fail_with; /* next save fails with this code */
} counting_store;

static int cs_load(void *ctx, hlc_ts *hw, merr *e)
{
    counting_store *cs = ctx;
    return cs->file.load(cs->file.ctx, hw, e);
}

static int cs_save(void *ctx, hlc_ts hw, merr *e)
{
    counting_store *cs = ctx;
    if (cs->fail_with) return merr_set(e, cs->fail_with, "disk full (test)");
    cs->saves++;
    return cs->file.save(cs->file.ctx, hw, e);
}

static void store_init(counting_store *cs, const char *path, hlc_store_ops *ops)
{
    memset(cs, 0, sizeof(*cs));
    merr e = {0};
    assert_int_equal(hlc_file_store_init(&cs->fs, path, &cs->file, &e), 0);
    ops->load = cs_load;
    ops->save = cs_save;
    ops->ctx = cs;
}

static void test_restart_never_goes_back(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof(path), "%s/hlc.hw", dir);
    counting_store cs;
    hlc_store_ops ops;
    store_init(&cs, path, &ops);
    hlc_config cfg;
    hlc_config_default(&cfg);
    cfg.window_ns = 1 * S;
    merr e = {0};

    /* A brand new node: no file yet. */
    hlc h1;
    assert_int_equal(hlc_init(&h1, &cfg, &ops, &e), 0);
    assert_int_equal(h1.restored_hw, 0);
    hlc_ts t, max1 = 0;
    for (int i = 0; i < 3000; i++) {
        assert_int_equal(hlc_now(&h1, T0 + i * MS, &t, &e), 0); /* 3 s of wall time */
        max1 = t;
    }
    assert_true(access(path, F_OK) == 0);
    /* One fsync per window, not per timestamp. */
    assert_int_equal(cs.saves, 3);

    /* "Crash" and restart with a wall clock that went back 10 s. */
    hlc h2;
    assert_int_equal(hlc_init(&h2, &cfg, &ops, &e), 0);
    assert_true(h2.restored_hw > max1);
    assert_int_equal(hlc_now(&h2, T0 - 10 * S, &t, &e), 0);
    assert_true(t > max1);
    /* How long the restarted node should wait for its wall clock. */
    /* the last mark stored by h1 covered up to T0 + 3 s */
    assert_int_equal(hlc_physical_ns(h2.restored_hw), T0 + 3 * S);
    assert_int_equal(hlc_restart_wait_ns(&h2, T0 + 2500 * MS), 500 * MS);
    assert_int_equal(hlc_restart_wait_ns(&h2, T0 + 60 * S), 0);

    /* A timestamp received and observed is also covered by the mark. */
    hlc_ts remote = hlc_make((uint64_t)((T0 + 300 * MS + 5 * S) / US), 3);
    assert_int_equal(hlc_update(&h2, remote, T0 + 5 * S, NULL, &e), 0);
    hlc h3;
    assert_int_equal(hlc_init(&h3, &cfg, &ops, &e), 0);
    assert_int_equal(hlc_now(&h3, T0, &t, &e), 0);
    assert_true(t > remote);

    /* Full disk: no timestamp is handed out beyond the durable mark. */
    cs.fail_with = MERR_NOSPACE;
    hlc_ts before = h3.last;
    assert_int_equal(hlc_now(&h3, T0 + 3600 * S, &t, &e), MERR_NOSPACE);
    assert_non_null(strstr(e.msg, "high-water mark"));
    assert_int_equal(h3.last, before);
    /* ... but timestamps below it still are. */
    assert_int_equal(hlc_now(&h3, T0, &t, &e), 0);
    assert_int_equal(t, before + 1);
    cs.fail_with = 0;
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    fclose(f);
}

static void test_corrupt_mark_is_an_error(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof(path), "%s/hlc.hw", dir);
    hlc_file_store fs;
    hlc_store_ops ops;
    merr e = {0};
    assert_int_equal(hlc_file_store_init(&fs, path, &ops, &e), 0);
    hlc_config cfg;
    hlc_config_default(&cfg);
    hlc h;
    hlc_ts t;
    assert_int_equal(hlc_init(&h, &cfg, &ops, &e), 0);
    assert_int_equal(hlc_now(&h, T0, &t, &e), 0);

    uint8_t good[16];
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(good, 1, 16, f), 16);
    fclose(f);
    assert_memory_equal(good, "MHLC", 4);

    uint8_t flipped[16];
    memcpy(flipped, good, 16);
    flipped[9] ^= 0x10;
    write_file(path, flipped, 16);
    assert_int_equal(hlc_init(&h, &cfg, &ops, &e), MERR_CORRUPT);
    assert_non_null(strstr(e.msg, "refusing to guess"));
    write_file(path, good, 15);
    assert_int_equal(hlc_init(&h, &cfg, &ops, &e), MERR_CORRUPT);
    write_file(path, "", 0);
    assert_int_equal(hlc_init(&h, &cfg, &ops, &e), MERR_CORRUPT);
    write_file(path, good, 16);
    assert_int_equal(hlc_init(&h, &cfg, &ops, &e), 0);
    assert_int_equal(h.restored_hw, hlc_decode(good + 4));

    /* A folder that does not exist: a clear I/O error when saving. */
    hlc_file_store bad;
    hlc_store_ops bad_ops;
    assert_int_equal(hlc_file_store_init(&bad, "/nonexistent-meridian/dir/hw", &bad_ops, &e), 0);
    assert_int_equal(hlc_init(&h, &cfg, &bad_ops, &e), 0); /* nothing to load: fresh */
    assert_int_equal(hlc_now(&h, T0, &t, &e), MERR_NOTFOUND);
    assert_non_null(strstr(e.msg, "/nonexistent-meridian/dir/hw"));
    assert_int_equal(hlc_file_store_init(&bad, "", &bad_ops, &e), MERR_INVALID);
    hlc_config badcfg = cfg;
    badcfg.window_ns = 0;
    assert_int_equal(hlc_init(&h, &badcfg, NULL, &e), MERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_and_encoding),
        cmocka_unit_test(test_format_parse),
        cmocka_unit_test(test_now_strictly_increasing),
        cmocka_unit_test(test_logical_overflow_carries),
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_observe),
        cmocka_unit_test_setup_teardown(test_restart_never_goes_back, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_mark_is_an_error, tmp_setup, tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
