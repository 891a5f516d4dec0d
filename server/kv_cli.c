/* The command-line key-value client (kv_cli.h). */
#include "server/kv_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/mtime.h"

int kv_client_connect(kv_client *c, const char *host, merr *e)
{
    if (c->rpc) cli_rpc_close(c->rpc);
    c->rpc = NULL;
    if (host != c->host) memmove(c->host, host, strnlen(host, sizeof(c->host) - 1) + 1);
    c->host[sizeof(c->host) - 1] = '\0';
    return cli_rpc_open(c->host, c->certs_dir, "root", &c->rpc, e);
}

int kv_client_open(kv_client *c, const char *hosts, const char *certs_dir, int64_t timeout_ns,
                   merr *e)
{
    memset(c, 0, sizeof(*c));
    c->deadline_ns = mtime_mono_ns() + timeout_ns;
    c->certs_dir = certs_dir;
    for (const char *p = hosts; *p && c->nhosts < KV_MAX_HOSTS;) {
        size_t l = strcspn(p, ",");
        snprintf(c->hosts[c->nhosts++], sizeof(c->hosts[0]), "%.*s", (int)l, p);
        p += l;
        if (*p == ',') p++;
    }
    c->next = c->nhosts > 1 ? 1 : 0;
    if (c->nhosts == 0) return merr_set(e, MERR_INVALID, "no host given");
    return kv_client_connect(c, c->hosts[0], e);
}

void kv_client_close(kv_client *c)
{
    if (c->rpc) cli_rpc_close(c->rpc);
    c->rpc = NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* What a response's error says to do next. */
enum next { NEXT_DONE, NEXT_RETRY, NEXT_FAIL };

/* Connects to the next of --host that accepts, trying each at most once;
 * an error only when none does. */
static int next_host(kv_client *c, merr *e)
{
    int rc = MERR_UNAVAILABLE;
    for (int i = 0; i < c->nhosts && rc; i++) {
        rc = kv_client_connect(c, c->hosts[c->next], e);
        c->next = (c->next + 1) % c->nhosts;
        if (c->next == 0) sleep_ms(200); /* a full round: back off a little */
    }
    return rc;
}

static enum next judge(kv_client *c, const Meridian__Kv__Error *err, merr *e)
{
    if (!err) return NEXT_DONE;
    merr_set(e, MERR_UNAVAILABLE, "%s", err->message);
    switch (err->kind) {
    case MERIDIAN__KV__ERROR_KIND__NOT_LEADER:
        /* A hint may name a node that died since (the replica has not seen
         * the new election yet): unreachable, it is skipped for the next of
         * --host rather than ending the command. */
        if (err->leader_address && err->leader_address[0] && strcmp(err->leader_address, c->host)) {
            if (kv_client_connect(c, err->leader_address, e) == 0) return NEXT_RETRY;
            return next_host(c, e) ? NEXT_FAIL : NEXT_RETRY;
        }
        /* No leader known here (an election, or a replica that was removed
         * or is still a learner): another node may know better. */
        if (c->nhosts > 1) return next_host(c, e) ? NEXT_FAIL : NEXT_RETRY;
        sleep_ms(100);
        return NEXT_RETRY;
    case MERIDIAN__KV__ERROR_KIND__RANGE_MISMATCH:
        /* The range split or merged under the request (a write refused so
         * is certainly not applied): requests route by key, so the retry
         * finds the new range. */
        sleep_ms(50);
        return NEXT_RETRY;
    case MERIDIAN__KV__ERROR_KIND__RANGE_NOT_FOUND:
        /* This node has no replica (yet): another may. */
        return next_host(c, e) ? NEXT_FAIL : NEXT_RETRY;
    case MERIDIAN__KV__ERROR_KIND__UNAVAILABLE:
    case MERIDIAN__KV__ERROR_KIND__CLOCK_UNCERTAIN: sleep_ms(100); return NEXT_RETRY;
    default: merr_set(e, MERR_INVALID, "%s", err->message); return NEXT_FAIL;
    }
}

int kv_client_call(kv_client *c, const char *method, const ProtobufCMessage *req,
                   const ProtobufCMessageDescriptor *desc, kv_err_of_fn err_of,
                   ProtobufCMessage **out, merr *e)
{
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) return merr_set(e, MERR_NOMEM, "out of memory");
    protobuf_c_message_pack(req, buf);
    int rc = MERR_TIMEOUT;
    merr_set(e, MERR_TIMEOUT, "no leaseholder answered before --timeout");
    /* The cluster's last retryable answer: when the deadline then cuts a
     * call short, it says more than "timed out" (a loaded machine). */
    merr answered = {0};
    while (mtime_mono_ns() < c->deadline_ns) {
        mbuf reply = MBUF_INIT;
        merr ce = {0};
        int64_t left = c->deadline_ns - mtime_mono_ns();
        int64_t per = c->call_timeout_ns ? c->call_timeout_ns : 2 * MTIME_S;
        int crc = cli_rpc_call(c->rpc, method, buf, len, left < per ? left : per, &reply, &ce);
        if (crc) {
            mbuf_free(&reply);
            *e = ce;
            rc = crc;
            if (crc == MERR_INVALID || crc == MERR_UNSUPPORTED || crc == MERR_PROTOCOL) break;
            /* This node cannot be reached (dead, or a stale leader hint): go
             * to the next of --host. */
            if (next_host(c, e)) break;
            continue;
        }
        ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, reply.len, reply.data);
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
        if (nx == NEXT_RETRY) answered = *e;
        if (nx == NEXT_FAIL) {
            rc = e->code ? e->code : MERR_INVALID;
            break;
        }
        rc = e->code ? e->code : MERR_TIMEOUT;
    }
    if (rc == MERR_TIMEOUT && answered.code)
        merr_set(e, MERR_TIMEOUT, "timed out; the last answer was: %s", answered.msg);
    free(buf);
    return rc;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

int kv_parse_key(const char *arg, uint8_t **key, size_t *klen, merr *e)
{
    size_t n = strlen(arg);
    *key = NULL;
    *klen = 0;
    if (n == 0) return merr_set(e, MERR_INVALID, "keys must be non-empty");
    if (n > 2 && arg[0] == '0' && (arg[1] == 'x' || arg[1] == 'X')) {
        const char *h = arg + 2;
        size_t hl = n - 2;
        if (hl % 2) return merr_set(e, MERR_INVALID, "hex key \"%s\": odd number of digits", arg);
        uint8_t *k = malloc(hl / 2);
        if (!k) return merr_set(e, MERR_NOMEM, "out of memory");
        for (size_t i = 0; i < hl / 2; i++) {
            int a = hexval(h[2 * i]), b = hexval(h[2 * i + 1]);
            if (a < 0 || b < 0) {
                free(k);
                return merr_set(e, MERR_INVALID, "hex key \"%s\": not a hex digit", arg);
            }
            k[i] = (uint8_t)(a << 4 | b);
        }
        *key = k;
        *klen = hl / 2;
        return 0;
    }
    *key = malloc(n);
    if (!*key) return merr_set(e, MERR_NOMEM, "out of memory");
    memcpy(*key, arg, n);
    *klen = n;
    return 0;
}
