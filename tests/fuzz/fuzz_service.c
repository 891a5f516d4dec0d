/* libFuzzer target: protobuf requests into every rpc method of one
 * in-process node (issue #13, "protobuf messages into each service").
 *
 * One node is started once per process, as `meridian start --insecure` +
 * `meridian init` do it: node_start on a store in a temporary folder
 * (removed at exit), listening on 127.0.0.1 port 0, then node.Init. A
 * client endpoint in the same process talks to it over that loopback
 * connection only, so every input takes the path a real request takes:
 * frame, envelope, the rpc dispatcher's method table, the handler.
 *
 * Input: "METHOD\0PAYLOAD". A METHOD the node serves is used as is (the
 * seeds name theirs, so they keep meaning as methods are added); any other
 * prefix, or no NUL in the first 64 bytes, picks one from the node's own
 * method table (rpc_node_method: new methods are fuzzed without a change
 * here). Requests carry a short deadline: a handler that parks a request
 * (lock or safe-time waits) is canceled by it, as a client would.
 *
 * Checked after every input: the reply is either success or an error code
 * the project knows with a message; the node still answers kv.Get of a
 * probe key with the value written at setup (nothing lost), and of a key of
 * range 1 (the directory's range still serves).
 *
 * State stays bounded: requests that add replicas are refused past
 * MAX_REPLICAS, sessions and statements fuzzed requests made are closed
 * again, the methods in `excluded` are not driven at all and admissible()
 * keeps membership changes to this node (each says why).
 *
 * FUZZ_SERVICE_WRITE_SEEDS=DIR writes one valid request per method there
 * (tests/fuzz/corpus/fuzz_service/ was made so). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem */
#endif
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/mtime.h"
#include "proto/kv.pb-c.h"
#include "proto/node.pb-c.h"
#include "proto/pd.pb-c.h"
#include "proto/range.pb-c.h"
#include "proto/session.pb-c.h"
#include "proto/txn.pb-c.h"
#include "rpc/rpc.h"
#include "server/node.h"
#include "server/node_int.h"
#include "server/pbreply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define GATEWAY        1
#define CALL_US        (300 * 1000LL) /* a fuzzed request's deadline */
#define PROBE_NS       (30 * MTIME_S) /* hang guard for the probe (a loaded machine) */
#define MAX_REPLICAS   16
#define MAX_NAME       64
#define STREAM_SUFFIX  "+stream" /* "kv.Scan+stream": the method called as a stream */
#define STREAM_WINDOW  4
#define FUZZ_MAX_INPUT (64 << 10)
#define PROBE_KEY      "\xf0zz/probe"
#define PROBE_VALUE    "still here"
#define FIRST_KEY      "\x00zz/probe" /* 0x00 keys never leave range 1 */
#define SELF_NODE_ID   1

/* Not driven, and why. */
static const char *const excluded[] = {
    /* Both add the addresses in the request to the address book, and the
     * node then dials them (node.live heartbeats): traffic to wherever the
     * fuzzer points, not only loopback. */
    "node.Join",
    "node.Peers",
    /* Destroys a replica of any range but 1 by design (the PD's call once a
     * range no longer lists this node). The node cannot tell a stale member
     * from a current one locally, so a fuzzed id deletes live data. */
    "range.Destroy",
};

/* One-way methods: sent as one-way messages, never answered. */
static const char *const oneway[] = {"paxos.msg", "node.live", "node.Peers"};

static struct {
    int ready;
    node *n;
    rpc_node *cli;
    char dir[64];
    char addr[MADDR_STR_MAX];
    char **methods;
    size_t nmethods;
    uint64_t session; /* the harness's SQL session (session.* ids point here) */
    int verbose;      /* FUZZ_SERVICE_VERBOSE: each method and its answer on stderr */
} F;

static int in_list(const char *m, const char *const *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(m, l[i])) return 1;
    return 0;
}
#define IN(m, l) in_list(m, l, sizeof(l) / sizeof(l[0]))

/* ---- the client: raw code and message as the handler sent them ---- */

