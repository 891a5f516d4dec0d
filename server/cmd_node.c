/* `meridian node status --host H`: every node the cluster knows, with its
 * address, locality, state, replica and lease counts and uptime. The host is
 * asked for its address book; then every node is asked for its own status (a
 * node that does not answer is listed as unreachable). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/cli.h"
#include "common/mtime.h"
#include "proto/node.pb-c.h"
#include "server/cli_rpc.h"
#include "server/commands.h"

static Meridian__Node__StatusResponse *status_of(const char *addr, const char *certs, merr *e)
{
    cli_rpc *c = NULL;
    if (cli_rpc_open(addr, certs, "root", &c, e)) return NULL;
    Meridian__Node__StatusRequest q = MERIDIAN__NODE__STATUS_REQUEST__INIT;
    uint8_t buf[8];
    size_t n = meridian__node__status_request__pack(&q, buf);
    mbuf reply = MBUF_INIT;
    Meridian__Node__StatusResponse *r = NULL;
    if (cli_rpc_call(c, "node.Status", buf, n, 3 * MTIME_S, &reply, e) == 0) {
        r = meridian__node__status_response__unpack(NULL, reply.len, reply.data);
        if (!r) merr_set(e, MERR_PROTOCOL, "undecodable reply from %s", addr);
    }
    mbuf_free(&reply);
    cli_rpc_close(c);
    return r;
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

int cmd_node_status(int argc, char **argv)
{
    const char *host = NULL, *certs = NULL, *format = "table";
    int insecure = 0;
    const cli_flag flags[] = {
        {"host", CLI_STR, &host, "HOST:PORT", "any node of the cluster (required)"},
        {"format", CLI_STR, &format, "table|json", "output format (default table)"},
        {"certs-dir", CLI_STR, &certs, "DIR", "TLS: ca.crt, client.root.crt, client.root.key"},
        {"insecure", CLI_BOOL, &insecure, NULL, "no TLS (the cluster runs --insecure)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "--host HOST:PORT [--format table|json]", flags, argc, argv, &npos,
                       &done);
    if (done) return rc;
    int json = strcmp(format, "json") == 0;
    if (!host || npos || !certs == !insecure || (!json && strcmp(format, "table"))) {
        fprintf(stderr, "%s: need --host, --certs-dir DIR or --insecure, and --format table|json\n",
                argv[0]);
        return CLI_EXIT_USAGE;
    }
    merr e = {0};
    Meridian__Node__StatusResponse *first = status_of(host, certs, &e);
    if (!first) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return 1;
    }
    if (!json)
        printf("%-4s %-22s %-24s %-9s %8s %6s %10s\n", "id", "address", "locality", "state",
               "replicas", "leases", "uptime");
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
                printf(",\"replicas\":%u,\"leases\":%u,\"uptime_seconds\":%.1f}", s->replicas,
                       s->leases, s->uptime_seconds);
            } else {
                printf(",\"state\":\"unreachable\",\"error\":");
                json_str(pe.msg);
                printf("}");
            }
        } else if (s) {
            char loc[64];
            snprintf(loc, sizeof(loc), "%s/%s", s->locality ? s->locality->region : "?",
                     s->locality ? s->locality->zone : "?");
            printf("%-4" PRIu64 " %-22s %-24s %-9s %8u %6u %9.0fs\n", id, addr, loc, s->state,
                   s->replicas, s->leases, s->uptime_seconds);
        } else {
            printf("%-4" PRIu64 " %-22s %-24s %-9s\n", id, addr, "-", "unreachable");
        }
        if (!s) unreachable++;
        if (s) meridian__node__status_response__free_unpacked(s, NULL);
    }
    if (json) printf("]\n");
    meridian__node__status_response__free_unpacked(first, NULL);
    return unreachable ? 3 : 0;
}
