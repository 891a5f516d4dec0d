/* `meridian debug transfer-lease --range R --to NODE --host H`: moves range
 * R's leadership and lease to voter NODE (server/node_lease.c) and returns
 * once NODE holds the lease. Asking for the node that already holds it is
 * a harmless no-op, so a retry is safe. */
#include <inttypes.h>
#include <stdio.h>

#include "common/cli.h"
#include "common/mtime.h"
#include "proto/lease.pb-c.h"
#include "server/commands.h"
#include "server/kv_cli.h"

static Meridian__Kv__Error *err_transfer(ProtobufCMessage *m)
{
    return ((Meridian__Lease__TransferResponse *)m)->error;
}

int cmd_debug_transfer_lease(int argc, char **argv)
{
    const char *host = NULL, *certs_dir = NULL;
    int64_t range_id = 0, to = 0, timeout = 30 * MTIME_S;
    int insecure = 0;
    const cli_flag flags[] = {
        {"host", CLI_STR, &host, "HOST:PORT[,...]",
         "nodes of the cluster, tried in turn (required)"},
        {"range", CLI_INT, &range_id, NULL, "the range id (see `debug ranges`)"},
        {"to", CLI_INT, &to, NULL, "the node id of a voter of the range"},
        {"certs-dir", CLI_STR, &certs_dir, "DIR", "TLS: ca.crt, client.root.crt, client.root.key"},
        {"insecure", CLI_BOOL, &insecure, NULL, "no TLS (the cluster runs --insecure)"},
        {"timeout", CLI_DURATION, &timeout, NULL, "give up after this long (default 30s)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc =
        cli_parse(argv[0], "--range R --to NODE --host HOST:PORT", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (!host || npos || !certs_dir == !insecure || timeout <= 0) {
        fprintf(stderr, "%s: need --host, --range, --to, and --certs-dir DIR or --insecure\n",
                argv[0]);
        return CLI_EXIT_USAGE;
    }
    if (range_id <= 0 || to <= 0 || to > UINT32_MAX) {
        fprintf(stderr, "%s: --range and --to need a range id and a node id (positive integers)\n",
                argv[0]);
        return CLI_EXIT_USAGE;
    }
    merr e = {0};
    kv_client c;
    ProtobufCMessage *out = NULL;
    rc = kv_client_open(&c, host, certs_dir, timeout, &e);
    if (!rc) {
        Meridian__Lease__TransferRequest q = MERIDIAN__LEASE__TRANSFER_REQUEST__INIT;
        q.range_id = (uint64_t)range_id;
        q.to_node = (uint64_t)to;
        rc =
            kv_client_call(&c, "range.TransferLease", &q.base,
                           &meridian__lease__transfer_response__descriptor, err_transfer, &out, &e);
    }
    if (!rc) {
        Meridian__Lease__TransferResponse *r = (Meridian__Lease__TransferResponse *)out;
        printf("range %" PRId64 " leaseholder %" PRIu64 "\n", range_id, r->leaseholder);
        protobuf_c_message_free_unpacked(out, NULL);
    } else {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg[0] ? e.msg : merr_str(rc));
    }
    kv_client_close(&c);
    return rc ? 1 : 0;
}
