/* The range nemeses of the harness (see jh_run.h): range boundaries and
 * leases moved under the workload, each by the cluster's own admin commands,
 * so every move goes through the Paxos logs as in production.
 *
 *   split            `meridian debug split --key K` at keys inside the
 *                    workload's live key space (jh_split_point): requests
 *                    in flight meet RANGE_MISMATCH and a new range; txns
 *                    spanning the new boundary need 2PC
 *   leader-transfer  `meridian debug transfer-lease --range R --to N`:
 *                    range 1 half the time (it holds the system keys and,
 *                    unsplit, the key-value workloads), else any range,
 *                    to a random other voter
 *   merge            (JH_F_MERGE, to come with range merges: forced merges
 *                    of neighbouring ranges, the same shape as split)
 *
 * An event makes 1-3 requests spread over its hold time. A request the
 * cluster refuses (a split while 2PC intents are prepared, a transfer while
 * another runs) or that times out is counted, not an error: these nemeses
 * change placement, they break nothing, so there is nothing to heal. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mtime.h"
#include "tests/jepsen/jh_run.h"

#define RANGES_OUT_MAX (64 * 1024)
#define MAX_RANGES     512

/* Every node's rpc address, comma-separated: the tools follow hints. */
static void all_hosts(const jh_cluster *c, char *buf, size_t cap)
{
    size_t l = 0;
    buf[0] = '\0';
    for (int i = 0; i < c->n && l < cap; i++)
        l += (size_t)snprintf(buf + l, cap - l, "%s%s", i ? "," : "", c->nodes[i].rpc);
}

static void one_split(jh_cluster *c, const jh_nemesis_opts *o, const char *hosts, rpc_rng *g,
                      jp_recorder *rec, jh_nemesis_stats *st)
{
    char hex[160], out[512];
    if (!o->split_point || o->split_point(o->run, g, hex, sizeof(hex))) {
        jh_note(c, rec, "split: no live key to split at yet");
        return;
    }
    char *argv[] = {(char *)c->bin, "debug", "split",     "--insecure", "--host", (char *)hosts,
                    "--key",        hex,     "--timeout", "20s",        NULL};
    int rc = jh_tool(c, argv, out, sizeof(out));
    if (rc == 0) {
        st->splits++;
        out[strcspn(out, "\n")] = '\0'; /* "left:  range ..." */
        jh_note(c, rec, "split at %s: %s", hex, out);
    } else {
        st->splits_refused++;
        jh_note(c, rec, "split at %s refused or timed out (status %d, see the log)", hex, rc);
    }
}

int jh_parse_ranges(const char *text, jh_range_row *rows, int cap)
{
    int n = 0;
    for (const char *p = text; *p && n < cap;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[1024], reps[256], lease[32];
        snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : sizeof(line) - 1), p);
        p += len + (eol ? 1 : 0);
        jh_range_row *r = &rows[n];
        *r = (jh_range_row){0};
        if (sscanf(line, "%" SCNu64 " %*s %*s %255s %31s", &r->id, reps, lease) != 3) continue;
        r->lease = strcmp(lease, "none") ? strtoull(lease, NULL, 10) : 0;
        for (char *save = NULL, *t = strtok_r(reps, ",", &save); t && r->nvoters < 16;
             t = strtok_r(NULL, ",", &save))
            if (!strchr(t, 'L')) r->voters[r->nvoters++] = strtoull(t, NULL, 10);
        n++;
    }
    return n;
}

static void one_transfer(jh_cluster *c, const char *hosts, rpc_rng *g, jp_recorder *rec,
                         jh_nemesis_stats *st)
{
    char *out = malloc(RANGES_OUT_MAX);
    jh_range_row *rows = calloc(MAX_RANGES, sizeof(*rows));
    int n = 0;
    for (int i = 0; out && rows && i < c->n && n == 0; i++) { /* any node that answers */
        char *argv[] = {(char *)c->bin, "debug",         "ranges", "--insecure",
                        "--host",       c->nodes[i].rpc, NULL};
        if (jh_tool(c, argv, out, RANGES_OUT_MAX) == 0) n = jh_parse_ranges(out, rows, MAX_RANGES);
    }
    /* Candidates: a known leaseholder and another voter to move to. */
    int cand[MAX_RANGES], nc = 0, one = -1;
    for (int i = 0; i < n; i++) {
        if (!rows[i].lease || rows[i].nvoters < 2) continue;
        if (rows[i].id == 1) one = nc;
        cand[nc++] = i;
    }
    if (!nc) {
        st->transfers_refused++;
        jh_note(c, rec, "leader-transfer: no range with a leaseholder and another voter");
        goto out;
    }
    int pick = one >= 0 && rpc_rng_next(g) % 2 ? one : (int)(rpc_rng_next(g) % (uint64_t)nc);
    const jh_range_row *r = &rows[cand[pick]];
    uint64_t to = r->lease;
    while (to == r->lease) to = r->voters[rpc_rng_next(g) % (uint64_t)r->nvoters];
    char rs[24], ts[24];
    snprintf(rs, sizeof(rs), "%" PRIu64, r->id);
    snprintf(ts, sizeof(ts), "%" PRIu64, to);
    char *argv[] = {(char *)c->bin,
                    "debug",
                    "transfer-lease",
                    "--insecure",
                    "--host",
                    (char *)hosts,
                    "--range",
                    rs,
                    "--to",
                    ts,
                    "--timeout",
                    "20s",
                    NULL};
    int rc = jh_tool(c, argv, NULL, 0);
    if (rc == 0) {
        st->transfers++;
        jh_note(c, rec, "leader-transfer: range %s lease %" PRIu64 " -> %s", rs, r->lease, ts);
    } else {
        st->transfers_refused++;
        jh_note(c, rec, "leader-transfer: range %s to %s refused or timed out (status %d)", rs, ts,
                rc);
    }
out:
    free(out);
    free(rows);
}

void jh_ranges_fault(jh_cluster *c, jh_fault f, const jh_nemesis_opts *o, int64_t hold_ns,
                     rpc_rng *g, jp_recorder *rec, volatile sig_atomic_t *stop,
                     jh_nemesis_stats *st)
{
    char hosts[JH_MAX_NODES * 64];
    all_hosts(c, hosts, sizeof(hosts));
    int n = 1 + (int)(rpc_rng_next(g) % 3);
    int64_t end = mtime_mono_ns() + hold_ns;
    jh_note(c, rec, "start %s: %d requests over %.1fs", jh_fault_name(f), n, (double)hold_ns / 1e9);
    for (int k = 0; k < n && !*stop; k++) {
        if (k) jh_nap(hold_ns / n, stop);
        if (*stop) break;
        if (f == JH_F_SPLIT)
            one_split(c, o, hosts, g, rec, st);
        else
            one_transfer(c, hosts, g, rec, st);
    }
    jh_nap(end - mtime_mono_ns(), stop);
    jh_note(c, rec, "end %s", jh_fault_name(f));
}
