#include "txn_rpc.h"

#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/mtime.h"
#include "server/cli_rpc.h"

Meridian__Txn__CommitResponse *txn_rpc_commit(const char *hosts, const uint8_t *buf, size_t len,
                                              int64_t timeout_ns)
{
    int64_t deadline = mtime_mono_ns() + timeout_ns;
    while (mtime_mono_ns() < deadline) {
        for (const char *p = hosts; *p;) {
            char h[128];
            size_t l = strcspn(p, ",");
            snprintf(h, sizeof(h), "%.*s", (int)l, p);
            p += l + (p[l] == ',');
            cli_rpc *c;
            merr e = {0};
            mbuf reply = MBUF_INIT;
            if (cli_rpc_open(h, NULL, NULL, &c, &e)) continue;
            int rc = cli_rpc_call(c, "txn.Commit", buf, len, 5 * MTIME_S, &reply, &e);
            cli_rpc_close(c);
            Meridian__Txn__CommitResponse *r =
                rc ? NULL : meridian__txn__commit_response__unpack(NULL, reply.len, reply.data);
            mbuf_free(&reply);
            if (r && r->error && r->error->kind == MERIDIAN__KV__ERROR_KIND__NOT_LEADER) {
                meridian__txn__commit_response__free_unpacked(r, NULL);
                continue;
            }
            if (r) return r;
        }
    }
    return NULL;
}
