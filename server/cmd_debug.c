/* `meridian debug kv put|get|del|scan ... --host H`: the key-value API from the
 * command line. Follows NOT_LEADER hints to the leaseholder and retries
 * UNAVAILABLE answers with backoff until --timeout. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/mtime.h"
#include "proto/kv.pb-c.h"
#include "rpc/rpc.h"
#include "server/cli_rpc.h"
#include "server/commands.h"
#include "placement/route_cache.h"
#include "server/kv_cli.h"
#include "timesvc/hlc.h"

static Meridian__Kv__Error *err_get(ProtobufCMessage *m)
{
    return ((Meridian__Kv__GetResponse *)m)->error;
}
static Meridian__Kv__Error *err_write(ProtobufCMessage *m)
{
    return ((Meridian__Kv__WriteResponse *)m)->error;
}
static Meridian__Kv__Error *err_scan(ProtobufCMessage *m)
{
    return ((Meridian__Kv__ScanResponse *)m)->error;
}

static void print_ts(const char *label, uint64_t ts)
{
    char b[HLC_FORMAT_MAX];
    hlc_format(ts, b, sizeof(b));
    printf("%s %s\n", label, b);
}

/* Scans [lo, hi) page by page: a page ends at the limit or at the end of
 * the range that served it (resume_key), and the next page goes on from
 * there in the next range, at the first page's read timestamp so the whole
 * scan is one snapshot. Reverse scans stay in the first range. */
static void print_key(const ProtobufCBinaryData *k, int hex)
{
    if (!hex) {
        printf("%.*s", (int)k->len, (const char *)k->data);
        return;
    }
    printf("0x");
    for (size_t i = 0; i < k->len; i++) printf("%02x", k->data[i]);
}

/* One row kept by a reverse scan. */
typedef struct kept_row {
    ProtobufCBinaryData key;
    char *val;
    size_t vlen;
} kept_row;

/* Prints [lo, hi) page by page, across ranges (each answer says where the
 * next range starts). kv.Scan's reverse flag stays inside one range, so a
 * reverse scan here reads forward and prints the rows kept (the last
 * `limit` of them) backwards: slower, but right across ranges. */
