/* The harness's blocking key-value client (see jh_client.h). */
#include "tests/jepsen/jh_client.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/mtime.h"
#include "proto/kv.pb-c.h"
#include "rpc/rpc.h"

#define ATTEMPT_NS (1 * MTIME_S)   /* a read attempt; then another host */
#define BENCH_NS   (1 * MTIME_S)   /* a host that failed us sits out this long */
#define BACKOFF_NS (50 * MTIME_MS) /* after a full round of refusals */
#define PROBE_KEY  "jp/probe"

struct jh_client {
    rpc_node *rpc;
    char hosts[JH_MAX_HOSTS][64];
    int registered[JH_MAX_HOSTS];
    int64_t bench_until[JH_MAX_HOSTS]; /* monotonic */
    int nhosts, cur, tried;            /* tried: hosts tried since the last answer */
};

/* One rpc call, waited for. The loop thread fills it in. */
typedef struct jh_call {
    jh_client *c;
    int idx;
    const char *method;
    const uint8_t *payload;
    size_t len;
    int64_t deadline_us;
    int need_up;       /* writes: send only on an established connection */
    int sent;          /* the request was handed to a connection */
    int probed;        /* not sent: a probe went instead to open the connection */
    int code;          /* rpc-level result */
    uint8_t probe[32]; /* the probe's GetRequest */
    char msg[160];
    mbuf reply;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
} jh_call;

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {ns / MTIME_S, ns % MTIME_S};
    nanosleep(&ts, NULL);
}