typedef struct call {
    const char *method;
    const uint8_t *payload;
    size_t len;
    int64_t deadline_us;
    int oneway;
    int stream;   /* a streamed call (scans, SQL results): items counted */
    size_t items; /* loop thread until done */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, code;
    char msg[512];
    int has_msg;
    uint8_t *reply;
    size_t rlen;
} call;

static void on_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    call *c = arg;
    pthread_mutex_lock(&c->mu);
    c->code = code;
    c->has_msg = msg && msg[0];
    snprintf(c->msg, sizeof(c->msg), "%s", msg ? msg : "");
    if (len && (c->reply = malloc(len))) {
        memcpy(c->reply, p, len);
        c->rlen = len;
    }
    c->done = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int on_item(void *arg, const uint8_t *p, size_t len)
{
    call *c = arg;
    (void)p, (void)len;
    c->items++;
    return 1;
}

static void start_call(void *arg)
{
    call *c = arg;
    int rc = rpc_node_add_gateway(F.cli, GATEWAY, F.addr);
    if (!rc && c->oneway) {
        rc = rpc_node_oneway(F.cli, GATEWAY, c->method, c->payload, c->len);
        on_reply(c, rc, "", NULL, 0);
        return;
    }
    if (!rc && c->stream)
        rc = rpc_node_call_stream(F.cli, GATEWAY, c->method, c->payload, c->len, c->deadline_us,
                                  STREAM_WINDOW, on_item, on_reply, c, NULL);
    else if (!rc)
        rc = rpc_node_call(F.cli, GATEWAY, c->method, c->payload, c->len, c->deadline_us, on_reply,
                           c, NULL);
    if (rc) on_reply(c, rc, "local", NULL, 0);
}

/* Sends and waits for the one reply rpc promises (the deadline ends the
 * call and cancels it at the node). The hang guard only catches a broken
 * promise. Caller frees c->reply. */
