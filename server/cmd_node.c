/* `meridian node status --host H`: every node the cluster knows, with its
 * address, locality, state, replica and lease counts and uptime. The host is
 * asked for its address book; then every node is asked for its own status (a
 * node that does not answer is listed as unreachable). The liveness column
 * is the placement driver's (live/suspect/dead/decommissioning, from its
 * heartbeats: "-" when it cannot be asked). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/cli.h"
#include "common/mtime.h"
#include "proto/node.pb-c.h"
#include "proto/pd.pb-c.h"
#include "proto/range.pb-c.h"
#include "server/cli_rpc.h"
#include "server/commands.h"
#include "server/kv_cli.h"

/* Asks the first address of addrs (comma-separated) that answers, as the
 * other debug commands take their --host. */
static ProtobufCMessage *ask(const char *addrs, const char *certs, const char *method,
                             const ProtobufCMessageDescriptor *desc, merr *e)
{
    ProtobufCMessage *m = NULL;
    const char *p = addrs;
    merr_set(e, MERR_INVALID, "no address given");
    while (!m && *p) {
        size_t l = strcspn(p, ",");
        char one[256];
        snprintf(one, sizeof(one), "%.*s", (int)(l < sizeof(one) ? l : sizeof(one) - 1), p);
        p += l;
        if (*p == ',') p++;
        if (one[0]) m = cli_rpc_ask(one, certs, method, desc, 3 * MTIME_S, e);
    }
    return m;
}

static Meridian__Node__StatusResponse *status_of(const char *addr, const char *certs, merr *e)
{
    return (Meridian__Node__StatusResponse *)ask(addr, certs, "node.Status",
                                                 &meridian__node__status_response__descriptor, e);
}

static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') putchar('\\');
        if ((unsigned char)*s >= 0x20) putchar(*s);
    }
    putchar('"');
}

static Meridian__Kv__Error *err_nodes(ProtobufCMessage *m)
{
    return ((Meridian__Pd__NodesResponse *)m)->error;
}

/* The placement driver's view (liveness from heartbeats, replicas and
 * leases per the leaseholders); NULL when it cannot be asked: the table
 * then shows "-". */
static Meridian__Pd__NodesResponse *pd_nodes(const char *host, const char *certs)
{
    kv_client c;
    merr e = {0};
    ProtobufCMessage *out = NULL;
    if (kv_client_open(&c, host, certs, 5 * MTIME_S, &e)) return NULL;
    Meridian__Pd__NodesRequest q = MERIDIAN__PD__NODES_REQUEST__INIT;
    if (kv_client_call(&c, "pd.Nodes", &q.base, &meridian__pd__nodes_response__descriptor,
                       err_nodes, &out, &e))
        out = NULL;
    kv_client_close(&c);
    return (Meridian__Pd__NodesResponse *)out;
}

static const char *liveness_of(const Meridian__Pd__NodesResponse *pd, uint64_t id)
{
    for (size_t i = 0; pd && i < pd->n_nodes; i++)
        if (pd->nodes[i]->node_id == id) return pd->nodes[i]->liveness;
    return "-";
}

/* The flags `node status` and `debug ranges` share (the directory view is
 * only the latter's). */
typedef struct view_opts {
    const char *host, *certs;
    int json, directory;
} view_opts;

/* -1 to go on with *o, else the exit status (usage, or --help shown). */
static int view_opts_parse(int argc, char **argv, int with_directory, view_opts *o)
{
    const char *format = "table";
    int insecure = 0;
    *o = (view_opts){0};
    cli_flag flags[] = {
        {"host", CLI_STR, &o->host, "HOST:PORT[,...]",
         "any node of the cluster; of a list, the first that answers (required)"},
        {"format", CLI_STR, &format, "table|json", "output format (default table)"},
        {"certs-dir", CLI_STR, &o->certs, "DIR", "TLS: ca.crt, client.root.crt, client.root.key"},
        {"insecure", CLI_BOOL, &insecure, NULL, "no TLS (the cluster runs --insecure)"},
        {"directory", CLI_BOOL, &o->directory, NULL,
         "list the range directory (range 1's record) instead of asking every node"},
        {0},
    };
    if (!with_directory) flags[4] = (cli_flag){0};
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0],
                       with_directory ? "--host HOST:PORT[,...] [--format table|json] [--directory]"
                                      : "--host HOST:PORT[,...] [--format table|json]",
                       flags, argc, argv, &npos, &done);
    if (done) return rc;
    o->json = strcmp(format, "json") == 0;
    if (!o->host || npos || !o->certs == !insecure || (!o->json && strcmp(format, "table"))) {
        fprintf(stderr, "%s: need --host, --certs-dir DIR or --insecure, and --format table|json\n",
                argv[0]);
        return CLI_EXIT_USAGE;
    }
    return -1;
}

