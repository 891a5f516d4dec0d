/* `meridian init --host H (--certs-dir D | --insecure)`: initialises a new
 * cluster at one node, once. With TLS it authenticates as user root. */
#include <stdio.h>

#include "common/cli.h"
#include "common/mtime.h"
#include "proto/node.pb-c.h"
#include "server/cli_rpc.h"
#include "server/commands.h"

int cmd_init(int argc, char **argv)
{
    const char *host = NULL, *certs_dir = NULL;
    int64_t timeout = 10 * MTIME_S;
    int insecure = 0;
    const cli_flag flags[] = {
        {"host", CLI_STR, &host, "HOST:PORT", "the node to initialise the cluster at (required)"},
        {"timeout", CLI_DURATION, &timeout, NULL, "give up after this long (default 10s)"},
        {"certs-dir", CLI_STR, &certs_dir, "DIR", "TLS: ca.crt, client.root.crt, client.root.key"},
        {"insecure", CLI_BOOL, &insecure, NULL, "no TLS (the node runs --insecure)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "--host HOST:PORT (--certs-dir DIR | --insecure)", flags, argc,
                       argv, &npos, &done);
    if (done) return rc;
    if (npos || !host || !certs_dir == !insecure) {
        fprintf(stderr, "%s: %s\n", argv[0],
                npos    ? "unexpected argument"
                : !host ? "--host is required"
                        : "give --certs-dir DIR (the root client certificate) or --insecure");
        return CLI_EXIT_USAGE;
    }
    merr e = {0};
    cli_rpc *c = NULL;
    if (cli_rpc_open(host, certs_dir, "root", &c, &e)) {
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
