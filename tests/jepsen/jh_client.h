/* The Jepsen harness's key-value client: blocking kv.Get / kv.Write / kv.Scan
 * calls against a real cluster (proto/kv.proto), each classified the way a
 * Jepsen history needs it.
 *
 * A client is one rpc endpoint (node id 0, its own loop thread) that knows
 * every node by address. It keeps a current host, follows NOT_LEADER hints
 * (leader_address), and moves on to the next host when one cannot be reached
 * or has no replica. A host that just timed out or dropped the connection
 * sits out for a moment (hints to it are ignored), so a paused or isolated
 * old leaseholder does not swallow every retry.
 *
 * Outcomes (what the harness records):
 *   JH_OK    the answer came back without error;
 *   JH_FAIL  the operation certainly had no effect: a read that got no
 *            answer (reads change nothing), or a write every attempt of which
 *            was refused before it could be proposed (the request never
 *            left this process; NOT_LEADER, RANGE_MISMATCH, RANGE_NOT_FOUND,
 *            INVALID answers);
 *   JH_INFO  a write whose outcome is unknown: the rpc timed out or its
 *            connection broke after the request was sent, or the answer was
 *            UNAVAILABLE (the server's write timeout: "may or may not have
 *            been applied"), CLOCK_UNCERTAIN (commit-wait can fail after the
 *            write applied) or INTERNAL. A write is never retried after an
 *            indeterminate attempt: that would make one operation two.
 * Refused attempts are retried (following hints) until the op's deadline. */
#ifndef MERIDIAN_TESTS_JEPSEN_JH_CLIENT_H
#define MERIDIAN_TESTS_JEPSEN_JH_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define JH_MAX_HOSTS 16

typedef enum jh_outcome { JH_OK, JH_FAIL, JH_INFO } jh_outcome;

typedef struct jh_client jh_client;

/* hosts: "HOST:PORT" of every node; seed spreads clients' first host. */
int jh_client_open(const char *const *hosts, int nhosts, uint64_t seed, jh_client **out, merr *e);
void jh_client_close(jh_client *c);

/* The host the next request goes to, for messages. */
const char *jh_client_host(const jh_client *c);

/* A strong read (read_ts 0: latest, at the leaseholder). On JH_OK *found
 * says whether the key exists and its value is copied to val (NUL-terminated,
 * truncated to cap). why gets the last error otherwise. */
jh_outcome jh_kv_get(jh_client *c, const char *key, int64_t deadline_ns, int *found, char *val,
                     size_t cap, merr *why);

/* A single-key put (value NULL: delete). */
jh_outcome jh_kv_put(jh_client *c, const char *key, const char *value, int64_t deadline_ns,
                     merr *why);

/* Scans [start, end) at one timestamp: the first page is a strong read, the
 * next pages (the server returns at most 10,000 rows each) use its read_ts,
 * so the pages form one snapshot. row() is called for each key in order; an
 * error restarts the scan from the beginning (reset() is called first), so
 * row() sees one complete snapshot when JH_OK is returned. */
typedef int (*jh_row_fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
                         size_t vlen);
jh_outcome jh_kv_scan(jh_client *c, const char *start, const char *end, int64_t deadline_ns,
                      void (*reset)(void *arg), jh_row_fn row, void *arg, merr *why);

#endif
