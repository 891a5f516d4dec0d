/* Named placement policies (placement/pd_policy_text.h): the canonical text
 * round-trips, bad input of every kind is refused with a clear message and
 * leaves nothing allocated, a set never gets overlapping spans, a parsed
 * policy drives the schedulers (split at its boundaries, leases to its lead
 * region), and heartbeats carry the node's locality into the snapshot. */
#include "pd_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "placement/pd_feed.h"
#include "placement/pd_policy_text.h"

static void mk(pd_policy *p, const char *start, const char *end, int rf)
{
    memset(p, 0, sizeof(*p));
    p->replication_factor = rf;
    assert_int_equal(pd_key_set(&p->start, start, strlen(start)), 0);
    assert_int_equal(pd_key_set(&p->end, end, strlen(end)), 0);
}

static void test_text_round_trip(void **state)
{
    (void)state;
    pd_policy p, q;
    merr e = {0};
    char buf[PD_POLICY_TEXT_MAX], buf2[PD_POLICY_TEXT_MAX];
    mk(&p, "t\x01", "t\x02", 5);
    assert_int_equal(pd_policy_parse_regions("us,eu", &p, &e), 0);
    strcpy(p.lead_region, "us");
    p.survival = PD_SURVIVE_REGION;
    assert_int_equal(pd_policy_check(&p, &e), 0);
    size_t n = pd_policy_format(&p, buf, sizeof(buf));
    assert_string_equal(buf, "replicas=5 start=0x7401 end=0x7402 regions=us,eu lead_region=us "
                             "survive=region");
    assert_int_equal(n, strlen(buf));
    assert_int_equal(pd_policy_parse(buf, n, &q, &e), 0);
    pd_policy_format(&q, buf2, sizeof(buf2));
    assert_string_equal(buf, buf2);
    assert_int_equal(q.n_allowed, 2);
    assert_string_equal(q.allowed_regions[1], "eu");
    assert_true(pd_key_eq(&p.start, &q.start) && pd_key_eq(&p.end, &q.end));
    pd_policy_free(&q);
    pd_policy_free(&p);

    /* An open end and no regions: the fields are left out or empty. */
    mk(&p, "\x01", "", 3);
    pd_policy_format(&p, buf, sizeof(buf));
    assert_string_equal(buf, "replicas=3 start=0x01 end= survive=zone");
    assert_int_equal(pd_policy_parse(buf, strlen(buf), &q, &e), 0);
    assert_int_equal(q.end.len, 0);
    assert_int_equal(q.n_allowed, 0);
    pd_policy_free(&q);
    pd_policy_free(&p);
    /* A short buffer truncates like snprintf. */
    mk(&p, "\x01", "", 3);
    assert_int_equal(pd_policy_format(&p, buf, 8), 7);
    assert_int_equal(strlen(buf), 7);
    pd_policy_free(&p);
}

static void expect_parse_error(const char *text, const char *needle)
{
    pd_policy q;
    merr e = {0};
    assert_int_equal(pd_policy_parse(text, strlen(text), &q, &e), MERR_INVALID);
    if (!strstr(e.msg, needle))
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", text, e.msg, needle);
    assert_null(q.start.p);
    assert_null(q.end.p);
}

static void test_text_refused(void **state)
{
    (void)state;
    expect_parse_error("", "needed");
    expect_parse_error("replicas=3 start=0x01 end=", "needed");
    expect_parse_error("replicas=2 start=0x01 end= survive=zone", "1, 3 or 5");
    expect_parse_error("replicas=x start=0x01 end= survive=zone", "replicas");
    expect_parse_error("replicas=3 start=0x0g end= survive=zone", "hex");
    expect_parse_error("replicas=3 start=0x012 end= survive=zone", "hex");
    expect_parse_error("replicas=3 start=01 end= survive=zone", "hex");
    expect_parse_error("replicas=3 start=0x00ff end= survive=zone", "0x01");
    expect_parse_error("replicas=3 start= end= survive=zone", "0x01");
    expect_parse_error("replicas=3 start=0x05 end=0x05 survive=zone", "below");
    expect_parse_error("replicas=3 start=0x01 end= survive=rack", "zone or region");
    expect_parse_error("replicas=3 start=0x01 end= survive=zone colour=red", "unexpected");
    expect_parse_error("replicas=3 replicas=5 start=0x01 end= survive=zone", "unexpected");
    expect_parse_error("replicas=3 start=0x01 end= survive=zone junk", "name=value");
    expect_parse_error("replicas=3 start=0x01 end= regions=us,US survive=zone", "lower-case");
    expect_parse_error("replicas=3 start=0x01 end= regions=us,us survive=zone", "twice");
    expect_parse_error("replicas=3 start=0x01 end= regions=us, survive=zone", "comma");
    expect_parse_error("replicas=3 start=0x01 end= regions=a,b,c,d,e,f,g,h,i survive=zone",
                       "at most");
    expect_parse_error("replicas=3 start=0x01 end= regions=us lead_region=eu survive=zone",
                       "not among");
}

