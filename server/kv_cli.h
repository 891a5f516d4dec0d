/* The blocking key-value client of the command-line tools (`debug kv`,
 * `debug split`, `debug ranges`): a list of hosts, NOT_LEADER hints
 * followed to the leaseholder, stale routes (RANGE_MISMATCH, a range that
 * split under the request) and UNAVAILABLE answers retried with backoff,
 * unreachable hosts replaced by the next one, all until a deadline. */
#ifndef MERIDIAN_SERVER_KV_CLI_H
#define MERIDIAN_SERVER_KV_CLI_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/kv.pb-c.h"
#include "server/cli_rpc.h"

#define KV_MAX_HOSTS 16

typedef struct kv_client {
    const char *certs_dir; /* NULL: insecure */
    char host[128];
    char hosts[KV_MAX_HOSTS][128]; /* --host H1,H2,...: where to go when one fails */
    int nhosts, next;
    cli_rpc *rpc;
    int64_t deadline_ns;     /* monotonic */
    int64_t call_timeout_ns; /* one attempt (0: 2 s); past it the next host is tried */
} kv_client;

/* hosts: "H1:P1,H2:P2,..."; connects to the first. */
int kv_client_open(kv_client *c, const char *hosts, const char *certs_dir, int64_t timeout_ns,
                   merr *e);
void kv_client_close(kv_client *c);
int kv_client_connect(kv_client *c, const char *host, merr *e);

/* The Error field of a response message. */
typedef Meridian__Kv__Error *(*kv_err_of_fn)(ProtobufCMessage *m);
/* Calls method with req until a response without a retryable error arrives
 * (*out, unpacked as desc) or the deadline passes. */
int kv_client_call(kv_client *c, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *desc, kv_err_of_fn err_of,
                   ProtobufCMessage **out, merr *e);

/* A key from the command line: text, or 0x followed by hex digits. *key is
 * malloc'd. MERR_INVALID (message in e) on an empty key or bad hex. */
int kv_parse_key(const char *arg, uint8_t **key, size_t *klen, merr *e);

#endif
