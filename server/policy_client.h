/* One pd.Policy call (list, set, rm) from a blocking caller: the
 * `meridian debug policy` command and the SQL sessions' placement hook
 * (ALTER TABLE ... SET PLACEMENT, meridian_placement). NOT_LEADER hints are
 * followed to range 1's leaseholder (server/kv_cli.h). */
#ifndef MERIDIAN_SERVER_POLICY_CLIENT_H
#define MERIDIAN_SERVER_POLICY_CLIENT_H

#include "common/err.h"
#include "proto/pd.pb-c.h"
#include "sql/cluster.h"

/* op "list"; "set" with p; "rm" with name. hosts "H1:P1,H2:P2"; certs_dir
 * NULL = insecure. On success *out is the response (free it with
 * protobuf_c_message_free_unpacked); an error the cluster answered (a bad
 * policy) is MERR_INVALID with its message in e. */
int policy_client_call(const char *hosts, const char *certs_dir, int64_t timeout_ns, const char *op,
                       const sql_cluster_policy *p, const char *name,
                       Meridian__Pd__PolicyResponse **out, merr *e);

#endif