static int scan_all(kv_client *c, const uint8_t *lo, size_t lolen, const uint8_t *hi, size_t hilen,
                    int64_t limit, int reverse, uint64_t at, int hex, merr *e)
{
    /* User keys start above 0x00 (system keys live below). */
    static const uint8_t first_user_key[] = {0x01};
    mbuf start = MBUF_INIT;
    int rc = lo ? mbuf_append(&start, lo, lolen) : mbuf_append(&start, first_user_key, 1);
    size_t total = 0, nkept = 0, cap = reverse ? (limit > 0 ? (size_t)limit : 0) : 0;
    kept_row *kept = NULL; /* reverse: a ring of the last `limit` rows (all when 0) */
    size_t kcap = 0, head = 0;
    while (!rc) {
        Meridian__Kv__ScanRequest q = MERIDIAN__KV__SCAN_REQUEST__INIT;
        q.start_key = (ProtobufCBinaryData){start.len, start.data};
        q.end_key = (ProtobufCBinaryData){hilen, (uint8_t *)hi};
        q.limit = (uint32_t)(!reverse && limit > 0 ? (uint64_t)limit - total : 0);
        q.read_ts = at;
        ProtobufCMessage *out = NULL;
        rc = kv_client_call(c, "kv.Scan", &q.base, &meridian__kv__scan_response__descriptor,
                            err_scan, &out, e);
        if (rc) break;
        Meridian__Kv__ScanResponse *r = (Meridian__Kv__ScanResponse *)out;
        for (size_t i = 0; i < r->n_rows && !rc; i++) {
            const Meridian__Kv__KeyValue *kv = r->rows[i];
            if (!reverse) {
                print_key(&kv->key, hex);
                printf("=%.*s\n", (int)kv->value.len, (const char *)kv->value.data);
                continue;
            }
            kept_row row = {
                {kv->key.len, malloc(kv->key.len + 1)}, malloc(kv->value.len + 1), kv->value.len};
            if (!row.key.data || !row.val) {
                free(row.key.data);
                free(row.val);
                rc = merr_set(e, MERR_NOMEM, "out of memory");
                break;
            }
            memcpy(row.key.data, kv->key.data, kv->key.len);
            memcpy(row.val, kv->value.data, kv->value.len);
            if (cap && nkept == cap) { /* full: the oldest goes */
                free(kept[head].key.data);
                free(kept[head].val);
                kept[head] = row;
                head = (head + 1) % cap;
                continue;
            }
            if (nkept == kcap) {
                size_t nc = cap ? cap : (kcap ? kcap * 2 : 256);
                kept_row *p = realloc(kept, nc * sizeof(*p));
                if (!p) {
                    free(row.key.data);
                    free(row.val);
                    rc = merr_set(e, MERR_NOMEM, "out of memory");
                    break;
                }
                kept = p;
                kcap = nc;
            }
            kept[nkept++] = row;
        }
        if (!reverse) total += r->n_rows;
        if (!at) at = r->read_ts;
        int more = r->resume_key.len && !(!reverse && limit > 0 && total >= (uint64_t)limit);
        if (!rc && more &&
            route_keycmp(r->resume_key.data, r->resume_key.len, start.data, start.len) <= 0)
            rc = merr_set(e, MERR_PROTOCOL, "a scan page did not advance");
        if (!rc && more) {
            mbuf_reset(&start);
            rc = mbuf_append(&start, r->resume_key.data, r->resume_key.len);
        }
        protobuf_c_message_free_unpacked(out, NULL);
        if (!more) break;
    }
    /* Newest-last ring: printed from the last row kept back to the first. */
    for (size_t n = 0; n < nkept; n++) {
        kept_row *row = &kept[(head + nkept - 1 - n) % nkept];
        if (!rc) {
            print_key(&row->key, hex);
            printf("=%.*s\n", (int)row->vlen, row->val);
        }
        free(row->key.data);
        free(row->val);
    }
    free(kept);
    if (reverse) total = nkept;
    if (!rc) printf("(%zu rows)\n", total);
    mbuf_free(&start);
    return rc;
}

static int usage(const char *cmd)
{
    fprintf(stderr,
            "Usage: %s put KEY VALUE | get KEY | del KEY | scan [START [END]] --host HOST:PORT\n",
            cmd);
    return CLI_EXIT_USAGE;
}

/* One kv.Write of key (value, or a delete when value is NULL); the reply in
 * *out. */
static int kv_write_one(kv_client *c, const uint8_t *k, size_t klen, const char *value,
                        ProtobufCMessage **out, merr *e)
{
    Meridian__Kv__Mutation m = MERIDIAN__KV__MUTATION__INIT;
    Meridian__Kv__Mutation *mp = &m;
    m.key.data = (uint8_t *)k;
    m.key.len = klen;
    if (value) {
        m.value.data = (uint8_t *)value;
        m.value.len = strlen(value);
    } else {
        m.is_delete = 1;
    }
    Meridian__Kv__WriteRequest q = MERIDIAN__KV__WRITE_REQUEST__INIT;
    q.mutations = &mp;
    q.n_mutations = 1;
    return kv_client_call(c, "kv.Write", &q.base, &meridian__kv__write_response__descriptor,
                          err_write, out, e);
}

#define LOAD_TRIES 5

/* `debug kv load`: "KEY VALUE" lines from stdin, written one after another
 * over one connection (tests load hundreds of keys without a process per
 * key). A failed write may have landed (its outcome is unknown), so it is
 * sent again with the same value, which is idempotent; "KEY=VALUE" is
 * printed only once acknowledged, so the output lists exactly the writes
 * a reader must find. */
