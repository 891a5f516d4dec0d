/* History file format: parsing every function, the writer's round trip,
 * pairing of invocations with completions, and clear errors (with line
 * numbers) for every kind of malformed line. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "tests/jepsen/jp_check.h"
#include "tests/jepsen/jp_history.h"
#include "tests/jepsen/jp_recorder.h"
#include "tests/jepsen/test_seeds.h"

static const char *sample = "# a comment line\n"
                            "\n"
                            "100 0 invoke write 1 5\n"
                            "110 1 invoke read 1 _\n"
                            "120 0 ok write 1 5   # trailing comment\n"
                            "130 1 ok read 1 5\n"
                            "140 2 invoke cas 1 nil 7\n"
                            "150 2 fail cas 1 nil 7\n"
                            "160 3 invoke txn [append 4 1] [r 5 nil] [w 6 2]\n"
                            "170 3 ok txn [append 4 1] [r 5 [1 2 3]] [w 6 2]\n"
                            "180 4 invoke append 9 3\n"
                            "190 4 info append 9 3\n"
                            "200 5 invoke transfer 0 1 25\n"
                            "210 5 ok transfer 0 1 25\n"
                            "220 6 invoke balances\n"
                            "230 6 ok balances [0 75] [1 25]\n"
                            "240 7 invoke insert 42\n"
                            "250 8 invoke members _\n"
                            "260 8 ok members []\n";

static void test_parse_all_functions(void **state)
{
    (void)state;
    jp_history h;
    merr e = {0};
    assert_int_equal(jp_history_parse(sample, strlen(sample), &h, &e), 0);
    assert_int_equal(h.n, 17);
    assert_int_equal(h.ncalls, 9);
    assert_int_equal(h.ops[0].line, 3);
    assert_int_equal(h.ops[0].f, JP_F_WRITE);
    assert_int_equal(h.ops[3].v1.i, 5);
    assert_int_equal(h.ops[4].v1.kind, JP_V_NIL);
    const jp_op *t = &h.ops[7];
    assert_int_equal(t->nmops, 3);
    assert_int_equal(t->mops[1].val.kind, JP_V_LIST);
    assert_int_equal(t->mops[1].val.n, 3);
    assert_int_equal(t->mops[1].val.items[2], 3);
    assert_int_equal(t->mops[2].kind, JP_MOP_W);
    assert_int_equal(h.ops[8].f, JP_F_APPEND);
    assert_int_equal(h.ops[8].mops[0].val.i, 3);
    assert_int_equal(h.ops[13].v1.n, 4);
    assert_int_equal(h.ops[16].v1.kind, JP_V_LIST);
    assert_int_equal(h.ops[16].v1.n, 0);
    /* Calls: ok, fail, info, and an invoke without completion is info. */
    assert_int_equal(h.calls[0].type, JP_OK);
    assert_int_equal(h.calls[0].t_done, 120);
    assert_int_equal(h.calls[2].type, JP_FAIL);
    assert_int_equal(h.calls[4].type, JP_INFO);
    assert_true(h.calls[4].t_done == INT64_MAX);
    assert_int_equal(h.calls[7].type, JP_INFO);
    assert_true(h.calls[7].done == SIZE_MAX);
    assert_ptr_equal(jp_call_op(&h, &h.calls[3]), &h.ops[7]);
    jp_history_free(&h);
    /* Sparse, huge process ids are fine. */
    const char *sparse = "1 9223372036854775807 invoke insert 1\n2 5 invoke insert 2\n"
                         "3 9223372036854775807 ok insert 1\n4 5 fail insert 2\n";
    assert_int_equal(jp_history_parse(sparse, strlen(sparse), &h, &e), 0);
    assert_int_equal(h.calls[0].type, JP_OK);
    assert_int_equal(h.calls[1].type, JP_FAIL);
    jp_history_free(&h);
}

