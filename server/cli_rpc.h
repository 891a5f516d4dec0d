/* Blocking rpc calls for command-line tools (`meridian init`, `node status`,
 * `debug ...`): a client endpoint (node id 0) on its own loop thread, one
 * gateway address, calls that wait for their reply or deadline. */
#ifndef MERIDIAN_SERVER_CLI_RPC_H
#define MERIDIAN_SERVER_CLI_RPC_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct cli_rpc cli_rpc;

/* host is "HOST:PORT". certs_dir: TLS with the CA in it and the client
 * certificate of `user` (client.USER.crt/.key); NULL = insecure. Nothing is
 * dialled until the first call. */
int cli_rpc_open(const char *host, const char *certs_dir, const char *user, cli_rpc **out, merr *e);
void cli_rpc_close(cli_rpc *c);
/* Calls method with payload and waits up to timeout_ns. On success the reply
 * payload is appended to `reply`. Errors: the remote handler's code and
 * message, MERR_TIMEOUT, or MERR_UNAVAILABLE/MERR_PROTOCOL when the host
 * cannot be reached or refuses the connection (the reason is in e). */
int cli_rpc_call(cli_rpc *c, const char *method, const void *payload, size_t len,
                 int64_t timeout_ns, mbuf *reply, merr *e);

/* Interruptible calls (statement cancellation). cli_rpc_interrupt() may be
 * called from any thread: the interruptible call running now, and every
 * later one until cli_rpc_clear_interrupt(), fails at once with
 * MERR_CANCELED and the remote request is canceled. Plain cli_rpc_call()s
 * are not affected. */
int cli_rpc_call_interruptible(cli_rpc *c, const char *method, const void *payload, size_t len,
                               int64_t timeout_ns, mbuf *reply, merr *e);
void cli_rpc_interrupt(cli_rpc *c);
void cli_rpc_clear_interrupt(cli_rpc *c);
/* Sends a request without waiting for (or reading) its reply; any thread,
 * never blocks. The payload is copied. */
int cli_rpc_send(cli_rpc *c, const char *method, const void *payload, size_t len,
                 int64_t timeout_ns);

/* One call to addr on a client endpoint of its own (opened and closed
 * here), the reply decoded as desc (free it with
 * protobuf_c_message_free_unpacked). NULL with e set when the node cannot be
 * asked. For the node.* methods whose request is empty. */
ProtobufCMessage *cli_rpc_ask(const char *addr, const char *certs_dir_or_NULL, const char *method,
                              const ProtobufCMessageDescriptor *desc, int64_t timeout_ns, merr *e);

#endif