static void test_names_and_overlaps(void **state)
{
    (void)state;
    merr e = {0};
    assert_int_equal(pd_policy_name_check("users.eu-1_a", &e), 0);
    assert_int_equal(pd_policy_name_check("", &e), MERR_INVALID);
    assert_int_equal(pd_policy_name_check("a b", &e), MERR_INVALID);
    assert_int_equal(pd_policy_name_check("a/b", &e), MERR_INVALID);
    char longname[PD_POLICY_NAME_MAX + 1];
    memset(longname, 'a', PD_POLICY_NAME_MAX);
    longname[PD_POLICY_NAME_MAX] = 0;
    assert_int_equal(pd_policy_name_check(longname, &e), MERR_INVALID);
    longname[PD_POLICY_NAME_MAX - 1] = 0;
    assert_int_equal(pd_policy_name_check(longname, &e), 0);

    pd_named_policy set[2];
    strcpy(set[0].name, "a");
    mk(&set[0].p, "b", "d", 3);
    strcpy(set[1].name, "open");
    mk(&set[1].p, "x", "", 3);
    pd_policy p;
    /* Touching spans do not overlap; [c, e) does. */
    mk(&p, "d", "e", 3);
    assert_int_equal(pd_policy_check_with(set, 2, "new", &p, &e), 0);
    pd_policy_free(&p);
    mk(&p, "c", "e", 3);
    assert_int_equal(pd_policy_check_with(set, 2, "new", &p, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "overlaps policy \"a\""));
    /* ... unless it replaces the policy of the same name. */
    assert_int_equal(pd_policy_check_with(set, 2, "a", &p, &e), 0);
    pd_policy_free(&p);
    /* An open end overlaps everything after its start. */
    mk(&p, "z", "zz", 3);
    assert_int_equal(pd_policy_check_with(set, 2, "new", &p, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "\"open\""));
    pd_policy_free(&p);
    mk(&p, "c", "", 3);
    assert_int_equal(pd_policy_check_with(set, 2, "new", &p, &e), MERR_INVALID);
    assert_int_equal(pd_policy_check_with(set, 2, "bad name", &set[0].p, &e), MERR_INVALID);
    pd_policy_free(&p);

    /* Stored policies that overlap anyway (two racing sets): the later one
     * is left out, so the snapshot stays valid; the rest are added. */
    pd_named_policy three[3];
    three[0] = set[0];            /* [b, d) */
    mk(&three[1].p, "c", "e", 3); /* overlaps [b, d) */
    three[2] = set[1];            /* [x, +inf) */
    pd_cluster c;
    pd_cluster_init(&c);
    size_t left_out = 9;
    assert_int_equal(pd_policy_add_all(&c, three, 3, &left_out), 0);
    assert_int_equal(left_out, 1);
    assert_int_equal(c.n_policies, 2);
    assert_int_equal(pd_cluster_validate(&c, &e), 0);
    pd_cluster_free(&c);
    pd_policy_free(&three[1].p);
    pd_policy_free(&set[0].p);
    pd_policy_free(&set[1].p);
}

/* A stored policy, parsed back, is what the schedulers act on: its
 * boundaries split the one range there is, and a lease outside its lead
 * region moves into it. */