static void test_write_roundtrip(void **state)
{
    (void)state;
    jp_history h, h2;
    merr e = {0};
    assert_int_equal(jp_history_parse(sample, strlen(sample), &h, &e), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(jp_history_write(&h, f, &e), 0);
    fclose(f);
    assert_int_equal(jp_history_parse(buf, len, &h2, &e), 0);
    assert_int_equal(h2.n, h.n);
    for (size_t i = 0; i < h.n; i++) {
        mbuf a = MBUF_INIT, b = MBUF_INIT;
        assert_int_equal(jp_op_format(&h.ops[i], &a), 0);
        assert_int_equal(jp_op_format(&h2.ops[i], &b), 0);
        assert_int_equal(a.len, b.len);
        assert_memory_equal(a.data, b.data, a.len);
        mbuf_free(&a);
        mbuf_free(&b);
    }
    mbuf one = MBUF_INIT;
    assert_int_equal(jp_op_format(&h.ops[7], &one), 0);
    assert_int_equal(mbuf_append_u8(&one, 0), 0);
    assert_string_equal((char *)one.data, "170 3 ok txn [append 4 1] [r 5 [1 2 3]] [w 6 2]");
    mbuf_free(&one);
    jp_history_free(&h2);
    jp_history_free(&h);
    free(buf);
}

static void expect_error(const char *text, const char *want)
{
    jp_history h;
    merr e = {0};
    int rc = jp_history_parse(text, strlen(text), &h, &e);
    if (rc != MERR_INVALID || !strstr(e.msg, want)) {
        fprintf(stderr, "input: %s\nerror: %s (rc %d)\nwanted: %s\n", text, e.msg, rc, want);
        fail();
    }
    assert_int_equal(h.n, 0);
}

static void test_malformed_lines(void **state)
{
    (void)state;
    expect_error("x 0 invoke read 1 _\n", "line 1: expected a time");
    expect_error("1 0 invoke read 1 _\n2 0 ok read 1\n", "line 2: expected a value");
    expect_error("1 -3 invoke read 1 _\n", "line 1: negative process");
    expect_error("1 0 begin read 1 _\n", "line 1: expected a type");
    expect_error("1 0 invoke frob 1 _\n", "line 1: expected a function");
    expect_error("1 0 invoke write 1 nil\n", "expected an integer value");
    expect_error("1 0 invoke write 1 5 6\n", "expected end of line, got '6'");
    expect_error("1 0 invoke txn\n", "expected at least one micro-op");
    expect_error("1 0 invoke txn [x 1 2]\n", "expected a micro-op");
    expect_error("1 0 invoke txn [r 1 [1 x]]\n", "expected an integer or ']', got 'x'");
    expect_error("1 0 invoke txn [r 1 [1 2]\n", "expected ']' closing the micro-op");
    expect_error("1 0 invoke txn [r 1 nil\n", "expected ']' closing the micro-op");
    expect_error("1 0 invoke txn r 1 nil\n", "expected '[' opening a micro-op");
    expect_error("1 0 invoke balances [1]\n", "expected a balance");
    expect_error("1 0 invoke read 99999999999999999999 _\n", "expected a key");
    expect_error("1 0 invoke cas 1 2\n", "expected the new value");
    expect_error("1 0 invoke members 5\n", "expected a list of members");
    char nul[] = "1 0 invoke read 1 _\n2 0 ok read\0 1 _\n";
    jp_history h;
    merr e = {0};
    assert_int_equal(jp_history_parse(nul, sizeof(nul) - 1, &h, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "line 2: NUL"));
}

static void test_bad_pairing(void **state)
{
    (void)state;
    expect_error("1 0 ok read 1 5\n", "line 1: ok completion of process 0 without invoke");
    expect_error("1 0 invoke read 1 _\n2 0 invoke read 1 _\n", "line 2: process 0 invokes while");
    expect_error("1 0 invoke read 1 _\n2 0 ok write 1 5\n", "line 2: completion does not match");
    expect_error("5 0 invoke read 1 _\n2 0 ok read 1 5\n", "line 2: completes before");
    expect_error("1 0 invoke txn [append 1 2]\n2 0 ok txn [append 1 3]\n",
                 "line 2: completion does not match");
    expect_error("1 0 invoke txn [append 1 2]\n2 0 ok txn [append 1 2] [r 1 nil]\n",
                 "line 2: completion does not match");

    /* Histories built in memory are checked the same way. */
    jp_history h;
    merr e = {0};
    jp_history_init(&h);
    jp_op op = {.time = 1,
                .process = -1,
                .type = JP_INVOKE,
                .f = JP_F_INSERT,
                .v1 = {.kind = JP_V_INT, .i = 1}};
    assert_int_equal(jp_history_add(&h, &op, &e), 0);
    assert_int_equal(jp_history_index(&h, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "line 2: negative process"));
    jp_history_free(&h);
}

static void test_load_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/jp_hist_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/h.txt", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("1 0 invoke insert 1\n2 0 ok insert 1\n3 0 invoke members _\n4 0 ok members [1]\n", f);
    fclose(f);
    jp_history h;
    merr e = {0};
    assert_int_equal(jp_history_load(path, &h, &e), 0);
    assert_int_equal(h.ncalls, 2);
    jp_history_free(&h);
    f = fopen(path, "w");
    fputs("1 0 invoke insert 1\n2 0 ok insert\n", f);
    fclose(f);
    assert_int_equal(jp_history_load(path, &h, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, path));
    assert_non_null(strstr(e.msg, "line 2"));
    unlink(path);
    assert_true(jp_history_load(path, &h, &e) < 0);
    jp_history_free(&h);
    rmdir(dir);
}