static void do_call(call *c, int64_t timeout_us)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->deadline_us = mtime_real_ns() / 1000 + timeout_us;
    if (rpc_node_post(F.cli, start_call, c)) abort();
    int64_t guard = mtime_mono_ns() + timeout_us * 1000 + PROBE_NS;
    pthread_mutex_lock(&c->mu);
    while (!c->done) {
        if (mtime_mono_ns() > guard) {
            fprintf(stderr, "fuzz_service: %s: no reply and no deadline error\n", c->method);
            abort();
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    pthread_mutex_unlock(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
}

static int simple_call(const char *method, const ProtobufCMessage *m, int64_t timeout_us,
                       uint8_t **reply, size_t *rlen)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    if (pb_pack(m, &buf, &len)) abort();
    call c = {.method = method, .payload = buf, .len = len};
    do_call(&c, timeout_us);
    free(buf);
    *reply = c.reply;
    *rlen = c.rlen;
    return c.code;
}

/* ---- the probe: kv.Get of PROBE_KEY must find PROBE_VALUE ---- */

/* Elections, leases, a range being split, merged or frozen: wait it out. */
static int kv_retryable(const Meridian__Kv__Error *err)
{
    return err->kind != MERIDIAN__KV__ERROR_KIND__INVALID &&
           err->kind != MERIDIAN__KV__ERROR_KIND__INTERNAL;
}

static void pause_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

enum probe_kind {
    PROBE_WRITE, /* kv.Write PROBE_KEY = PROBE_VALUE */
    PROBE_READ,  /* kv.Get PROBE_KEY must find PROBE_VALUE */
    PROBE_FIRST, /* kv.Get of a key in range 1 (0x00 keys never leave it) must answer */
};

/* One probe, retried through transient errors (elections, leases, a range
 * being split, merged or frozen) up to the hang guard. */
static void probe_one(enum probe_kind kind, const char *why)
{
    Meridian__Kv__RangeTarget t = MERIDIAN__KV__RANGE_TARGET__INIT; /* range 0: by key */
    int64_t until = mtime_mono_ns() + PROBE_NS;
    char last[600] = "";
    while (mtime_mono_ns() < until) {
        uint8_t *r = NULL;
        size_t rl = 0;
        int code;
        const Meridian__Kv__Error *err = NULL;
        ProtobufCMessage *resp = NULL;
        if (kind == PROBE_WRITE) {
            Meridian__Kv__Mutation mu = MERIDIAN__KV__MUTATION__INIT, *mp = &mu;
            mu.key = (ProtobufCBinaryData){sizeof(PROBE_KEY) - 1, (uint8_t *)PROBE_KEY};
            mu.value = (ProtobufCBinaryData){sizeof(PROBE_VALUE) - 1, (uint8_t *)PROBE_VALUE};
            Meridian__Kv__WriteRequest q = MERIDIAN__KV__WRITE_REQUEST__INIT;
            q.target = &t;
            q.mutations = &mp;
            q.n_mutations = 1;
            code = simple_call("kv.Write", &q.base, 5 * 1000000LL, &r, &rl);
            Meridian__Kv__WriteResponse *w =
                code ? NULL : meridian__kv__write_response__unpack(NULL, rl, r);
            if (w) err = w->error, resp = &w->base;
        } else {
            Meridian__Kv__GetRequest q = MERIDIAN__KV__GET_REQUEST__INIT;
            q.target = &t;
            q.key = kind == PROBE_READ
                        ? (ProtobufCBinaryData){sizeof(PROBE_KEY) - 1, (uint8_t *)PROBE_KEY}
                        : (ProtobufCBinaryData){sizeof(FIRST_KEY) - 1, (uint8_t *)FIRST_KEY};
            code = simple_call("kv.Get", &q.base, 5 * 1000000LL, &r, &rl);
            Meridian__Kv__GetResponse *g =
                code ? NULL : meridian__kv__get_response__unpack(NULL, rl, r);
            if (g) {
                err = g->error, resp = &g->base;
                if (kind == PROBE_READ && !err &&
                    (!g->found || g->value.len != sizeof(PROBE_VALUE) - 1 ||
                     memcmp(g->value.data, PROBE_VALUE, g->value.len))) {
                    fprintf(stderr, "fuzz_service: after %s the probe key %s\n", why,
                            g->found ? "has another value" : "is gone");
                    abort();
                }
            }
        }
        free(r);
        if (!code && resp && !err) {
            protobuf_c_message_free_unpacked(resp, NULL);
            return;
        }
        if (!code && !resp) {
            fprintf(stderr, "fuzz_service: after %s: undecodable probe reply\n", why);
            abort();
        }
        int again = code || kv_retryable(err);
        snprintf(last, sizeof(last), "%s", code ? merr_str(code) : err->message);
        if (resp) protobuf_c_message_free_unpacked(resp, NULL);
        if (!again) break;
        pause_ms(5);
    }
    fprintf(stderr, "fuzz_service: after %s the node no longer answers the %s probe: %s\n", why,
            kind == PROBE_FIRST ? "range-1" : "probe key", last);
    abort();
}

/* After every input: the probe key still holds its value (or, when the input
 * named the key itself, is written again), and range 1 still serves. */
static void probe(int write, const char *why)
{
    probe_one(write ? PROBE_WRITE : PROBE_READ, why);
    probe_one(PROBE_FIRST, why);
}

/* ---- setup and teardown ---- */

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(p);
}