int cmd_node_status(int argc, char **argv)
{
    view_opts o;
    int rc = view_opts_parse(argc, argv, 0, &o);
    if (rc >= 0) return rc;
    const char *host = o.host, *certs = o.certs;
    int json = o.json;
    merr e = {0};
    Meridian__Node__StatusResponse *first = status_of(host, certs, &e);
    if (!first) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return 1;
    }
    Meridian__Pd__NodesResponse *pd = pd_nodes(host, certs);
    if (!json)
        printf("%-4s %-22s %-24s %-9s %8s %6s %10s %s\n", "id", "address", "locality", "state",
               "replicas", "leases", "uptime", "liveness");
    /* The address book may not list the host itself before it has an identity. */
    size_t n = first->n_peers ? first->n_peers : 1;
    int unreachable = 0;
    if (json) printf("[");
    for (size_t i = 0; i < n; i++) {
        const char *addr = first->n_peers ? first->peers[i]->address : host;
        uint64_t id = first->n_peers ? first->peers[i]->node_id : first->node_id;
        merr pe = {0};
        Meridian__Node__StatusResponse *s = status_of(addr, certs, &pe);
        if (json) {
            printf("%s{\"id\":%" PRIu64 ",\"address\":", i ? "," : "", id);
            json_str(addr);
            if (s) {
                printf(",\"region\":");
                json_str(s->locality ? s->locality->region : "");
                printf(",\"zone\":");
                json_str(s->locality ? s->locality->zone : "");
                printf(",\"state\":");
                json_str(s->state);
                printf(",\"replicas\":%u,\"leases\":%u,\"uptime_seconds\":%.1f,\"liveness\":",
                       s->replicas, s->leases, s->uptime_seconds);
                json_str(liveness_of(pd, id));
                printf("}");
            } else {
                printf(",\"state\":\"unreachable\",\"error\":");
                json_str(pe.msg);
                printf(",\"liveness\":");
                json_str(liveness_of(pd, id));
                printf("}");
            }
        } else if (s) {
            char loc[64];
            snprintf(loc, sizeof(loc), "%s/%s", s->locality ? s->locality->region : "?",
                     s->locality ? s->locality->zone : "?");
            printf("%-4" PRIu64 " %-22s %-24s %-9s %8u %6u %9.0fs %s\n", id, addr, loc, s->state,
                   s->replicas, s->leases, s->uptime_seconds, liveness_of(pd, id));
        } else {
            printf("%-4" PRIu64 " %-22s %-24s %-9s %8s %6s %10s %s\n", id, addr, "-", "unreachable",
                   "-", "-", "-", liveness_of(pd, id));
        }
        if (!s) unreachable++;
        if (s) meridian__node__status_response__free_unpacked(s, NULL);
    }
    if (json) printf("]\n");
    meridian__node__status_response__free_unpacked(first, NULL);
    if (pd) meridian__pd__nodes_response__free_unpacked(pd, NULL);
    return unreachable ? 3 : 0;
}

static Meridian__Node__RangesResponse *ranges_of(const char *addr, const char *certs, merr *e)
{
    return (Meridian__Node__RangesResponse *)ask(addr, certs, "node.Ranges",
                                                 &meridian__node__ranges_response__descriptor, e);
}

/* Keys are bytes: printable ones as they are, the rest as \xNN. */
static void fmt_key(const ProtobufCBinaryData *k, int is_end, char *out, size_t cap)
{
    if (k->len == 0) {
        snprintf(out, cap, "%s", is_end ? "+inf" : "-inf");
        return;
    }
    size_t o = 0;
    for (size_t i = 0; i < k->len && o + 5 < cap; i++) {
        uint8_t ch = k->data[i];
        if (ch >= 0x20 && ch < 0x7f && ch != '\\')
            out[o++] = (char)ch;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
    }
    out[o] = 0;
}

