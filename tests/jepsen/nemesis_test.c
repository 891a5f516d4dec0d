/* The nemesis's partition specs (jh_partition_specs): a node given a spec
 * that names the wrong peers accepts it silently and the "partition" cuts
 * nothing, so the end-to-end runs would pass without a real partition. Here
 * every variant's specs are checked against the cut it claims: which node
 * drops traffic with which, in which direction, by node id (deliberately
 * unlike the local-cluster index). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/jepsen/jh_run.h"

/* idx 1..n, node ids 11..10+n. */
static void make_cluster(jh_cluster *c, int n)
{
    memset(c, 0, sizeof(*c));
    c->dir = "/nonexistent";
    c->lc = "/nonexistent/local-cluster.sh";
    c->bin = "/nonexistent/meridian";
    c->log_fd = 2;
    c->n = n;
    for (int i = 0; i < n; i++) {
        c->nodes[i].idx = i + 1;
        c->nodes[i].id = (uint64_t)(11 + i);
        c->nodes[i].pid = 1000 + i;
        snprintf(c->nodes[i].rpc, sizeof(c->nodes[i].rpc), "10.9.8.%d:26257", 11 + i);
    }
}

/* Whether spec holds the rule "peer=ID,partition=HOW". */
static int has_rule(const char *spec, uint64_t id, const char *how)
{
    char rule[64];
    snprintf(rule, sizeof(rule), "peer=%llu,partition=%s", (unsigned long long)id, how);
    size_t l = strlen(rule);
    for (const char *p = spec; (p = strstr(p, rule)); p++)
        if ((p == spec || p[-1] == ';') && (p[l] == '\0' || p[l] == ';')) return 1;
    return 0;
}

static int rules(const char *spec)
{
    if (!spec[0]) return 0;
    int n = 1;
    for (const char *p = spec; *p; p++) n += *p == ';';
    return n;
}

/* Both-way cuts: every node drops exactly the nodes of the other side. */
static void check_cut(jh_cluster *c, char spec[][JH_SPEC_MAX], const int *side)
{
    for (int i = 0; i < c->n; i++) {
        int want = 0;
        for (int j = 0; j < c->n; j++) {
            if (side[i] == side[j]) {
                assert_false(has_rule(spec[i], c->nodes[j].id, "both"));
                continue;
            }
            assert_true(has_rule(spec[i], c->nodes[j].id, "both"));
            want++;
        }
        assert_int_equal(rules(spec[i]), want);
    }
}

static void test_isolate(void **state)
{
    (void)state;
    jh_cluster c;
    make_cluster(&c, 3);
    int seen[3] = {0};
    for (uint64_t seed = 1; seed <= 64; seed++) {
        rpc_rng g;
        rpc_rng_seed(&g, seed);
        char spec[JH_MAX_NODES][JH_SPEC_MAX], what[128];
        assert_int_equal(jh_partition_specs(&c, JH_F_ISOLATE, &g, spec, what, sizeof(what)), 0);
        int x = -1;
        for (int i = 0; i < 3; i++)
            if (rules(spec[i]) == 2) x = i;
        assert_true(x >= 0);
        seen[x]++;
        int side[3] = {0};
        side[x] = 1;
        check_cut(&c, spec, side);
        char name[32];
        snprintf(name, sizeof(name), "isolate: %d", c.nodes[x].idx);
        assert_string_equal(what, name);
    }
    for (int i = 0; i < 3; i++) assert_true(seen[i] > 0); /* the victim varies */
}

static void test_leader_without_leader(void **state)
{
    (void)state;
    /* No leaseholder can be found (the tool is missing): any node will do,
     * still a proper isolation. */
    jh_cluster c;
    make_cluster(&c, 3);
    rpc_rng g;
    rpc_rng_seed(&g, 5);
    char spec[JH_MAX_NODES][JH_SPEC_MAX], what[128];
    assert_int_equal(jh_partition_specs(&c, JH_F_LEADER, &g, spec, what, sizeof(what)), 0);
    int side[3] = {0}, victims = 0;
    for (int i = 0; i < 3; i++)
        if (rules(spec[i]) == 2) side[i] = 1, victims++;
    assert_int_equal(victims, 1);
    check_cut(&c, spec, side);
}