static int kv_load(kv_client *c, const char *cmd)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int status = 0;
    size_t lineno = 0;
    while ((n = getline(&line, &cap, stdin)) > 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (!n) continue;
        char *sp = strchr(line, ' ');
        uint8_t *k = NULL;
        size_t klen = 0;
        merr e = {0};
        if (!sp || sp == line) {
            fprintf(stderr, "%s: line %zu: want KEY VALUE\n", cmd, lineno);
            status = 1;
            continue;
        }
        *sp = 0;
        if (kv_parse_key(line, &k, &klen, &e)) {
            fprintf(stderr, "%s: line %zu: %s\n", cmd, lineno, e.msg);
            status = 1;
            continue;
        }
        int rc = MERR_INTERNAL;
        for (int t = 0; t < LOAD_TRIES && rc; t++) {
            ProtobufCMessage *out = NULL;
            merr we = {0};
            rc = kv_write_one(c, k, klen, sp + 1, &out, &we);
            if (rc) fprintf(stderr, "%s: %s: %s\n", cmd, line, we.msg[0] ? we.msg : merr_str(rc));
            if (out) protobuf_c_message_free_unpacked(out, NULL);
        }
        free(k);
        if (rc) {
            status = 1;
        } else {
            printf("%s=%s\n", line, sp + 1);
            fflush(stdout);
        }
    }
    free(line);
    return status;
}

int cmd_debug_kv(int argc, char **argv)
{
    const char *host = NULL, *certs_dir = NULL;
    int64_t timeout = 10 * MTIME_S, limit = 0;
    int reverse = 0, insecure = 0, hex = 0;
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
        {"hex", CLI_BOOL, &hex, NULL, "scan: print keys as 0x-hex (as --key and bounds take them)"},
        {"at", CLI_STR, &at_s, "TIMESTAMP",
         "get/scan: read at this HLC time (2026-11-26T04:31:03.1Z+0)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0],
                       "put KEY VALUE | get KEY | del KEY | scan [START [END]] | load (KEY VALUE "
                       "lines on stdin)",
                       flags, argc, argv, &npos, &done);
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
    } else if (!strcmp(op, "load")) {
        if (npos != 1) return usage(argv[0]);
    } else if (!want || npos != want) {
        return usage(argv[0]);
    }
    /* Keys and bounds: text, or 0x followed by hex digits. */
    uint8_t *k1 = NULL, *k2 = NULL;
    size_t k1len = 0, k2len = 0;
    merr e = {0};
    if ((npos >= 2 && kv_parse_key(argv[2], &k1, &k1len, &e)) ||
        (npos >= 3 && strcmp(op, "put") && kv_parse_key(argv[3], &k2, &k2len, &e))) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        free(k1);
        return CLI_EXIT_USAGE;
    }
    kv_client c;
    if (kv_client_open(&c, host, certs_dir, timeout, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        free(k1);
        free(k2);
        kv_client_close(&c);
        return 1;
    }
    ProtobufCMessage *out = NULL;
    int status = 0;
    if (!strcmp(op, "get")) {
        Meridian__Kv__GetRequest q = MERIDIAN__KV__GET_REQUEST__INIT;
        q.key.data = k1;
        q.key.len = k1len;
        q.read_ts = at;
        rc = kv_client_call(&c, "kv.Get", &q.base, &meridian__kv__get_response__descriptor, err_get,
                            &out, &e);
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
        rc = kv_write_one(&c, k1, k1len, !strcmp(op, "put") ? argv[3] : NULL, &out, &e);
        if (!rc) print_ts("committed:", ((Meridian__Kv__WriteResponse *)out)->commit_ts);
    } else if (!strcmp(op, "load")) {
        status = kv_load(&c, argv[0]);
    } else {
        rc = scan_all(&c, k1, k1len, k2, k2len, limit, reverse, at, hex, &e);
    }
    if (rc) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg[0] ? e.msg : merr_str(rc));
        status = 1;
    }
    if (out) protobuf_c_message_free_unpacked(out, NULL);
    kv_client_close(&c);
    free(k1);
    free(k2);
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