/* `debug ranges --directory`: the range directory as range 1 holds it
 * (dir.Scan), overlaps resolved by generation: span, generation, replicas
 * and the leader the leaseholder recorded. */
static int print_directory(const char *host, const char *certs, int json, const char *cmd)
{
    merr e = {0};
    Meridian__Range__DirResponse *d = (Meridian__Range__DirResponse *)ask(
        host, certs, "dir.Scan", &meridian__range__dir_response__descriptor, &e);
    if (d && d->error) merr_set(&e, MERR_UNAVAILABLE, "%s", d->error->message);
    if (!d || d->error) {
        fprintf(stderr, "%s: %s\n", cmd, e.msg);
        if (d) meridian__range__dir_response__free_unpacked(d, NULL);
        return 1;
    }
    if (json)
        printf("[");
    else
        printf("%-6s %-16s %-16s %-5s %-14s %-6s %s\n", "range", "start", "end", "gen", "replicas",
               "leader", "leader address");
    for (size_t i = 0; i < d->n_ranges; i++) {
        const Meridian__Meta__RangeDescriptor *r = d->ranges[i];
        char start[64], end[64], reps[96] = "";
        fmt_key(&r->start_key, 0, start, sizeof(start));
        fmt_key(&r->end_key, 1, end, sizeof(end));
        size_t rpos = 0;
        for (size_t k = 0; k < r->n_replicas; k++)
            rpos += (size_t)snprintf(
                reps + rpos, rpos < sizeof(reps) ? sizeof(reps) - rpos : 0, "%s%" PRIu64 "%s",
                k ? "," : "", r->replicas[k]->node_id,
                r->replicas[k]->type == MERIDIAN__META__REPLICA_TYPE__LEARNER ? "L" : "");
        const char *addr = i < d->n_leader_addresses ? d->leader_addresses[i] : "";
        if (json) {
            printf("%s{\"range\":%" PRIu64 ",\"generation\":%" PRIu64 ",\"start\":", i ? "," : "",
                   r->range_id, r->generation);
            json_str(start);
            printf(",\"end\":");
            json_str(end);
            printf(",\"replicas\":");
            json_str(reps);
            printf(",\"leader\":%" PRIu64 ",\"leader_address\":", r->leader_node_id);
            json_str(addr);
            printf("}");
        } else {
            printf("%-6" PRIu64 " %-16s %-16s %-5" PRIu64 " %-14s %-6" PRIu64 " %s\n", r->range_id,
                   start, end, r->generation, reps, r->leader_node_id, addr);
        }
    }
    if (json) printf("]\n");
    meridian__range__dir_response__free_unpacked(d, NULL);
    return 0;
}

/* `meridian debug ranges --host H`: every range with its span, replicas,
 * leaseholder, size and how far each replica has applied. */