/* Random mutations of valid histories: the parser answers 0 or a clear
 * MERR_INVALID, never crashes; whatever parses, every checker judges without
 * crashing (ASan builds make "without crashing" strict). */
static void test_mutations_never_crash(void **state)
{
    (void)state;
    static const char *alphabet = "0123456789 -[]_#\nabcdefghijklmnopqrstuvwxyz";
    const char *seeds[] = {
        sample,
        "1 0 invoke txn [append 1 1] [r 2 nil]\n2 1 invoke txn [append 2 1] [r 1 nil]\n"
        "3 0 ok txn [append 1 1] [r 2 [1]]\n4 1 ok txn [append 2 1] [r 1 [1]]\n",
        "1 0 invoke cas 1 nil 3\n2 0 ok cas 1 nil 3\n3 1 invoke read 1 _\n4 1 ok read 1 3\n",
    };
    int parsed = 0;
    uint64_t first = 1, last = 3000;
    jp_test_seeds(&first, &last);
    for (uint64_t iter = first; iter <= last; iter++) {
        uint64_t x = iter * 0x9e3779b97f4a7c15ULL;
        const char *src = seeds[iter % 3];
        size_t n = strlen(src);
        char *buf = malloc(n + 8);
        assert_non_null(buf);
        memcpy(buf, src, n + 1);
        for (uint64_t k = 0; k < 1 + iter % 4; k++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t at = (size_t)(x >> 33) % n;
            /* Mostly digits for digits, which keeps the line well-formed and
             * makes the checkers see odd values, times and processes. */
            if ((x >> 7) % 4 && buf[at] >= '0' && buf[at] <= '9')
                buf[at] = (char)('0' + (x >> 13) % 10);
            else
                buf[at] = alphabet[(x >> 13) % strlen(alphabet)];
        }
        jp_history h;
        merr e = {0};
        int rc = jp_history_parse(buf, n, &h, &e);
        if (rc) {
            if (rc != MERR_INVALID || !strstr(e.msg, "line")) {
                fprintf(stderr, "seed %llu: rc %d, '%s' for:\n%s\n", (unsigned long long)iter, rc,
                        e.msg, buf);
                fail();
            }
            free(buf);
            continue;
        }
        parsed++;
        jp_report r;
        jp_report_init(&r);
        assert_true(jp_check_register(&h, NULL, &r, &e) <= 0);
        jp_report_free(&r);
        jp_report_init(&r);
        assert_true(jp_check_list_append(&h, NULL, &r, &e) <= 0);
        jp_report_free(&r);
        jp_report_init(&r);
        assert_true(jp_check_bank(&h, NULL, &r, &e) <= 0);
        jp_report_free(&r);
        jp_report_init(&r);
        assert_true(jp_check_set(&h, &r, &e) <= 0);
        jp_report_free(&r);
        jp_history_free(&h);
        free(buf);
    }
    if (jp_test_default_seeds()) assert_true(parsed > 100); /* checkers saw mutated ones */
}