static void test_parsed_policy_drives_schedulers(void **state)
{
    (void)state;
    fx f;
    fx_init(&f);
    pd_node_id a = fx_node(&f, "us", "z1"), b = fx_node(&f, "eu", "z2"),
               c = fx_node(&f, "ap", "z3");
    pd_node_id v[3] = {b, a, c}; /* b (eu) leads */
    fx_range(&f, -1, -1, v, 3, 1024);
    char text[PD_POLICY_TEXT_MAX];
    pd_key k1, k2;
    char b1[16], b2[16];
    fx_key(&k1, b1, 10);
    fx_key(&k2, b2, 20);
    snprintf(text, sizeof(text), "replicas=3 start=0x");
    for (size_t i = 0; i < k1.len; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "%02x", k1.p[i]);
    strcat(text, " end=0x");
    for (size_t i = 0; i < k2.len; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "%02x", k2.p[i]);
    strcat(text, " lead_region=us survive=zone");
    pd_policy p;
    merr e = {0};
    assert_int_equal(pd_policy_parse(text, strlen(text), &p, &e), 0);
    assert_int_equal(pd_cluster_add_policy(&f.c, &p), 0);
    pd_policy_free(&p);

    pd_ops ops;
    pd_ops_init(&ops);
    assert_int_equal(pd_schedule_split(&f.c, &f.s, &ops), 0);
    assert_int_equal(ops.n, 1);
    assert_true(ops.v[0].reason == PD_REASON_POLICY && pd_key_eq(&ops.v[0].key, &k1));
    fx_trace t = {0};
    fx_converge(&f, 50, &t);
    /* Three ranges; only the one inside the policy leads from us. */
    assert_int_equal(f.c.n_ranges, 3);
    for (size_t i = 0; i < f.c.n_ranges; i++) {
        const pd_range *r = &f.c.ranges[i];
        if (pd_key_eq(&r->start, &k1)) assert_true(r->leader == a);
    }
    fx_trace_free(&t);
    pd_ops_free(&ops);
    fx_free(&f);
}

/* Factor 1 in us or eu, leases in eu: the one replica, in us, is allowed
 * and diverse already; the lead region is what moves it (a lease can only
 * go where a replica is). */
static void test_lead_region_draws_replica(void **state)
{
    (void)state;
    fx f;
    fx_init(&f);
    pd_node_id us = fx_node(&f, "us", "z1"), eu = fx_node(&f, "eu", "z2");
    fx_node(&f, "ap", "z3");
    pd_node_id v[1] = {us};
    pd_range_id id = fx_range(&f, -1, -1, v, 1, 1024);
    pd_policy p;
    mk(&p, "", "", 1);
    merr e = {0};
    assert_int_equal(pd_policy_parse_regions("us,eu", &p, &e), 0);
    strcpy(p.lead_region, "eu");
    assert_int_equal(pd_cluster_add_policy(&f.c, &p), 0);
    pd_policy_free(&p);
    fx_trace t = {0};
    fx_converge(&f, 50, &t);
    const pd_range *r = pd_cluster_range(&f.c, id);
    assert_int_equal(r->n_replicas, 1);
    assert_true(r->replicas[0].node == eu && r->leader == eu);
    assert_int_equal(t.reversals, 0);
    fx_trace_free(&t);
    fx_free(&f);
}

static void test_heartbeat_locality(void **state)
{
    (void)state;
    pd_hb_table t;
    pd_hb_table_init(&t);
    pd_hb hb;
    memset(&hb, 0, sizeof(hb));
    hb.node = 4;
    hb.received_ns = FX_S(10);
    strcpy(hb.region, "eu");
    strcpy(hb.zone, "eu-1");
    assert_int_equal(pd_hb_table_put(&t, &hb), 0);
    pd_node_id reg[] = {4, 5};
    pd_cluster c;
    pd_cluster_init(&c);
    merr e = {0};
    assert_int_equal(pd_feed_build(&t, reg, 2, NULL, 0, FX_S(1), FX_S(11), &c, &e), 0);
    assert_string_equal(pd_cluster_node(&c, 4)->region, "eu");
    assert_string_equal(pd_cluster_node(&c, 4)->zone, "eu-1");
    assert_string_equal(pd_cluster_node(&c, 5)->region, ""); /* not heard: unknown */
    pd_cluster_free(&c);
    pd_hb_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_round_trip),
        cmocka_unit_test(test_text_refused),
        cmocka_unit_test(test_names_and_overlaps),
        cmocka_unit_test(test_parsed_policy_drives_schedulers),
        cmocka_unit_test(test_lead_region_draws_replica),
        cmocka_unit_test(test_heartbeat_locality),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
