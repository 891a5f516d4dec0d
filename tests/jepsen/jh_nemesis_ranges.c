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
 *   merge            `meridian debug merge --key K`: a range whose end is a
 *                    boundary inside the workload's key space absorbs its
 *                    right neighbour (jh_merge_pick), so merges undo what
 *                    split (or --split) made; requests in flight meet
 *                    RANGE_MISMATCH or a frozen range's UNAVAILABLE
 *
 * An event makes 1-3 requests spread over its hold time. A request the
 * cluster refuses (a split or merge while 2PC intents are prepared, a
 * transfer while another runs, a merge while a replica's node is down) or
 * that times out is counted, not an error: these nemeses change placement,
 * they break nothing, so there is nothing to heal. */
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

/* One key column of `debug ranges` (server/cmd_node.c fmt_key): printable
 * bytes as they are, others as \xNN; "-inf" / "+inf" are the empty key. */
static int unescape_key(const char *t, uint8_t *out, size_t *len)
{
    *len = 0;
    if (!strcmp(t, "-inf") || !strcmp(t, "+inf")) return 0;
    for (const char *p = t; *p; *len += 1) {
        if (*len == JH_KEY_MAX) return -1;
        unsigned v;
        if (p[0] == '\\' && p[1] == 'x' && p[2] && p[3] && sscanf(p + 2, "%2x", &v) == 1) {
            out[*len] = (uint8_t)v;
            p += 4;
        } else {
            out[*len] = (uint8_t)*p++;
        }
    }
    return 0;
}

int jh_parse_ranges(const char *text, jh_range_row *rows, int cap)
{
    int n = 0;
    for (const char *p = text; *p && n < cap;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        char line[1024], reps[256], lease[32], start[256], end[256];
        snprintf(line, sizeof(line), "%.*s", (int)(len < sizeof(line) ? len : sizeof(line) - 1), p);
        p += len + (eol ? 1 : 0);
        jh_range_row *r = &rows[n];
        *r = (jh_range_row){0};
        if (sscanf(line, "%" SCNu64 " %255s %255s %255s %31s", &r->id, start, end, reps, lease) !=
            5)
            continue;
        if (unescape_key(start, r->start, &r->start_len) || unescape_key(end, r->end, &r->end_len))
            continue;
        r->lease = strcmp(lease, "none") ? strtoull(lease, NULL, 10) : 0;
        for (char *save = NULL, *t = strtok_r(reps, ",", &save); t && r->nvoters < 16;
             t = strtok_r(NULL, ",", &save))
            if (!strchr(t, 'L')) r->voters[r->nvoters++] = strtoull(t, NULL, 10);
        n++;
    }
    return n;
}

int jh_hex(const uint8_t *p, size_t n, char *hex, size_t cap)
{
    if (cap < 3 + 2 * n) return -1;
    memcpy(hex, "0x", 3);
    for (size_t i = 0; i < n; i++) snprintf(hex + 2 + 2 * i, 3, "%02x", p[i]);
    return 0;
}

/* memcmp order of byte strings, a prefix first. */
static int keycmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

static int same_voters(const jh_range_row *a, const jh_range_row *b)
{
    if (a->nvoters != b->nvoters) return 0;
    for (int i = 0; i < a->nvoters; i++) {
        int found = 0;
        for (int j = 0; j < b->nvoters && !found; j++) found = a->voters[i] == b->voters[j];
        if (!found) return 0;
    }
    return 1;
}

int jh_merge_pick(const jh_range_row *rows, int n, const jh_keyspan *sp, rpc_rng *g, uint8_t *key,
                  size_t *klen)
{
    int cand[MAX_RANGES], nc = 0;
    for (int i = 0; i < n && nc < MAX_RANGES; i++) {
        const jh_range_row *l = &rows[i];
        /* The boundary l's end: strictly inside [lo, hi), so the merge
         * removes a boundary of the workload's own, not the edge of its
         * key space (nor the end of the key space, +inf). */
        if (!l->end_len || keycmp(l->end, l->end_len, sp->lo, sp->lo_len) <= 0 ||
            keycmp(l->end, l->end_len, sp->hi, sp->hi_len) >= 0)
            continue;
        for (int j = 0; j < n; j++)
            if (!keycmp(rows[j].start, rows[j].start_len, l->end, l->end_len)) {
                if (same_voters(l, &rows[j])) cand[nc++] = i;
                break;
            }
    }
    if (!nc) return -1;
    int i = cand[rpc_rng_next(g) % (uint64_t)nc];
    const jh_range_row *l = &rows[i];
    /* l holds [start, end) and end > lo: the larger of start and lo is in it. */
    if (keycmp(l->start, l->start_len, sp->lo, sp->lo_len) >= 0) {
        memcpy(key, l->start, l->start_len);
        *klen = l->start_len;
    } else {
        memcpy(key, sp->lo, sp->lo_len);
        *klen = sp->lo_len;
    }
    return i;
}

/* `debug ranges` from the first node that answers: rows, or 0 if none. */
static int fetch_ranges(jh_cluster *c, char *out, jh_range_row *rows)
{
    int n = 0;
    for (int i = 0; out && rows && i < c->n && n == 0; i++) {
        char *argv[] = {(char *)c->bin, "debug",         "ranges", "--insecure",
                        "--host",       c->nodes[i].rpc, NULL};
        if (jh_tool(c, argv, out, RANGES_OUT_MAX) == 0) n = jh_parse_ranges(out, rows, MAX_RANGES);
    }
    return n;
}

static void one_merge(jh_cluster *c, const jh_nemesis_opts *o, const char *hosts, rpc_rng *g,
                      jp_recorder *rec, jh_nemesis_stats *st)
{
    char *out = malloc(RANGES_OUT_MAX);
    jh_range_row *rows = calloc(MAX_RANGES, sizeof(*rows));
    jh_keyspan sp;
    uint8_t key[JH_KEY_MAX];
    size_t klen = 0;
    char hex[2 * JH_KEY_MAX + 3], res[512];
    int i = -1, n = 0;
    if (!o->key_space || o->key_space(o->run, &sp)) {
        jh_note(c, rec, "merge: the workload's key space is not known yet");
    } else if (!(n = fetch_ranges(c, out, rows))) {
        jh_note(c, rec, "merge: no node answered `debug ranges`");
    } else if ((i = jh_merge_pick(rows, n, &sp, g, key, &klen)) < 0) {
        st->merges_idle++;
        jh_note(c, rec, "merge: no boundary inside the key space to remove");
    }
    if (i < 0) goto out;
    jh_hex(key, klen, hex, sizeof(hex));
    char *argv[] = {(char *)c->bin, "debug", "merge",     "--insecure", "--host", (char *)hosts,
                    "--key",        hex,     "--timeout", "20s",        NULL};
    int rc = jh_tool(c, argv, res, sizeof(res));
    if (rc == 0) {
        st->merges++;
        res[strcspn(res, "\n")] = '\0'; /* "merged: range ..." */
        jh_note(c, rec, "merge at %s: range %" PRIu64 " absorbed its right neighbour: %s", hex,
                rows[i].id, res);
    } else {
        st->merges_refused++;
        jh_note(c, rec,
                "merge at %s (range %" PRIu64 ") refused or timed out (status %d, see the log)",
                hex, rows[i].id, rc);
    }
out:
    free(out);
    free(rows);
}

static void one_transfer(jh_cluster *c, const char *hosts, rpc_rng *g, jp_recorder *rec,
                         jh_nemesis_stats *st)
{
    char *out = malloc(RANGES_OUT_MAX);
    jh_range_row *rows = calloc(MAX_RANGES, sizeof(*rows));
    int n = fetch_ranges(c, out, rows);
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
        else if (f == JH_F_MERGE)
            one_merge(c, o, hosts, g, rec, st);
        else
            one_transfer(c, hosts, g, rec, st);
    }
    jh_nap(end - mtime_mono_ns(), stop);
    jh_note(c, rec, "end %s", jh_fault_name(f));
}