static void test_one_way(void **state)
{
    (void)state;
    jh_cluster c;
    make_cluster(&c, 5);
    int outs = 0, ins = 0;
    for (uint64_t seed = 1; seed <= 64; seed++) {
        rpc_rng g;
        rpc_rng_seed(&g, seed);
        char spec[JH_MAX_NODES][JH_SPEC_MAX], what[128];
        assert_int_equal(jh_partition_specs(&c, JH_F_ONEWAY, &g, spec, what, sizeof(what)), 0);
        int x = -1, others = 0;
        for (int i = 0; i < 5; i++) {
            if (rules(spec[i]))
                x = i;
            else
                others++;
        }
        assert_int_equal(others, 4); /* only the victim drops, one way */
        const char *how = strstr(spec[x], "partition=out") ? "out" : "in";
        outs += how[0] == 'o';
        ins += how[0] == 'i';
        for (int j = 0; j < 5; j++) assert_int_equal(has_rule(spec[x], c.nodes[j].id, how), j != x);
        assert_int_equal(rules(spec[x]), 4);
        assert_non_null(strstr(what, how[0] == 'o' ? "sends lost" : "hears nothing"));
    }
    assert_true(outs > 0 && ins > 0);
}

static void test_halves(void **state)
{
    (void)state;
    for (int n = 2; n <= 7; n++) {
        jh_cluster c;
        make_cluster(&c, n);
        rpc_rng g;
        rpc_rng_seed(&g, (uint64_t)n);
        char spec[JH_MAX_NODES][JH_SPEC_MAX], what[128];
        assert_int_equal(jh_partition_specs(&c, JH_F_HALVES, &g, spec, what, sizeof(what)), 0);
        /* The minority is the side whose nodes each cut n - n/2 peers. */
        int side[JH_MAX_NODES] = {0}, minority = 0;
        for (int i = 0; i < n; i++)
            if (rules(spec[i]) == n - n / 2) side[i] = 1, minority++;
        if (n % 2 == 0) { /* equal halves: both sides cut n/2; take those in `what` */
            minority = 0;
            for (int i = 0; i < n; i++) {
                char tok[16];
                snprintf(tok, sizeof(tok), " %d", c.nodes[i].idx);
                side[i] = strstr(what, tok) != NULL;
                minority += side[i];
            }
        }
        assert_int_equal(minority, n / 2);
        check_cut(&c, spec, side);
    }
}

static void test_one_node(void **state)
{
    (void)state;
    jh_cluster c;
    make_cluster(&c, 1);
    rpc_rng g;
    rpc_rng_seed(&g, 1);
    char spec[JH_MAX_NODES][JH_SPEC_MAX], what[128];
    assert_int_equal(jh_partition_specs(&c, JH_F_ISOLATE, &g, spec, what, sizeof(what)), -1);
}

static void test_parse(void **state)
{
    (void)state;
    unsigned k;
    assert_int_equal(jh_nemesis_parse("none", &k), 0);
    assert_int_equal(k, 0);
    assert_int_equal(jh_nemesis_parse("kill,pause", &k), 0);
    assert_int_equal(k, (1u << JH_F_KILL) | (1u << JH_F_PAUSE));
    assert_int_equal(jh_nemesis_parse("partition", &k), 0);
    assert_int_equal(k, (1u << JH_F_ISOLATE) | (1u << JH_F_LEADER) | (1u << JH_F_ONEWAY) |
                            (1u << JH_F_HALVES));
    assert_int_equal(jh_nemesis_parse("all", &k), 0);
    assert_int_equal(k, (1u << (JH_F_HALVES + 1)) - 1); /* kill, pause, partitions */
    assert_int_equal(jh_nemesis_parse("clock-skew,clock-skew-big,disk-full", &k), 0);
    assert_int_equal(k, (1u << JH_F_SKEW) | (1u << JH_F_SKEW_BIG) | (1u << JH_F_DISK));
    assert_int_equal(jh_nemesis_parse("split,leader-transfer", &k), 0);
    assert_int_equal(k, (1u << JH_F_SPLIT) | (1u << JH_F_TRANSFER));
    assert_string_equal(jh_fault_name(JH_F_SPLIT), "split");
    assert_string_equal(jh_fault_name(JH_F_TRANSFER), "leader-transfer");
    assert_int_equal(jh_nemesis_parse("netns-partition", &k), 0);
    assert_int_equal(k, 1u << JH_F_NETNS);
    assert_int_equal(jh_nemesis_parse("merge", &k), 0);
    assert_int_equal(k, 1u << JH_F_MERGE);
    assert_int_equal(jh_nemesis_parse("split,merge", &k), 0);
    assert_int_equal(k, (1u << JH_F_SPLIT) | (1u << JH_F_MERGE));
    assert_string_equal(jh_fault_name(JH_F_MERGE), "merge");
    assert_int_equal(jh_nemesis_parse("merges", &k), MERR_INVALID);
    assert_int_equal(jh_nemesis_parse("kill,bogus", &k), MERR_INVALID);
}

