/* `meridian debug kv put|get|del|scan ... --host H`: the key-value API from the
 * command line. Follows NOT_LEADER hints to the leaseholder and retries
 * UNAVAILABLE answers with backoff until --timeout. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/cli.h"
#include "common/mtime.h"
#include "proto/kv.pb-c.h"
#include "rpc/rpc.h"
#include "server/cli_rpc.h"
#include "server/commands.h"
#include "timesvc/hlc.h"

#define KV_MAX_HOSTS 16

typedef struct kv_client {
    const char *certs_dir; /* NULL: insecure */
    char host[128];
    char hosts[KV_MAX_HOSTS][128]; /* --host H1,H2,...: where to go when one fails */
    int nhosts, next;
    cli_rpc *rpc;
    int64_t deadline_ns; /* monotonic */
} kv_client;

static int kv_connect(kv_client *c, const char *host, merr *e)
{
    if (c->rpc) cli_rpc_close(c->rpc);
    c->rpc = NULL;
    if (host != c->host) memmove(c->host, host, strnlen(host, sizeof(c->host) - 1) + 1);
    c->host[sizeof(c->host) - 1] = '\0';
    return cli_rpc_open(c->host, c->certs_dir, "root", &c->rpc, e);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* What a response's error says to do next. */
enum next { NEXT_DONE, NEXT_RETRY, NEXT_FAIL };

static enum next judge(kv_client *c, const Meridian__Kv__Error *err, merr *e)
{
    if (!err) return NEXT_DONE;
    switch (err->kind) {
    case MERIDIAN__KV__ERROR_KIND__NOT_LEADER:
        if (err->leader_address && err->leader_address[0] && strcmp(err->leader_address, c->host)) {
            if (kv_connect(c, err->leader_address, e)) return NEXT_FAIL;
            return NEXT_RETRY;
        }
        sleep_ms(100); /* no leader known yet: an election is running */
        return NEXT_RETRY;
    case MERIDIAN__KV__ERROR_KIND__UNAVAILABLE:
    case MERIDIAN__KV__ERROR_KIND__CLOCK_UNCERTAIN: sleep_ms(100); return NEXT_RETRY;
    default: merr_set(e, MERR_INVALID, "%s", err->message); return NEXT_FAIL;
    }
}

/* Calls method until a response without a retryable error arrives. */
static int kv_call(kv_client *c, const char *method, const ProtobufCMessage *req,
                   ProtobufCMessage **(*unpack)(const uint8_t *, size_t),
                   Meridian__Kv__Error *(*err_of)(ProtobufCMessage *), ProtobufCMessage **out,
                   merr *e)
{
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return merr_set(e, MERR_NOMEM, "out of memory");
    protobuf_c_message_pack(req, buf);
    int rc = MERR_TIMEOUT;
    while (mtime_mono_ns() < c->deadline_ns) {
        mbuf reply = MBUF_INIT;
        merr ce = {0};
        int64_t left = c->deadline_ns - mtime_mono_ns();
        int crc = cli_rpc_call(c->rpc, method, buf, len, left < 2 * MTIME_S ? left : 2 * MTIME_S,
                               &reply, &ce);
        if (crc) {
            mbuf_free(&reply);
            *e = ce;
            rc = crc;
            if (crc == MERR_INVALID || crc == MERR_UNSUPPORTED || crc == MERR_PROTOCOL) break;
            /* This node cannot be reached (dead, or a stale leader hint): go
             * to the next of --host; after a full round, back off a little. */
            if (kv_connect(c, c->hosts[c->next], e)) break;
            c->next = (c->next + 1) % c->nhosts;
            if (c->next == 0) sleep_ms(200);
            continue;
        }
        ProtobufCMessage *m = (ProtobufCMessage *)unpack(reply.data, reply.len);
        mbuf_free(&reply);
        if (!m) {
            rc = merr_set(e, MERR_PROTOCOL, "undecodable reply from %s", c->host);
            break;
        }
        enum next nx = judge(c, err_of(m), e);
        if (nx == NEXT_DONE) {
            *out = m;
            rc = 0;
            break;
        }
        protobuf_c_message_free_unpacked(m, NULL);
        if (nx == NEXT_FAIL) {
            rc = e->code ? e->code : MERR_INVALID;
            break;
        }
        rc = merr_set(e, MERR_TIMEOUT, "no leaseholder answered before --timeout");
    }
    free(buf);
    return rc;
}

#define UNPACKER(T, fn)                                                                            \
    static ProtobufCMessage **unpack_##fn(const uint8_t *p, size_t n)                              \
    {                                                                                              \
        return (ProtobufCMessage **)meridian__kv__##fn##__unpack(NULL, n, p);                      \
    }                                                                                              \
    static Meridian__Kv__Error *err_##fn(ProtobufCMessage *m)                                      \
    {                                                                                              \
        return ((T *)m)->error;                                                                    \
    }
UNPACKER(Meridian__Kv__GetResponse, get_response)
UNPACKER(Meridian__Kv__WriteResponse, write_response)
UNPACKER(Meridian__Kv__ScanResponse, scan_response)

static void print_ts(const char *label, uint64_t ts)
{
    char b[HLC_FORMAT_MAX];
    hlc_format(ts, b, sizeof(b));
    printf("%s %s\n", label, b);
}

static int usage(const char *cmd)
{
    fprintf(stderr,
            "Usage: %s put KEY VALUE | get KEY | del KEY | scan [START [END]] --host HOST:PORT\n",
            cmd);
    return CLI_EXIT_USAGE;
}

int cmd_debug_kv(int argc, char **argv)
{
    const char *host = NULL, *certs_dir = NULL;
    int64_t timeout = 10 * MTIME_S, limit = 0;
    int reverse = 0, insecure = 0;
    const char *at_s = NULL;
    uint64_t at = 0;
    const cli_flag flags[] = {
        {"host", CLI_STR, &host, "HOST:PORT[,...]",
         "nodes of the cluster, tried in turn (required)"},
        {"certs-dir", CLI_STR, &certs_dir, "DIR", "TLS: ca.crt, client.root.crt, client.root.key"},
        {"insecure", CLI_BOOL, &insecure, NULL, "no TLS (the cluster runs --insecure)"},
        {"timeout", CLI_DURATION, &timeout, NULL, "give up after this long (default 10s)"},
        {"limit", CLI_INT, &limit, NULL, "scan: at most this many rows"},
        {"reverse", CLI_BOOL, &reverse, NULL, "scan: descending key order"},
        {"at", CLI_STR, &at_s, "TIMESTAMP",
         "get/scan: read at this HLC time (2026-11-26T04:31:03.1Z+0)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "put KEY VALUE | get KEY | del KEY | scan [START [END]]", flags,
                       argc, argv, &npos, &done);
    if (done) return rc;
    if (!host || npos < 1) return usage(argv[0]);
    if (at_s) {
        merr pe = {0};
        if (hlc_parse(at_s, &at, &pe)) {
            fprintf(stderr, "%s: --at: %s\n", argv[0], pe.msg);
            return CLI_EXIT_USAGE;
        }
    }
    if (!certs_dir == !insecure) {
        fprintf(stderr, "%s: give --certs-dir DIR (the root client certificate) or --insecure\n",
                argv[0]);
        return CLI_EXIT_USAGE;
    }
    const char *op = argv[1];
    int want = !strcmp(op, "put") ? 3 : !strcmp(op, "get") || !strcmp(op, "del") ? 2 : 0;
    if (!strcmp(op, "scan")) {
        if (npos > 3) return usage(argv[0]);
    } else if (!want || npos != want) {
        return usage(argv[0]);
    }
    if (argv[2] && strcmp(op, "scan") && (argv[2][0] == '\0' || argv[2][0] == '\x01')) {
        fprintf(stderr, "%s: keys must be non-empty\n", argv[0]);
        return CLI_EXIT_USAGE;
    }
    kv_client c = {.deadline_ns = mtime_mono_ns() + timeout, .certs_dir = certs_dir};
    for (const char *p = host; *p && c.nhosts < KV_MAX_HOSTS;) {
        size_t l = strcspn(p, ",");
        snprintf(c.hosts[c.nhosts++], sizeof(c.hosts[0]), "%.*s", (int)l, p);
        p += l;
        if (*p == ',') p++;
    }
    c.next = c.nhosts > 1 ? 1 : 0;
    merr e = {0};
    if (c.nhosts == 0 || kv_connect(&c, c.hosts[0], &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return 1;
    }
    ProtobufCMessage *out = NULL;
    int status = 0;
    if (!strcmp(op, "get")) {
        Meridian__Kv__GetRequest q = MERIDIAN__KV__GET_REQUEST__INIT;
        q.key.data = (uint8_t *)argv[2];
        q.key.len = strlen(argv[2]);
        q.read_ts = at;
        rc = kv_call(&c, "kv.Get", &q.base, unpack_get_response, err_get_response, &out, &e);
        if (!rc) {
            Meridian__Kv__GetResponse *r = (Meridian__Kv__GetResponse *)out;
            if (r->found) {
                printf("%.*s\n", (int)r->value.len, (const char *)r->value.data);
                print_ts("version:", r->version_ts);
            } else {
                fprintf(stderr, "%s: key not found\n", argv[0]);
                status = 3;
            }
        }
    } else if (!strcmp(op, "put") || !strcmp(op, "del")) {
        Meridian__Kv__Mutation m = MERIDIAN__KV__MUTATION__INIT;
        Meridian__Kv__Mutation *mp = &m;
        m.key.data = (uint8_t *)argv[2];
        m.key.len = strlen(argv[2]);
        if (!strcmp(op, "put")) {
            m.value.data = (uint8_t *)argv[3];
            m.value.len = strlen(argv[3]);
        } else {
            m.is_delete = 1;
        }
        Meridian__Kv__WriteRequest q = MERIDIAN__KV__WRITE_REQUEST__INIT;
        q.mutations = &mp;
        q.n_mutations = 1;
        rc = kv_call(&c, "kv.Write", &q.base, unpack_write_response, err_write_response, &out, &e);
        if (!rc) print_ts("committed:", ((Meridian__Kv__WriteResponse *)out)->commit_ts);
    } else {
        Meridian__Kv__ScanRequest q = MERIDIAN__KV__SCAN_REQUEST__INIT;
        /* User keys start above 0x00 (system keys live below). */
        static uint8_t first_user_key[] = {0x01};
        q.start_key.data = npos >= 2 ? (uint8_t *)argv[2] : first_user_key;
        q.start_key.len = npos >= 2 ? strlen(argv[2]) : 1;
        if (npos == 3) {
            q.end_key.data = (uint8_t *)argv[3];
            q.end_key.len = strlen(argv[3]);
        }
        q.limit = (uint32_t)(limit > 0 ? limit : 0);
        q.reverse = reverse;
        q.read_ts = at;
        rc = kv_call(&c, "kv.Scan", &q.base, unpack_scan_response, err_scan_response, &out, &e);
        if (!rc) {
            Meridian__Kv__ScanResponse *r = (Meridian__Kv__ScanResponse *)out;
            for (size_t i = 0; i < r->n_rows; i++)
                printf("%.*s=%.*s\n", (int)r->rows[i]->key.len, (const char *)r->rows[i]->key.data,
                       (int)r->rows[i]->value.len, (const char *)r->rows[i]->value.data);
            printf("(%zu rows)\n", r->n_rows);
        }
    }
    if (rc) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg[0] ? e.msg : merr_str(rc));
        status = 1;
    }
    if (out) protobuf_c_message_free_unpacked(out, NULL);
    cli_rpc_close(c.rpc);
    return status;
}

/* `meridian debug faults`: sets a node's rpc fault injection (partitions,
 * drops, delays; rpc/fault.h syntax). The node must run with
 * --testing-fault-admin. */
int cmd_debug_faults(int argc, char **argv)
{
    const char *host = NULL, *certs_dir = NULL, *spec = "";
    int insecure = 0, clear = 0;
    int64_t seed = 1;
    const cli_flag flags[] = {
        {"host", CLI_STR, &host, "HOST:PORT", "the node to change (required)"},
        {"spec", CLI_STR, &spec, "SPEC", "e.g. 'peer=2,partition=both;peer=3,drop=0.5'"},
        {"clear", CLI_BOOL, &clear, NULL, "replace the current faults (with --spec '' : heal)"},
        {"seed", CLI_INT, &seed, NULL, "PRNG seed of the fault decisions"},
        {"certs-dir", CLI_STR, &certs_dir, "DIR", "TLS: ca.crt, client.root.crt, client.root.key"},
        {"insecure", CLI_BOOL, &insecure, NULL, "no TLS (the cluster runs --insecure)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "--host HOST:PORT --spec SPEC [--clear]", flags, argc, argv, &npos,
                       &done);
    if (done) return rc;
    if (!host || npos || !certs_dir == !insecure) {
        fprintf(stderr, "%s: need --host, and --certs-dir DIR or --insecure\n", argv[0]);
        return CLI_EXIT_USAGE;
    }
    uint8_t *payload = NULL;
    size_t len = 0;
    if (rpc_fault_msg_encode(spec, clear, (uint64_t)seed, &payload, &len)) {
        fprintf(stderr, "%s: cannot encode the fault spec\n", argv[0]);
        return CLI_EXIT_USAGE;
    }
    merr e = {0};
    cli_rpc *c = NULL;
    mbuf reply = MBUF_INIT;
    rc = cli_rpc_open(host, certs_dir, "root", &c, &e);
    if (!rc) rc = cli_rpc_call(c, RPC_METHOD_FAULTS, payload, len, 5 * MTIME_S, &reply, &e);
    free(payload);
    mbuf_free(&reply);
    cli_rpc_close(c);
    if (rc) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return 1;
    }
    printf("faults set on %s: %s\n", host, spec[0] ? spec : "(none)");
    return 0;
}
