/* `meridian debug policy set NAME [--start K] [--end K] [--replicas N]
 * [--regions a,b] [--lead-region R] [--survive zone|region] | list | rm
 * NAME --host H`: named placement policies over key spans (pd.Policy at
 * range 1's leaseholder, server/node_pd_policy.c; docs/placement.md). The
 * node checks a policy with every stored one before it writes it; this
 * side only parses the command line (server/policy_client.c calls). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/mtime.h"
#include "proto/pd.pb-c.h"
#include "server/commands.h"
#include "server/kv_cli.h"
#include "server/policy_client.h"

/* Text when every byte is printable (and it cannot be taken for hex), else
 * 0x and hex digits: either form goes back into --start/--end. */
static void key_text(const ProtobufCBinaryData *k, char *buf, size_t cap)
{
    bool text = k->len > 0 && !(k->len > 1 && k->data[0] == '0' && k->data[1] == 'x');
    for (size_t i = 0; text && i < k->len; i++) text = k->data[i] > 0x20 && k->data[i] < 0x7f;
    if (k->len == 0) {
        snprintf(buf, cap, "-");
    } else if (text) {
        snprintf(buf, cap, "%.*s", (int)k->len, (const char *)k->data);
    } else {
        size_t n = (size_t)snprintf(buf, cap, "0x");
        for (size_t i = 0; i < k->len && n + 3 <= cap; i++)
            n += (size_t)snprintf(buf + n, cap - n, "%02x", k->data[i]);
    }
}

static void print_policies(const Meridian__Pd__PolicyResponse *r)
{
    printf("%-20s %-24s %-24s %-8s %-16s %-12s %s\n", "name", "start", "end", "replicas", "regions",
           "lead_region", "survive");
    for (size_t i = 0; i < r->n_policies; i++) {
        const Meridian__Pd__Policy *p = r->policies[i];
        char s[256], e[256], regions[256] = "";
        key_text(&p->start, s, sizeof(s));
        key_text(&p->end, e, sizeof(e));
        for (size_t k = 0; k < p->n_regions; k++)
            snprintf(regions + strlen(regions), sizeof(regions) - strlen(regions), "%s%s",
                     k ? "," : "", p->regions[k]);
        printf("%-20s %-24s %-24s %-8u %-16s %-12s %s\n", p->name, s, e, p->replicas,
               regions[0] ? regions : "-", p->lead_region[0] ? p->lead_region : "-", p->survive);
    }
}

int cmd_debug_policy(int argc, char **argv)
{
    const char *host = NULL, *certs_dir = NULL, *start = NULL, *end = NULL, *regions = "";
    const char *lead = "", *survive = "zone";
    int64_t timeout = 30 * MTIME_S, replicas = 3;
    int insecure = 0;
    const cli_flag flags[] = {
        {"host", CLI_STR, &host, "HOST:PORT[,...]",
         "nodes of the cluster, tried in turn (required)"},
        {"certs-dir", CLI_STR, &certs_dir, "DIR", "TLS: ca.crt, client.root.crt, client.root.key"},
        {"insecure", CLI_BOOL, &insecure, NULL, "no TLS (the cluster runs --insecure)"},
        {"timeout", CLI_DURATION, &timeout, NULL, "give up after this long (default 30s)"},
        {"start", CLI_STR, &start, "KEY",
         "set: first key covered, text or 0x+hex (default: where user tables begin)"},
        {"end", CLI_STR, &end, "KEY", "set: first key past the span (default: to the end)"},
        {"replicas", CLI_INT, &replicas, "N", "set: voters per range, 1, 3 or 5 (default 3)"},
        {"regions", CLI_STR, &regions, "R1,R2", "set: regions replicas may be in (default any)"},
        {"lead-region", CLI_STR, &lead, "R", "set: leases go to this region while a voter is"},
        {"survive", CLI_STR, &survive, "zone|region",
         "set: replicas in distinct zones (default) or regions first"},
        {0},
    };
    const char *usage = "list | rm NAME | set NAME [--start K] [--end K] [--replicas N] "
                        "[--regions R1,R2] [--lead-region R] [--survive zone|region] --host H";
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], usage, flags, argc, argv, &npos, &done);
    if (done) return rc;
    const char *op = npos >= 1 ? argv[1] : "";
    int want = strcmp(op, "list") == 0                           ? 1
               : strcmp(op, "rm") == 0 || strcmp(op, "set") == 0 ? 2
                                                                 : 0;
    if (!want || npos != want || !host || !certs_dir == !insecure) {
        fprintf(stderr, "%s: usage: %s %s (and --certs-dir DIR or --insecure)\n", argv[0], argv[0],
                usage);
        return CLI_EXIT_USAGE;
    }
    merr e = {0};
    uint8_t *skey = NULL, *ekey = NULL;
    size_t slen = 0, elen = 0;
    sql_cluster_policy pol = {0};
    int set = strcmp(op, "set") == 0;
    mbuf min = MBUF_INIT;
    if (set && !start) {
        /* Every user key: from the first user table's up (the keys below
         * stay in range 1, sql/cluster.h). */
        rc = sql_policy_min_key(&min) ? merr_set(&e, MERR_NOMEM, "out of memory") : 0;
        skey = rc ? NULL : malloc(min.len);
        if (skey) memcpy(skey, min.data, slen = min.len);
        mbuf_free(&min);
        if (!rc && !skey) rc = merr_set(&e, MERR_NOMEM, "out of memory");
    } else if (set) {
        rc = kv_parse_key(start, &skey, &slen, &e);
    }
    if (set) {
        if (!rc && end) rc = kv_parse_key(end, &ekey, &elen, &e);
        if (rc) {
            fprintf(stderr, "%s: %s\n", argv[0], e.msg);
            free(skey);
            return CLI_EXIT_USAGE;
        }
        pol = (sql_cluster_policy){.name = argv[2],
                                   .start = skey,
                                   .start_len = slen,
                                   .end = ekey,
                                   .end_len = elen,
                                   .replicas = replicas,
                                   .regions = regions,
                                   .lead_region = lead,
                                   .survive = survive};
    }
    Meridian__Pd__PolicyResponse *r = NULL;
    rc = policy_client_call(host, certs_dir, timeout, op, set ? &pol : NULL,
                            strcmp(op, "rm") == 0 ? argv[2] : NULL, &r, &e);
    if (!rc) {
        if (r->warning && r->warning[0]) fprintf(stderr, "%s: warning: %s\n", argv[0], r->warning);
        if (want == 1) print_policies(r);
        protobuf_c_message_free_unpacked(&r->base, NULL);
    } else {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg[0] ? e.msg : merr_str(rc));
    }
    free(skey);
    free(ekey);
    return rc ? 1 : 0;
}
