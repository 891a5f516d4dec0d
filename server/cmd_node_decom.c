/* `meridian node decommission --node N --host H`: marks node N
 * decommissioning at the placement driver, which moves every replica and
 * lease off it (server/node_moves.c); the command shows the replicas left
 * and returns once the node holds none (it may then be stopped), or when
 * --timeout passes (exit 1, the drain goes on). --no-wait returns at once. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/cli.h"
#include "common/mtime.h"
#include "proto/pd.pb-c.h"
#include "server/commands.h"
#include "server/kv_cli.h"

static Meridian__Kv__Error *err_decom(ProtobufCMessage *m)
{
    return ((Meridian__Pd__DecommissionResponse *)m)->error;
}

int cmd_node_decommission(int argc, char **argv)
{
    const char *host = NULL, *certs_dir = NULL;
    int64_t node_id = 0, timeout = 30 * 60 * MTIME_S;
    int insecure = 0, no_wait = 0;
    const cli_flag flags[] = {
        {"node", CLI_INT, &node_id, "N", "the node to drain (required)"},
        {"host", CLI_STR, &host, "HOST:PORT[,...]", "nodes of the cluster (required)"},
        {"certs-dir", CLI_STR, &certs_dir, "DIR", "TLS: ca.crt, client.root.crt, client.root.key"},
        {"insecure", CLI_BOOL, &insecure, NULL, "no TLS (the cluster runs --insecure)"},
        {"timeout", CLI_DURATION, &timeout, NULL, "stop waiting after this long (default 30m)"},
        {"no-wait", CLI_BOOL, &no_wait, NULL, "mark the node and return without waiting"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "--node N --host HOST:PORT", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (npos || !host || node_id <= 0 || !certs_dir == !insecure) {
        fprintf(stderr,
                "%s: need --node N (1 or more), --host, and --certs-dir DIR or --insecure\n",
                argv[0]);
        return CLI_EXIT_USAGE;
    }
    int64_t deadline = mtime_mono_ns() + timeout;
    long last = -1;
    for (;;) {
        merr e = {0};
        kv_client c;
        ProtobufCMessage *out = NULL;
        int64_t left = deadline - mtime_mono_ns();
        rc = kv_client_open(&c, host, certs_dir, left > MTIME_S ? left : MTIME_S, &e);
        if (!rc) {
            Meridian__Pd__DecommissionRequest q = MERIDIAN__PD__DECOMMISSION_REQUEST__INIT;
            q.node_id = (uint64_t)node_id;
            rc = kv_client_call(&c, "pd.Decommission", &q.base,
                                &meridian__pd__decommission_response__descriptor, err_decom, &out,
                                &e);
        }
        kv_client_close(&c);
        if (rc) {
            fprintf(stderr, "%s: %s\n", argv[0], e.msg[0] ? e.msg : merr_str(rc));
            return 1;
        }
        uint32_t reps = ((Meridian__Pd__DecommissionResponse *)out)->replicas;
        protobuf_c_message_free_unpacked(out, NULL);
        if (reps != last) {
            printf("node %" PRId64 ": decommissioning, %u replicas left\n", node_id, reps);
            fflush(stdout);
            last = reps;
        }
        if (reps == 0) {
            printf("node %" PRId64 " holds no replicas: it may be stopped\n", node_id);
            return 0;
        }
        if (no_wait) return 0;
        if (mtime_mono_ns() > deadline) {
            fprintf(stderr, "%s: node %" PRId64 " still holds %u replicas (the drain goes on)\n",
                    argv[0], node_id, reps);
            return 1;
        }
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
}
