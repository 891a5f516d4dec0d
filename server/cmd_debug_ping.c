/* `meridian debug ping --host H`: round trips from node H to every other
 * node it knows, measured by H itself over the node-to-node transport
 * (node.Ping, server/node_ping.h). What Paxos messages between those two
 * nodes experience, emulated region latency included: how an operator (or a
 * test) checks a multi-region deployment's latency matrix. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/mtime.h"
#include "proto/node.pb-c.h"
#include "server/cli_rpc.h"
#include "server/commands.h"
#include "server/pbreply.h"

#define PING_MAX_COUNT 1000

static Meridian__Node__StatusResponse *status_at(const char *addr, const char *certs, merr *e)
{
    cli_rpc *c = NULL;
    if (cli_rpc_open(addr, certs, "root", &c, e)) return NULL;
    mbuf reply = MBUF_INIT;
    Meridian__Node__StatusResponse *r = NULL;
    if (cli_rpc_call(c, "node.Status", NULL, 0, 3 * MTIME_S, &reply, e) == 0) {
        r = meridian__node__status_response__unpack(NULL, reply.len, reply.data);
        if (!r) merr_set(e, MERR_PROTOCOL, "undecodable reply from %s", addr);
    }
    mbuf_free(&reply);
    cli_rpc_close(c);
    return r;
}

static const char *region_of(const Meridian__Node__StatusResponse *s)
{
    return s && s->locality && s->locality->region ? s->locality->region : "?";
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* count pings from the node behind c to target; fills rtts, returns how many
 * answered (e holds the last error). */
static int ping_peer(cli_rpc *c, uint64_t target, int count, int64_t *rtts, merr *e)
{
    Meridian__Node__PingRequest req = MERIDIAN__NODE__PING_REQUEST__INIT;
    req.target = target;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (pb_pack(&req.base, &buf, &len)) return 0;
    int ok = 0;
    for (int i = 0; i < count; i++) {
        mbuf reply = MBUF_INIT;
        if (cli_rpc_call(c, "node.Ping", buf, len, 10 * MTIME_S, &reply, e) == 0) {
            Meridian__Node__PingResponse *r =
                meridian__node__ping_response__unpack(NULL, reply.len, reply.data);
            if (!r) {
                merr_set(e, MERR_PROTOCOL, "undecodable PingResponse");
            } else {
                rtts[ok++] = r->rtt_ns;
                meridian__node__ping_response__free_unpacked(r, NULL);
            }
        }
        mbuf_free(&reply);
    }
    free(buf);
    return ok;
}

int cmd_debug_ping(int argc, char **argv)
{
    const char *host = NULL, *certs = NULL, *format = "table";
    int insecure = 0;
    int64_t count = 5;
    const cli_flag flags[] = {
        {"host", CLI_STR, &host, "HOST:PORT", "the node that pings the others (required)"},
        {"count", CLI_INT, &count, "N", "round trips per peer (default 5)"},
        {"format", CLI_STR, &format, "table|json", "output format (default table)"},
        {"certs-dir", CLI_STR, &certs, "DIR", "TLS: ca.crt, client.root.crt, client.root.key"},
        {"insecure", CLI_BOOL, &insecure, NULL, "no TLS (the cluster runs --insecure)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "--host HOST:PORT [--count N] [--format table|json]", flags, argc,
                       argv, &npos, &done);
    if (done) return rc;
    int json = strcmp(format, "json") == 0;
    if (!host || npos || !certs == !insecure || (!json && strcmp(format, "table")) || count < 1 ||
        count > PING_MAX_COUNT) {
        fprintf(stderr,
                "%s: need --host, --certs-dir DIR or --insecure, --count 1..%d and --format "
                "table|json\n",
                argv[0], PING_MAX_COUNT);
        return CLI_EXIT_USAGE;
    }
    merr e = {0};
    Meridian__Node__StatusResponse *self = status_at(host, certs, &e);
    if (!self) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return 1;
    }
    cli_rpc *c = NULL;
    int64_t *rtts = calloc((size_t)count, sizeof(*rtts));
    if (!rtts || cli_rpc_open(host, certs, "root", &c, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], rtts ? e.msg : "out of memory");
        free(rtts);
        meridian__node__status_response__free_unpacked(self, NULL);
        return 1;
    }
    if (json)
        printf("[");
    else
        printf("%-5s %-5s %-16s %-16s %9s %9s\n", "from", "to", "from-region", "to-region",
               "min-ms", "p50-ms");
    int status = 0, first = 1;
    for (size_t i = 0; i < self->n_peers; i++) {
        const Meridian__Node__Peer *p = self->peers[i];
        if (p->node_id == self->node_id) continue;
        merr pe = {0};
        Meridian__Node__StatusResponse *ps = status_at(p->address, certs, &pe);
        int n = ping_peer(c, p->node_id, (int)count, rtts, &pe);
        if (n == 0) {
            fprintf(stderr, "%s: node %" PRIu64 " -> %" PRIu64 ": %s\n", argv[0], self->node_id,
                    p->node_id, pe.msg);
            status = 1;
        } else {
            qsort(rtts, (size_t)n, sizeof(*rtts), cmp_i64);
            double mn = (double)rtts[0] / 1e6, med = (double)rtts[n / 2] / 1e6;
            if (json)
                printf("%s{\"from\":%" PRIu64 ",\"to\":%" PRIu64
                       ",\"from_region\":\"%s\",\"to_region\":\"%s\",\"min_ms\":%.3f,"
                       "\"p50_ms\":%.3f,\"answered\":%d}",
                       first ? "" : ",", self->node_id, p->node_id, region_of(self), region_of(ps),
                       mn, med, n);
            else
                printf("%-5" PRIu64 " %-5" PRIu64 " %-16s %-16s %9.3f %9.3f\n", self->node_id,
                       p->node_id, region_of(self), region_of(ps), mn, med);
            first = 0;
        }
        if (ps) meridian__node__status_response__free_unpacked(ps, NULL);
    }
    if (json) printf("]\n");
    cli_rpc_close(c);
    free(rtts);
    meridian__node__status_response__free_unpacked(self, NULL);
    return status;
}