/* netns-partition says why it cannot run: each missing piece by name. */
static void test_netns_probe(void **state)
{
    (void)state;
    char dir[] = "/tmp/jh-netns-XXXXXX", why[256], path[300];
    assert_non_null(mkdtemp(dir));
    assert_int_equal(jh_netns_probe(dir, why, sizeof(why)), -1); /* nothing there */
    assert_non_null(strstr(why, "`ip`"));
    snprintf(path, sizeof(path), "%s/ip", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(chmod(path, 0755), 0);
    assert_int_equal(jh_netns_probe(dir, why, sizeof(why)), -1); /* ip, no filter */
    assert_non_null(strstr(why, "`iptables`"));
    unlink(path);
    rmdir(dir);
    /* This machine, whatever it has: a yes with no reason, or a no with one. */
    strcpy(why, "stale");
    if (jh_netns_probe(NULL, why, sizeof(why)) == 0)
        assert_string_equal(why, "");
    else
        assert_true(strlen(why) > 10);
}

/* Whether rules hold "node i drops chain to/from node j's address". */
static int has_ns_rule(const jh_cluster *c, const jh_netns_rule *r, int n, int i, const char *chain,
                       int j)
{
    char addr[64];
    snprintf(addr, sizeof(addr), "%.*s", (int)(strchr(c->nodes[j].rpc, ':') - c->nodes[j].rpc),
             c->nodes[j].rpc);
    for (int k = 0; k < n; k++)
        if (r[k].node == i && !strcmp(r[k].chain, chain) && !strcmp(r[k].addr, addr)) return 1;
    return 0;
}

/* netns-partition's iptables rules make exactly the cut jh_partition_cut
 * drew: a rule naming the wrong address (or its own side) would leave the
 * "partition" open and the run would pass without one. */
static void test_netns_rules(void **state)
{
    (void)state;
    jh_cluster c;
    make_cluster(&c, 5);
    static const jh_fault fs[] = {JH_F_ISOLATE, JH_F_LEADER, JH_F_ONEWAY, JH_F_HALVES};
    int ins = 0, outs = 0;
    for (uint64_t seed = 1; seed <= 64; seed++) {
        rpc_rng g;
        rpc_rng_seed(&g, seed);
        jh_fault f = fs[seed % 4];
        int side[JH_MAX_NODES];
        const char *how;
        char what[128];
        assert_int_equal(jh_partition_cut(&c, f, &g, side, &how, what, sizeof(what)), 0);
        jh_netns_rule r[64];
        int n = jh_netns_rules(&c, side, how, r, 64);
        int cut = 0;
        for (int i = 0; i < c.n; i++) cut += side[i];
        assert_true(cut >= 1 && cut <= c.n / 2);
        int per = !strcmp(how, "both") ? 2 : 1;
        assert_int_equal(n, cut * (c.n - cut) * per);
        ins += !strcmp(how, "in");
        outs += !strcmp(how, "out");
        for (int i = 0; i < c.n; i++)
            for (int j = 0; j < c.n; j++) {
                int across = side[i] && !side[j];
                int want_in = across && strcmp(how, "out") != 0;
                int want_out = across && strcmp(how, "in") != 0;
                assert_int_equal(has_ns_rule(&c, r, n, i, "INPUT", j), want_in);
                assert_int_equal(has_ns_rule(&c, r, n, i, "OUTPUT", j), want_out);
            }
    }
    assert_true(ins > 0 && outs > 0); /* one-way goes both ways over the seeds */
    /* Too little room, or an address without a port: refused, not truncated. */
    int side[JH_MAX_NODES] = {1, 0, 0, 0, 0};
    jh_netns_rule r[16];
    assert_int_equal(jh_netns_rules(&c, side, "both", r, 16), 8);
    assert_int_equal(jh_netns_rules(&c, side, "both", r, 7), -1);
    strcpy(c.nodes[1].rpc, "nonsense");
    assert_int_equal(jh_netns_rules(&c, side, "in", r, 16), -1);
}

/* leader-transfer picks its target from `debug ranges` (server/cmd_node.c's
 * table): a misread column would move leases to learners or nowhere. */
static void test_parse_ranges(void **state)
{
    (void)state;
    const char *out =
        "range  start            end              replicas       lease        keys      bytes  "
        "applied (node:slot)\n"
        "1      -inf             3\\x90-\\x00/@      1,2,3          3               4        161  "
        "1:8 2:8 3:8\n"
        "2      3\\x90-\\x00/@      +inf             1,2,3,4L       none            0          0  "
        "1:2 2:2\n"
        "garbage line\n";
    jh_range_row rows[4];
    assert_int_equal(jh_parse_ranges(out, rows, 4), 2);
    assert_int_equal(rows[0].id, 1);
    assert_int_equal(rows[0].lease, 3);
    assert_int_equal(rows[0].nvoters, 3);
    assert_int_equal(rows[0].voters[2], 3);
    assert_int_equal(rows[1].id, 2);
    assert_int_equal(rows[1].lease, 0);
    assert_int_equal(rows[1].nvoters, 3); /* the learner 4L is no target */
    assert_int_equal(jh_parse_ranges(out, rows, 1), 1);
    /* The spans, escapes undone; -inf and +inf are the empty key. */
    assert_int_equal(jh_parse_ranges(out, rows, 4), 2);
    assert_int_equal(rows[0].start_len, 0);
    assert_int_equal(rows[0].end_len, 6);
    assert_memory_equal(rows[0].end, "3\x90-\x00/@", 6);
    assert_memory_equal(rows[1].start, rows[0].end, 6);
    assert_int_equal(rows[1].start_len, 6);
    assert_int_equal(rows[1].end_len, 0);
}

/* Rows of a `debug ranges` table from spans given as text. */
static void ranges_table(char *buf, size_t cap, const char *const spans[][3], int n)
{
    size_t l = (size_t)snprintf(buf, cap, "range  start  end  replicas  lease  keys\n");
    for (int i = 0; i < n; i++)
        l += (size_t)snprintf(buf + l, cap - l, "%d %s %s %s 1 0 0 1:1\n", i + 1, spans[i][0],
                              spans[i][1], spans[i][2]);
}

static void span_of(jh_keyspan *sp, const char *lo, const char *hi)
{
    sp->lo_len = strlen(lo);
    sp->hi_len = strlen(hi);
    memcpy(sp->lo, lo, sp->lo_len);
    memcpy(sp->hi, hi, sp->hi_len);
}

/* merge picks only boundaries strictly inside the workload's key space
 * whose right neighbour has the same voters, and asks with a key of the
 * left range that lies inside the key space: a wrong pick would merge the
 * system range or another table's ranges, or refuse every time. */
static void test_merge_pick(void **state)
{
    (void)state;
    const char *const spans[][3] = {
        {"-inf", "jp/r/00000005", "1,2,3"},          /* 0: left of the first inner boundary */
        {"jp/r/00000005", "jp/r/00000009", "1,2,3"}, /* 1 */
        {"jp/r/00000009", "jp/r/00000012", "1,2,3"}, /* 2: right neighbour differs */
        {"jp/r/00000012", "jp/r0", "2,3,4"},         /* 3: ends at hi: the edge */
        {"jp/r0", "+inf", "2,3,4"},                  /* 4 */
    };
    char buf[2048];
    ranges_table(buf, sizeof(buf), spans, 5);
    jh_range_row rows[8];
    assert_int_equal(jh_parse_ranges(buf, rows, 8), 5);
    jh_keyspan sp;
    span_of(&sp, "jp/r/", "jp/r0");
    int seen[5] = {0};
    for (uint64_t seed = 1; seed <= 64; seed++) {
        rpc_rng g;
        rpc_rng_seed(&g, seed);
        uint8_t key[JH_KEY_MAX];
        size_t klen = 0;
        int i = jh_merge_pick(rows, 5, &sp, &g, key, &klen);
        assert_true(i == 0 || i == 1);
        seen[i]++;
        /* row 0 starts at -inf: the key is the key space's start */
        const char *want = i == 0 ? "jp/r/" : "jp/r/00000005";
        assert_int_equal(klen, strlen(want));
        assert_memory_equal(key, want, klen);
    }
    assert_true(seen[0] > 0 && seen[1] > 0);
    /* A boundary at the key space's start is its edge, not the workload's. */
    span_of(&sp, "jp/r/00000005", "jp/r0");
    rpc_rng g;
    rpc_rng_seed(&g, 1);
    uint8_t key[JH_KEY_MAX];
    size_t klen = 0;
    assert_int_equal(jh_merge_pick(rows, 5, &sp, &g, key, &klen), 1);
    /* Nothing inside (another workload's space; one range; no rows). */
    span_of(&sp, "jp/s/", "jp/s0");
    assert_int_equal(jh_merge_pick(rows, 5, &sp, &g, key, &klen), -1);
    assert_int_equal(jh_merge_pick(&rows[4], 1, &sp, &g, key, &klen), -1);
    assert_int_equal(jh_merge_pick(rows, 0, &sp, &g, key, &klen), -1);
    /* A right neighbour missing from the table (its nodes did not answer):
     * no pick, rather than a merge that must be refused. */
    span_of(&sp, "jp/r/", "jp/r0");
    assert_int_equal(jh_merge_pick(rows, 1, &sp, &g, key, &klen), -1);
}

/* With split and merge, split comes first in every round, so a merge
 * finds the boundaries splits made; the rest stays shuffled. */
static void test_round_order(void **state)
{
    (void)state;
    int firsts[JH_F_COUNT + 1] = {0};
    for (uint64_t seed = 1; seed <= 200; seed++) {
        rpc_rng g;
        rpc_rng_seed(&g, seed);
        int cl[] = {JH_F_KILL, JH_F_MERGE, JH_F_TRANSFER, JH_F_SPLIT, JH_F_COUNT};
        jh_shuffle_round(cl, 5, &g);
        int si = -1, mi = -1, sum = 0;
        for (int k = 0; k < 5; k++) {
            if (cl[k] == JH_F_SPLIT) si = k;
            if (cl[k] == JH_F_MERGE) mi = k;
            sum += cl[k];
        }
        assert_int_equal(sum, JH_F_KILL + JH_F_MERGE + JH_F_TRANSFER + JH_F_SPLIT + JH_F_COUNT);
        assert_true(si >= 0 && mi > si);
        firsts[cl[0]]++;
    }
    assert_int_equal(firsts[JH_F_MERGE], 0);
    assert_true(firsts[JH_F_SPLIT] > 0 && firsts[JH_F_KILL] > 0 && firsts[JH_F_TRANSFER] > 0);
    int one[] = {JH_F_MERGE}; /* merge alone: nothing to order */
    rpc_rng g;
    rpc_rng_seed(&g, 3);
    jh_shuffle_round(one, 1, &g);
    assert_int_equal(one[0], JH_F_MERGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_isolate),      cmocka_unit_test(test_leader_without_leader),
        cmocka_unit_test(test_one_way),      cmocka_unit_test(test_halves),
        cmocka_unit_test(test_one_node),     cmocka_unit_test(test_parse),
        cmocka_unit_test(test_parse_ranges), cmocka_unit_test(test_netns_probe),
        cmocka_unit_test(test_merge_pick),   cmocka_unit_test(test_round_order),
        cmocka_unit_test(test_netns_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