int cmd_debug_ranges(int argc, char **argv)
{
    view_opts o;
    int rc = view_opts_parse(argc, argv, 1, &o);
    if (rc >= 0) return rc;
    const char *host = o.host, *certs = o.certs;
    int json = o.json, directory = o.directory;
    if (directory) return print_directory(host, certs, json, argv[0]);
    merr e = {0};
    Meridian__Node__StatusResponse *st = status_of(host, certs, &e);
    if (!st) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return 1;
    }
    size_t nn = st->n_peers;
    Meridian__Node__RangesResponse *per[64] = {0};
    if (nn > 64) nn = 64;
    for (size_t i = 0; i < nn; i++) {
        merr pe = {0};
        per[i] = ranges_of(st->peers[i]->address, certs, &pe);
    }
    /* Every range id any node reports, in order. */
    uint64_t ids[256];
    size_t nids = 0;
    for (size_t i = 0; i < nn; i++)
        for (size_t j = 0; per[i] && j < per[i]->n_ranges; j++) {
            uint64_t id = per[i]->ranges[j]->descriptor->range_id;
            size_t k = 0;
            while (k < nids && ids[k] != id) k++;
            if (k == nids && nids < 256) ids[nids++] = id;
        }
    if (json)
        printf("[");
    else
        printf("%-6s %-16s %-16s %-14s %-6s %10s %10s %8s %-14s  %s\n", "range", "start", "end",
               "replicas", "lease", "keys", "bytes", "qps", "regions", "applied (node:slot)");
    for (size_t k = 0; k < nids; k++) {
        const Meridian__Node__RangeInfo *best = NULL, *lh = NULL;
        uint64_t lease = 0;
        char applied[512] = "", nodes[256] = "";
        size_t ap = 0, np = 0;
        for (size_t i = 0; i < nn; i++)
            for (size_t j = 0; per[i] && j < per[i]->n_ranges; j++) {
                const Meridian__Node__RangeInfo *in = per[i]->ranges[j];
                if (in->descriptor->range_id != ids[k]) continue;
                if (in->leaseholder) lease = per[i]->node_id, lh = in;
                np += (size_t)snprintf(nodes + np, np < sizeof(nodes) ? sizeof(nodes) - np : 0,
                                       "%s%" PRIu64, np ? "," : "", per[i]->node_id);
                if (!best || in->leaseholder || in->applied_slot > best->applied_slot) best = in;
                ap += (size_t)snprintf(
                    applied + ap, ap < sizeof(applied) ? sizeof(applied) - ap : 0,
                    "%s%" PRIu64 ":%" PRIu64, ap ? " " : "", per[i]->node_id, in->applied_slot);
            }
        char start[64], end[64], reps[96] = "", regions[160] = "", locs[320] = "";
        fmt_key(&best->descriptor->start_key, 0, start, sizeof(start));
        fmt_key(&best->descriptor->end_key, 1, end, sizeof(end));
        size_t rpos = 0, gpos = 0, lpos = 0;
        for (size_t r = 0; r < best->descriptor->n_replicas; r++) {
            const Meridian__Meta__ReplicaDescriptor *d = best->descriptor->replicas[r];
            rpos += (size_t)snprintf(reps + rpos, rpos < sizeof(reps) ? sizeof(reps) - rpos : 0,
                                     "%s%" PRIu64 "%s", r ? "," : "", d->node_id,
                                     d->type == MERIDIAN__META__REPLICA_TYPE__LEARNER ? "L" : "");
            /* Where each replica's node is (its own answer; "?" if it gave none). */
            const Meridian__Meta__Locality *lo = NULL;
            for (size_t i = 0; i < nn; i++)
                if (per[i] && per[i]->node_id == d->node_id) lo = per[i]->locality;
            const char *rg = lo && lo->region && lo->region[0] ? lo->region : "?";
            const char *zn = lo && lo->zone && lo->zone[0] ? lo->zone : "?";
            gpos += (size_t)snprintf(regions + gpos,
                                     gpos < sizeof(regions) ? sizeof(regions) - gpos : 0, "%s%s",
                                     r ? "," : "", rg);
            lpos += (size_t)snprintf(locs + lpos, lpos < sizeof(locs) ? sizeof(locs) - lpos : 0,
                                     "%s%" PRIu64 ":%s/%s", r ? "," : "", d->node_id, rg, zn);
        }
        if (json) {
            printf("%s{\"range\":%" PRIu64 ",\"generation\":%" PRIu64 ",\"nodes\":\"%s\","
                   "\"start\":",
                   k ? "," : "", ids[k], best->descriptor->generation, nodes);
            json_str(start);
            printf(",\"end\":");
            json_str(end);
            printf(",\"replicas\":");
            json_str(reps);
            printf(",\"localities\":");
            json_str(locs);
            printf(",\"leaseholder\":%" PRIu64 ",\"keys\":%" PRId64 ",\"bytes\":%" PRId64
                   ",\"reads_per_s\":%.1f,\"writes_per_s\":%.1f,\"applied\":",
                   lease, best->live_keys, best->live_bytes, best->reads_per_s, best->writes_per_s);
            json_str(applied);
            printf("}");
        } else {
            char ls[16];
            snprintf(ls, sizeof(ls), "%" PRIu64, lease);
            /* The first five columns keep their places: scripts read them. */
            printf("%-6" PRIu64 " %-16s %-16s %-14s %-6s %10" PRId64 " %10" PRId64
                   " %8.1f %-14s  %s\n",
                   ids[k], start, end, reps, lease ? ls : "none", best->live_keys, best->live_bytes,
                   lh ? lh->reads_per_s + lh->writes_per_s : 0.0, regions, applied);
        }
    }
    if (json) printf("]\n");
    for (size_t i = 0; i < nn; i++)
        if (per[i]) meridian__node__ranges_response__free_unpacked(per[i], NULL);
    meridian__node__status_response__free_unpacked(st, NULL);
    return 0;
}