static void teardown(void)
{
    if (!F.ready) return;
    F.ready = 0;
    rpc_node_stop(F.cli);
    node_stop(F.n);
    nftw(F.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (size_t i = 0; i < F.nmethods; i++) free(F.methods[i]);
    free(F.methods);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Loop thread: the node's method table, less the exclusions, sorted (the
 * index an input picks stays the same from run to run). */
static void list_methods(void *arg)
{
    rpc_node *rpc = arg;
    size_t n = 0;
    while (rpc_node_method(rpc, n)) n++;
    F.methods = calloc(n ? n : 1, sizeof(char *));
    if (!F.methods) abort();
    for (size_t i = 0; i < n; i++) {
        const char *m = rpc_node_method(rpc, i);
        if (!IN(m, excluded) && !(F.methods[F.nmethods++] = strdup(m))) abort();
    }
    qsort(F.methods, F.nmethods, sizeof(char *), cmp_str);
}

static size_t nreps;
static void count_replicas(void *arg)
{
    node *n = arg;
    nreps = n->host.nreps;
}

static uint64_t open_session(void)
{
    Meridian__Session__OpenRequest q = MERIDIAN__SESSION__OPEN_REQUEST__INIT;
    q.protocol_version = 1;
    q.user = "root";
    uint8_t *r = NULL;
    size_t rl = 0;
    uint64_t id = 0;
    int64_t until = mtime_mono_ns() + PROBE_NS;
    int code = 0;
    while (!id && mtime_mono_ns() < until) {
        if ((code = simple_call("session.open", &q.base, 5 * 1000000LL, &r, &rl)) == 0) {
            Meridian__Session__OpenReply *o = meridian__session__open_reply__unpack(NULL, rl, r);
            if (o) id = o->session_id;
            if (o) meridian__session__open_reply__free_unpacked(o, NULL);
        }
        free(r);
        r = NULL;
        if (!id) pause_ms(20);
    }
    if (!id) {
        fprintf(stderr, "fuzz_service: no SQL session: %s\n", code ? merr_str(code) : "no id");
        abort();
    }
    return id;
}

static void close_session(uint64_t id)
{
    Meridian__Session__CloseRequest q = MERIDIAN__SESSION__CLOSE_REQUEST__INIT;
    q.session_id = id;
    uint8_t *r = NULL;
    size_t rl = 0;
    (void)simple_call("session.close", &q.base, 5 * 1000000LL, &r, &rl);
    free(r);
}

static void close_stmt(uint64_t id)
{
    Meridian__Session__CloseStmtRequest q = MERIDIAN__SESSION__CLOSE_STMT_REQUEST__INIT;
    q.session_id = F.session;
    q.stmt_id = id;
    uint8_t *r = NULL;
    size_t rl = 0;
    (void)simple_call("session.close_stmt", &q.base, 5 * 1000000LL, &r, &rl);
    free(r);
}

static void write_seeds(const char *dir);

static void setup(void)
{
    mlog_set_level(getenv("FUZZ_SERVICE_LOG") ? MLOG_INFO : MLOG_FATAL);
    F.verbose = getenv("FUZZ_SERVICE_VERBOSE") != NULL;
    /* tmpfs when there is one: every write is fsynced. */
    snprintf(F.dir, sizeof(F.dir), "%s/fuzz_service.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(F.dir)) abort();
    node_config cfg;
    node_config_init(&cfg);
    cfg.store = F.dir;
    cfg.listen = "127.0.0.1:0";
    cfg.insecure = 1;
    cfg.clock_source = "static";
    cfg.static_uncertainty_ns = MTIME_MS;
    merr e = {0};
    if (node_config_validate(&cfg, &e) || node_start(&cfg, &F.n, &e)) {
        fprintf(stderr, "fuzz_service: node_start: %s\n", e.msg);
        abort();
    }
    snprintf(F.addr, sizeof(F.addr), "%s", F.n->rpc_addr);
    rpc_config rc;
    rpc_config_defaults(&rc);
    if (rpc_node_start(&rc, &F.cli, &e)) abort();
    F.ready = 1;
    atexit(teardown);
    Meridian__Node__InitRequest init = MERIDIAN__NODE__INIT_REQUEST__INIT;
    uint8_t *r = NULL;
    size_t rl = 0;
    int code = simple_call("node.Init", &init.base, 10 * 1000000LL, &r, &rl);
    free(r);
    if (code) {
        fprintf(stderr, "fuzz_service: node.Init: %s\n", merr_str(code));
        abort();
    }
    probe(1, "setup");
    if (rpc_node_run_sync(F.n->rpc, list_methods, F.n->rpc) || !F.nmethods) abort();
    F.session = open_session();
    const char *seeds = getenv("FUZZ_SERVICE_WRITE_SEEDS");
    if (seeds) write_seeds(seeds);
}

/* ---- what an input may do ---- */

/* Requests that address a session are pointed at the harness's, so fuzzed
 * SQL runs in a real session over the node's ranges. */
static int aim_session(const char *m, uint8_t **p, size_t *len)
{
#define AIM(NAME, T, t)                                                                            \
    if (!strcmp(m, NAME)) {                                                                        \
        T *q = t##__unpack(NULL, *len, *p);                                                        \
        if (!q) return 0;                                                                          \
        q->session_id = F.session;                                                                 \
        uint8_t *b = NULL;                                                                         \
        int rc = pb_pack(&q->base, &b, len);                                                       \
        t##__free_unpacked(q, NULL);                                                               \
        if (rc) abort();                                                                           \
        *p = b;                                                                                    \
        return 1;                                                                                  \
    }
    AIM("session.prepare", Meridian__Session__PrepareRequest, meridian__session__prepare_request)
    AIM("session.exec", Meridian__Session__ExecRequest, meridian__session__exec_request)
    AIM("session.close_stmt", Meridian__Session__CloseStmtRequest,
        meridian__session__close_stmt_request)
    AIM("session.cancel", Meridian__Session__CancelRequest, meridian__session__cancel_request)
    AIM("session.set", Meridian__Session__SetRequest, meridian__session__set_request)
    AIM("session.close", Meridian__Session__CloseRequest, meridian__session__close_request)
#undef AIM
    return 0;
}

/* 0: refuse the input (it would change what one input cannot undo). */
static int admissible(const char *m, const uint8_t *p, size_t len)
{
    if (!strcmp(m, "range.Split") || !strcmp(m, "range.Create")) {
        if (rpc_node_run_sync(F.n->rpc, count_replicas, F.n)) abort();
        if (nreps >= MAX_REPLICAS) return 0;
    }
    /* Membership and registry changes only about this node itself: a
     * phantom node would be added to range 1's group (a voter that never
     * answers takes the quorum) or registered at the PD, which then plans
     * moves onto it. Undecodable requests still go (their error path). */
    if (!strcmp(m, "range.Move")) {
        Meridian__Range__MoveRequest *q = meridian__range__move_request__unpack(NULL, len, p);
        int ok = !q || q->node_id == SELF_NODE_ID;
        if (q) meridian__range__move_request__free_unpacked(q, NULL);
        return ok;
    }
    if (!strcmp(m, "pd.Heartbeat")) {
        Meridian__Pd__HeartbeatRequest *q = meridian__pd__heartbeat_request__unpack(NULL, len, p);
        int ok = !q || (q->node_id == SELF_NODE_ID && !strcmp(q->address, F.addr));
        if (q) meridian__pd__heartbeat_request__free_unpacked(q, NULL);
        return ok;
    }
    /* Decommissioning the only node cannot be taken back by an input. */
    if (!strcmp(m, "pd.Decommission")) {
        Meridian__Pd__DecommissionRequest *q =
            meridian__pd__decommission_request__unpack(NULL, len, p);
        int ok = !q || q->node_id != SELF_NODE_ID;
        if (q) meridian__pd__decommission_request__free_unpacked(q, NULL);
        return ok;
    }
    return 1;
}

/* An error reply must say what went wrong: a code the project knows and a
 * message. MERR_TIMEOUT / MERR_CANCELED are the harness's own deadline. */
static void check_reply(const call *c)
{
    if (c->code == 0) return;
    if (c->code < MERR_MIN_CODE || c->code > 0 || !c->has_msg) {
        fprintf(stderr, "fuzz_service: %s answered code %d with message \"%s\"\n", c->method,
                c->code, c->msg);
        abort();
    }
}

/* The method an input names (see the top), and whether to call it as a
 * stream: a name with STREAM_SUFFIX, else one bit of the input. */
static const char *pick(const uint8_t *data, size_t size, const uint8_t **payload, size_t *len,
                        int *stream)
{
    const uint8_t *nul = memchr(data, 0, size < MAX_NAME ? size : MAX_NAME);
    if (!nul) {
        *payload = data + 1;
        *len = size - 1;
        *stream = data[0] >> 7;
        return F.methods[data[0] % F.nmethods];
    }
    size_t nl = (size_t)(nul - data);
    *payload = nul + 1;
    *len = size - nl - 1;
    size_t sl = sizeof(STREAM_SUFFIX) - 1;
    *stream = nl > sl && !memcmp(data + nl - sl, STREAM_SUFFIX, sl);
    size_t base = *stream ? nl - sl : nl;
    for (size_t i = 0; i < F.nmethods; i++)
        if (strlen(F.methods[i]) == base && !memcmp(F.methods[i], data, base)) return F.methods[i];
    uint32_t h = 2166136261u; /* FNV-1a: a mutated name still lands somewhere */
    for (size_t i = 0; i < nl; i++) h = (h ^ data[i]) * 16777619u;
    *stream = h >> 31;
    return F.methods[h % F.nmethods];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!F.ready) setup();
    if (size < 1 || size > FUZZ_MAX_INPUT) return 0;
    const uint8_t *payload;
    size_t len;
    int stream;
    const char *m = pick(data, size, &payload, &len, &stream);
    if (!admissible(m, payload, len)) return -1;
    uint8_t *aimed = (uint8_t *)payload;
    int own = aim_session(m, &aimed, &len);
    call c = {.method = m, .payload = aimed, .len = len, .oneway = IN(m, oneway)};
    c.stream = stream && !c.oneway;
    do_call(&c, CALL_US);
    if (own) free(aimed);
    if (F.verbose)
        fprintf(stderr, "fuzz_service: %s%s (%zu bytes): %s %s (%zu bytes, %zu items)\n", m,
                c.stream ? STREAM_SUFFIX : "", len, c.code ? merr_str(c.code) : "OK", c.msg, c.rlen,
                c.items);
    check_reply(&c);
    /* Sessions and statements fuzzed requests made are closed again (a
     * session keeps every statement it prepared until closed). */
    if (!strcmp(m, "session.open") && c.code == 0) {
        Meridian__Session__OpenReply *o =
            meridian__session__open_reply__unpack(NULL, c.rlen, c.reply);
        if (o && o->session_id && o->session_id != F.session) close_session(o->session_id);
        if (o) meridian__session__open_reply__free_unpacked(o, NULL);
    }
    if (!strcmp(m, "session.prepare") && c.code == 0) {
        Meridian__Session__PrepareReply *o =
            meridian__session__prepare_reply__unpack(NULL, c.rlen, c.reply);
        if (o && o->stmt_id) close_stmt(o->stmt_id);
        if (o) meridian__session__prepare_reply__free_unpacked(o, NULL);
    }
    free(c.reply);
    if (!strcmp(m, "session.close")) { /* it may have failed: close ours for sure */
        close_session(F.session);
        F.session = open_session();
    }
    if (memmem(data, size, PROBE_KEY, sizeof(PROBE_KEY) - 1))
        probe(1, m); /* the input may have written the probe key itself */
    else
        probe(0, m);
    return 0;
}

/* ---- seeds: one valid request per method ---- */

static void put_seed(const char *dir, const char *m, const ProtobufCMessage *msg, int stream)
{
    uint8_t *b = NULL;
    size_t len = 0;
    if (msg && pb_pack(msg, &b, &len)) abort();
    char name[MAX_NAME + 8], path[4096];
    snprintf(name, sizeof(name), "%s%s", m, stream ? STREAM_SUFFIX : "");
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    size_t nl = strlen(name) + 1;
    if (!f || fwrite(name, 1, nl, f) != nl || (len && fwrite(b, 1, len, f) != len)) abort();
    fclose(f);
    free(b);
}

static void write_seeds(const char *dir)
{
    static uint8_t key[] = "k1";
    ProtobufCBinaryData k = {2, key};
    Meridian__Kv__RangeTarget t = MERIDIAN__KV__RANGE_TARGET__INIT;
    t.range_id = NODE_GENESIS_RANGE;
    Meridian__Kv__Mutation mu = MERIDIAN__KV__MUTATION__INIT, *mp = &mu;
    mu.key = k;
    mu.value = k;
    Meridian__Txn__TxnMeta tm = MERIDIAN__TXN__TXN_META__INIT;
    tm.id = 42;
    tm.priority = 1;
    for (size_t i = 0; i < F.nmethods; i++) {
        const char *m = F.methods[i];
        ProtobufCMessage *msg = NULL;
        Meridian__Kv__GetRequest kg = MERIDIAN__KV__GET_REQUEST__INIT;
        Meridian__Kv__WriteRequest kw = MERIDIAN__KV__WRITE_REQUEST__INIT;
        Meridian__Kv__ScanRequest ks = MERIDIAN__KV__SCAN_REQUEST__INIT;
        Meridian__Txn__GetRequest tg = MERIDIAN__TXN__GET_REQUEST__INIT;
        Meridian__Txn__ScanRequest ts = MERIDIAN__TXN__SCAN_REQUEST__INIT;
        Meridian__Txn__CommitRequest tc = MERIDIAN__TXN__COMMIT_REQUEST__INIT;
        Meridian__Range__SplitRequest sp = MERIDIAN__RANGE__SPLIT_REQUEST__INIT;
        Meridian__Range__DirRequest dr = MERIDIAN__RANGE__DIR_REQUEST__INIT;
        Meridian__Range__MergeRequest mr = MERIDIAN__RANGE__MERGE_REQUEST__INIT;
        Meridian__Range__FreezeRequest fr = MERIDIAN__RANGE__FREEZE_REQUEST__INIT;
        Meridian__Range__MoveRequest mv = MERIDIAN__RANGE__MOVE_REQUEST__INIT;
        Meridian__Pd__SettingsRequest st = MERIDIAN__PD__SETTINGS_REQUEST__INIT;
        Meridian__Session__OpenRequest so = MERIDIAN__SESSION__OPEN_REQUEST__INIT;
        Meridian__Session__PrepareRequest spr = MERIDIAN__SESSION__PREPARE_REQUEST__INIT;
        Meridian__Session__ExecRequest se = MERIDIAN__SESSION__EXEC_REQUEST__INIT;
        Meridian__Node__PingRequest pg = MERIDIAN__NODE__PING_REQUEST__INIT;
        if (!strcmp(m, "kv.Get")) {
            kg.target = &t, kg.key = k, msg = &kg.base;
        } else if (!strcmp(m, "kv.Write")) {
            kw.target = &t, kw.mutations = &mp, kw.n_mutations = 1, msg = &kw.base;
        } else if (!strcmp(m, "kv.Scan")) {
            ks.target = &t, ks.limit = 10, msg = &ks.base;
        } else if (!strcmp(m, "txn.Get")) {
            tg.txn = &tm, tg.key = k, msg = &tg.base;
        } else if (!strcmp(m, "txn.Scan")) {
            ts.txn = &tm, ts.start_key = k, ts.to_end = 1, msg = &ts.base;
        } else if (!strcmp(m, "txn.Commit")) {
            tc.txn = &tm, tc.mutations = &mp, tc.n_mutations = 1, tc.key = k, msg = &tc.base;
        } else if (!strcmp(m, "range.Split")) {
            sp.key = k, msg = &sp.base;
        } else if (!strcmp(m, "dir.Lookup") || !strcmp(m, "dir.Scan")) {
            dr.key = k, dr.limit = 4, msg = &dr.base;
        } else if (!strcmp(m, "range.Merge")) {
            mr.dry_run = 1, msg = &mr.base;
        } else if (!strcmp(m, "range.Freeze") || !strcmp(m, "range.FrozenAt")) {
            fr.range_id = 2, msg = &fr.base;
        } else if (!strcmp(m, "range.Move")) {
            mv.range_id = NODE_GENESIS_RANGE, mv.op = 4, mv.node_id = SELF_NODE_ID, msg = &mv.base;
        } else if (!strcmp(m, "pd.Settings")) {
            st.op = "list", msg = &st.base;
        } else if (!strcmp(m, "session.open")) {
            so.protocol_version = 1, so.user = "root", msg = &so.base;
        } else if (!strcmp(m, "session.prepare")) {
            spr.session_id = F.session, spr.sql = "SELECT 1", msg = &spr.base;
        } else if (!strcmp(m, "session.exec")) {
            se.session_id = F.session, se.seq = 1, se.sql = "SELECT 1", msg = &se.base;
        } else if (!strcmp(m, "node.Ping")) {
            pg.target = 2, msg = &pg.base;
        }
        put_seed(dir, m, msg, 0); /* the rest: the empty request (every field default) */
        /* Streamed where the method streams its answer. */
        if (!strcmp(m, "kv.Scan") || !strcmp(m, "session.exec") || !strcmp(m, "txn.Scan"))
            put_seed(dir, m, msg, 1);
    }
}