static void on_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    jh_call *k = arg;
    pthread_mutex_lock(&k->mu);
    k->code = code;
    if (code)
        snprintf(k->msg, sizeof(k->msg), "%s: %s", k->c->hosts[k->idx],
                 msg && *msg ? msg : merr_str(code));
    else if (mbuf_append(&k->reply, p, len))
        k->code = MERR_NOMEM;
    k->done = 1;
    pthread_cond_signal(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

static void start_on_loop(void *arg)
{
    jh_call *k = arg;
    jh_client *c = k->c;
    uint64_t handle = (uint64_t)k->idx + 1;
    if (!c->registered[k->idx]) {
        if (rpc_node_add_gateway(c->rpc, handle, c->hosts[k->idx])) {
            on_reply(k, MERR_INVALID, "bad address", NULL, 0);
            return;
        }
        c->registered[k->idx] = 1;
    }
    const char *method = k->method;
    const uint8_t *payload = k->payload;
    size_t len = k->len;
    if (k->need_up && !rpc_node_peer_is_up(c->rpc, handle)) {
        /* A write queued on a connection still being dialled fails the same
         * way as one lost after it was sent: indeterminate. A read first
         * opens the connection, so a dead node costs a refusal, not an info. */
        Meridian__Kv__GetRequest q = MERIDIAN__KV__GET_REQUEST__INIT;
        q.key.data = (uint8_t *)PROBE_KEY;
        q.key.len = sizeof(PROBE_KEY) - 1;
        len = meridian__kv__get_request__pack(&q, k->probe);
        payload = k->probe;
        method = "kv.Get";
        k->probed = 1;
    }
    int rc = rpc_node_call(c->rpc, handle, method, payload, len, k->deadline_us, on_reply, k, NULL);
    if (rc)
        on_reply(k, rc, "not sent", NULL, 0);
    else
        k->sent = !k->probed;
}

/* Runs one call against host idx; the result is in k (caller frees k->reply). */
static void call(jh_client *c, int idx, jh_call *k, int64_t deadline_ns)
{
    k->c = c;
    k->idx = idx;
    k->deadline_us = (mtime_real_ns() + (deadline_ns - mtime_mono_ns())) / 1000;
    k->reply = (mbuf)MBUF_INIT;
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    if (rpc_node_post(c->rpc, start_on_loop, k)) {
        k->code = MERR_CLOSED;
        snprintf(k->msg, sizeof(k->msg), "client stopping");
    } else {
        pthread_mutex_lock(&k->mu);
        while (!k->done) pthread_cond_wait(&k->cv, &k->mu);
        pthread_mutex_unlock(&k->mu);
    }
    pthread_cond_destroy(&k->cv);
    pthread_mutex_destroy(&k->mu);
}

int jh_client_open(const char *const *hosts, int nhosts, uint64_t seed, jh_client **out, merr *e)
{
    *out = NULL;
    if (nhosts < 1 || nhosts > JH_MAX_HOSTS) return merr_set(e, MERR_INVALID, "1 to 16 hosts");
    jh_client *c = calloc(1, sizeof(*c));
    if (!c) return merr_set(e, MERR_NOMEM, "out of memory");
    for (int i = 0; i < nhosts; i++) snprintf(c->hosts[i], sizeof(c->hosts[i]), "%s", hosts[i]);
    c->nhosts = nhosts;
    c->cur = (int)(seed % (uint64_t)nhosts);
    rpc_config cfg;
    rpc_config_defaults(&cfg);
    cfg.node_id = 0;
    cfg.listen_addr = NULL;
    cfg.fault_seed = seed;
    int rc = rpc_node_start(&cfg, &c->rpc, e);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void jh_client_close(jh_client *c)
{
    if (!c) return;
    rpc_node_stop(c->rpc);
    free(c);
}

const char *jh_client_host(const jh_client *c)
{
    return c->hosts[c->cur];
}

/* Moves to the next host that is not sitting out (any host if all are);
 * after a full round without an answer, backs off a little. */
static void rotate(jh_client *c)
{
    int64_t now = mtime_mono_ns();
    int next = (c->cur + 1) % c->nhosts;
    for (int i = 0; i < c->nhosts; i++) {
        int j = (c->cur + 1 + i) % c->nhosts;
        if (c->bench_until[j] <= now) {
            next = j;
            break;
        }
    }
    c->cur = next;
    if (++c->tried >= c->nhosts) {
        c->tried = 0;
        sleep_ns(BACKOFF_NS);
    }
}

static void bench(jh_client *c, int idx)
{
    c->bench_until[idx] = mtime_mono_ns() + BENCH_NS;
}

/* Follows a NOT_LEADER answer: to the hinted address unless it sits out,
 * otherwise (no leader known yet) on to another host. */
static void follow(jh_client *c, const Meridian__Kv__Error *err)
{
    const char *a = err->leader_address;
    if (a && a[0]) {
        int j = 0;
        while (j < c->nhosts && strcmp(c->hosts[j], a)) j++;
        if (j == c->nhosts && j < JH_MAX_HOSTS && strlen(a) < sizeof(c->hosts[0])) {
            snprintf(c->hosts[j], sizeof(c->hosts[j]), "%s", a);
            c->nhosts++;
        }
        if (j < c->nhosts && j != c->cur && c->bench_until[j] <= mtime_mono_ns()) {
            c->cur = j;
            return;
        }
    }
    rotate(c);
}

/* What an error answer means for an operation. */
enum verdict { V_RETRY, V_FAIL, V_INFO };

static enum verdict judge_error(jh_client *c, const Meridian__Kv__Error *err, int is_write,
                                merr *why)
{
    merr_set(why, MERR_UNAVAILABLE, "%s: kind %d: %s", c->hosts[c->cur], (int)err->kind,
             err->message ? err->message : "");
    switch (err->kind) {
    case MERIDIAN__KV__ERROR_KIND__NOT_LEADER: follow(c, err); return V_RETRY;
    case MERIDIAN__KV__ERROR_KIND__RANGE_MISMATCH:
    case MERIDIAN__KV__ERROR_KIND__RANGE_NOT_FOUND: rotate(c); return V_RETRY;
    case MERIDIAN__KV__ERROR_KIND__INVALID: why->code = MERR_INVALID; return V_FAIL;
    default:
        /* UNAVAILABLE, CLOCK_UNCERTAIN, INTERNAL: a write may have been
         * proposed (or applied, then failed its commit-wait). */
        rotate(c);
        return is_write ? V_INFO : V_RETRY;
    }
}

/* Sends req (packed) until an answer without error, a definite refusal, or
 * an indeterminate failure. On JH_OK *reply holds the answer's bytes. */
static jh_outcome request(jh_client *c, const char *method, const ProtobufCMessage *req,
                          int is_write, int64_t deadline_ns,
                          ProtobufCMessage *(*unpack)(const uint8_t *, size_t),
                          Meridian__Kv__Error *(*err_of)(ProtobufCMessage *),
                          ProtobufCMessage **out, merr *why)
{
    size_t len = protobuf_c_message_get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        merr_set(why, MERR_NOMEM, "out of memory");
        return JH_FAIL; /* nothing was sent */
    }
    protobuf_c_message_pack(req, buf);
    jh_outcome res = JH_FAIL;
    merr_set(why, MERR_TIMEOUT, "no answer before the op's deadline");
    for (int64_t now; (now = mtime_mono_ns()) < deadline_ns;) {
        int64_t until = deadline_ns;
        if (!is_write && until - now > ATTEMPT_NS) until = now + ATTEMPT_NS;
        jh_call k = {.method = method, .payload = buf, .len = len, .need_up = is_write};
        int idx = c->cur;
        call(c, idx, &k, until);
        if (k.code) {
            mbuf_free(&k.reply);
            merr_set(why, k.code, "%s", k.msg);
            bench(c, idx);
            if (c->cur == idx) rotate(c);
            /* Sent and lost (timeout, connection cut): the write may have
             * happened. MERR_PROTOCOL: the handshake was refused, so it
             * never left. */
            if (is_write && k.sent && k.code != MERR_PROTOCOL) {
                res = JH_INFO;
                break;
            }
            continue;
        }
        if (k.probed) { /* the connection is open now: send the real request */
            mbuf_free(&k.reply);
            continue;
        }
        ProtobufCMessage *m = unpack(k.reply.data, k.reply.len);
        mbuf_free(&k.reply);
        if (!m) {
            merr_set(why, MERR_PROTOCOL, "%s: undecodable answer", c->hosts[idx]);
            if (is_write) {
                res = JH_INFO;
                break;
            }
            rotate(c);
            continue;
        }
        Meridian__Kv__Error *err = err_of(m);
        if (!err) {
            c->tried = 0;
            *out = m;
            res = JH_OK;
            break;
        }
        enum verdict v = judge_error(c, err, is_write, why);
        protobuf_c_message_free_unpacked(m, NULL);
        if (v == V_FAIL) break;
        if (v == V_INFO) {
            res = JH_INFO;
            break;
        }
    }
    free(buf);
    return res;
}

#define UNPACKER(T, fn)                                                                            \
    static ProtobufCMessage *unpack_##fn(const uint8_t *p, size_t n)                               \
    {                                                                                              \
        return (ProtobufCMessage *)meridian__kv__##fn##__unpack(NULL, n, p);                       \
    }                                                                                              \
    static Meridian__Kv__Error *err_##fn(ProtobufCMessage *m)                                      \
    {                                                                                              \
        return ((T *)m)->error;                                                                    \
    }
UNPACKER(Meridian__Kv__GetResponse, get_response)
UNPACKER(Meridian__Kv__WriteResponse, write_response)
UNPACKER(Meridian__Kv__ScanResponse, scan_response)

jh_outcome jh_kv_get(jh_client *c, const char *key, int64_t deadline_ns, int *found, char *val,
                     size_t cap, merr *why)
{
    Meridian__Kv__GetRequest q = MERIDIAN__KV__GET_REQUEST__INIT;
    q.key.data = (uint8_t *)key;
    q.key.len = strlen(key);
    ProtobufCMessage *m = NULL;
    jh_outcome o = request(c, "kv.Get", &q.base, 0, deadline_ns, unpack_get_response,
                           err_get_response, &m, why);
    if (o != JH_OK) return o;
    Meridian__Kv__GetResponse *r = (Meridian__Kv__GetResponse *)m;
    *found = r->found;
    size_t n = r->value.len < cap - 1 ? r->value.len : cap - 1;
    if (n) memcpy(val, r->value.data, n);
    val[n] = '\0';
    protobuf_c_message_free_unpacked(m, NULL);
    return JH_OK;
}

jh_outcome jh_kv_put(jh_client *c, const char *key, const char *value, int64_t deadline_ns,
                     merr *why)
{
    Meridian__Kv__Mutation mu = MERIDIAN__KV__MUTATION__INIT, *mp = &mu;
    mu.key.data = (uint8_t *)key;
    mu.key.len = strlen(key);
    if (value) {
        mu.value.data = (uint8_t *)value;
        mu.value.len = strlen(value);
    } else {
        mu.is_delete = 1;
    }
    Meridian__Kv__WriteRequest q = MERIDIAN__KV__WRITE_REQUEST__INIT;
    q.mutations = &mp;
    q.n_mutations = 1;
    ProtobufCMessage *m = NULL;
    jh_outcome o = request(c, "kv.Write", &q.base, 1, deadline_ns, unpack_write_response,
                           err_write_response, &m, why);
    if (m) protobuf_c_message_free_unpacked(m, NULL);
    return o;
}

jh_outcome jh_kv_scan(jh_client *c, const char *start, const char *end, int64_t deadline_ns,
                      void (*reset)(void *arg), jh_row_fn row, void *arg, merr *why)
{
    for (;;) {
        reset(arg);
        Meridian__Kv__ScanRequest q = MERIDIAN__KV__SCAN_REQUEST__INIT;
        q.start_key.data = (uint8_t *)start;
        q.start_key.len = strlen(start);
        q.end_key.data = (uint8_t *)end;
        q.end_key.len = strlen(end);
        uint8_t *resume = NULL;
        jh_outcome o;
        for (;;) {
            ProtobufCMessage *m = NULL;
            o = request(c, "kv.Scan", &q.base, 0, deadline_ns, unpack_scan_response,
                        err_scan_response, &m, why);
            /* A later page that fails (say, its read_ts is ahead of a new
             * leaseholder's clock) restarts the scan rather than mixing
             * snapshots. */
            if (o != JH_OK) break;
            Meridian__Kv__ScanResponse *r = (Meridian__Kv__ScanResponse *)m;
            int bad = 0;
            for (size_t i = 0; i < r->n_rows && !bad; i++)
                bad = row(arg, r->rows[i]->key.data, r->rows[i]->key.len, r->rows[i]->value.data,
                          r->rows[i]->value.len);
            free(resume);
            resume = NULL;
            if (!bad && r->resume_key.len && (resume = malloc(r->resume_key.len))) {
                memcpy(resume, r->resume_key.data, r->resume_key.len);
                q.start_key.data = resume;
                q.start_key.len = r->resume_key.len;
                q.read_ts = r->read_ts; /* the same snapshot */
            } else if (r->resume_key.len) {
                bad = 1;
            }
            protobuf_c_message_free_unpacked(m, NULL);
            if (bad) {
                merr_set(why, MERR_NOMEM, "scan: out of memory");
                return JH_FAIL;
            }
            if (!resume) return JH_OK;
        }
        free(resume);
        if (!q.read_ts || mtime_mono_ns() >= deadline_ns) return o;
    }
}
