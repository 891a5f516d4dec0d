/* `meridian init --host H`: initialises a new cluster at one node, once. */
#include <stdio.h>

#include "common/cli.h"
#include "common/mtime.h"
#include "proto/node.pb-c.h"
#include "server/cli_rpc.h"
#include "server/commands.h"

int cmd_init(int argc, char **argv)
{
    const char *host = NULL;
    int64_t timeout = 10 * MTIME_S;
    const cli_flag flags[] = {
        {"host", CLI_STR, &host, "HOST:PORT", "the node to initialise the cluster at (required)"},
        {"timeout", CLI_DURATION, &timeout, NULL, "give up after this long (default 10s)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "--host HOST:PORT", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (npos || !host) {
        fprintf(stderr, "%s: %s\n", argv[0], npos ? "unexpected argument" : "--host is required");
        return CLI_EXIT_USAGE;
    }
    merr e = {0};
    cli_rpc *c = NULL;
    if (cli_rpc_open(host, &c, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return 1;
    }
    Meridian__Node__InitRequest req = MERIDIAN__NODE__INIT_REQUEST__INIT;
    uint8_t buf[16];
    size_t len = meridian__node__init_request__pack(&req, buf);
    mbuf reply = MBUF_INIT;
    rc = cli_rpc_call(c, "node.Init", buf, len, timeout, &reply, &e);
    int status = 0;
    if (rc) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        status = 1;
    } else {
        Meridian__Node__InitResponse *r =
            meridian__node__init_response__unpack(NULL, reply.len, reply.data);
        if (!r) {
            fprintf(stderr, "%s: undecodable reply from %s\n", argv[0], host);
            status = 1;
        } else {
            printf("cluster initialised: cluster id %s, node %llu at %s\n", r->cluster_id,
                   (unsigned long long)r->node_id, host);
            meridian__node__init_response__free_unpacked(r, NULL);
        }
    }
    mbuf_free(&reply);
    cli_rpc_close(c);
    return status;
}