/* Many threads record at once: every line arrives whole, and the file is a
 * valid history holding every op. */
#define REC_THREADS 4
#define REC_OPS     500

typedef struct rec_arg {
    jp_recorder *rec;
    int64_t process;
} rec_arg;

static void *record_thread(void *p)
{
    rec_arg *a = p;
    for (int i = 0; i < REC_OPS; i++) {
        int64_t v = a->process * REC_OPS + i;
        jp_mop m[2] = {
            {.kind = JP_MOP_APPEND, .key = a->process, .val = {.kind = JP_V_INT, .i = v}},
            {.kind = JP_MOP_R, .key = a->process}};
        jp_op op = {.time = 2 * i,
                    .process = a->process,
                    .type = JP_INVOKE,
                    .f = JP_F_TXN,
                    .mops = m,
                    .nmops = 2};
        if (jp_recorder_add(a->rec, &op, NULL)) return p;
        /* Comments interleave (a nemesis's events); a newline in one must
         * not smuggle in an op line. */
        if (a->process == 0 && i % 50 == 0 &&
            jp_recorder_comment(a->rec, "nemesis event\n99 7 invoke read 1 _", NULL))
            return p;
        op.time++;
        op.type = JP_OK;
        m[1].val = (jp_val){.kind = JP_V_LIST, .items = &v, .n = 1};
        if (jp_recorder_add(a->rec, &op, NULL)) return p;
    }
    return NULL;
}

static void test_recorder(void **state)
{
    (void)state;
    char dir[] = "/tmp/jp_rec_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/history", dir);
    jp_recorder *rec;
    merr e = {0};
    assert_int_equal(jp_recorder_open(path, &rec, &e), 0);
    pthread_t t[REC_THREADS];
    rec_arg args[REC_THREADS];
    for (int i = 0; i < REC_THREADS; i++) {
        args[i] = (rec_arg){rec, i};
        assert_int_equal(pthread_create(&t[i], NULL, record_thread, &args[i]), 0);
    }
    for (int i = 0; i < REC_THREADS; i++) {
        void *res;
        pthread_join(t[i], &res);
        assert_null(res);
    }
    assert_int_equal(jp_recorder_close(rec, &e), 0);
    jp_history h;
    assert_int_equal(jp_history_load(path, &h, &e), 0);
    assert_int_equal(h.n, 2 * REC_THREADS * REC_OPS);
    assert_int_equal(h.ncalls, REC_THREADS * REC_OPS);
    for (size_t i = 0; i < h.ncalls; i++) assert_int_equal(h.calls[i].type, JP_OK);
    jp_history_free(&h);
    mbuf text = MBUF_INIT;
    assert_int_equal(mfs_read_all(path, 1 << 24, &text, &e), 0);
    assert_int_equal(mbuf_append_u8(&text, 0), 0);
    size_t comments = 0;
    for (const char *c = (const char *)text.data;
         (c = strstr(c, "\n# nemesis event 99 7 invoke read 1 _\n")); c++)
        comments++;
    assert_int_equal(comments, REC_OPS / 50);
    mbuf_free(&text);
    snprintf(path, sizeof(path), "%s/no/such/dir/history", dir);
    assert_int_equal(jp_recorder_open(path, &rec, &e), MERR_NOTFOUND);
    assert_non_null(strstr(e.msg, "open"));
    snprintf(path, sizeof(path), "%s/history", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_all_functions),
        cmocka_unit_test(test_write_roundtrip),
        cmocka_unit_test(test_malformed_lines),
        cmocka_unit_test(test_bad_pairing),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_mutations_never_crash),
        cmocka_unit_test(test_recorder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
