/* When a node must not use its clock although its time source vouches for
 * it (see host.h, docs/time.md "Refusing a bad clock"):
 *
 * - after a restart, until the wall clock passed the HLC high-water mark the
 *   previous run stored (hlc_restart_wait_ns), so its timestamps do not run
 *   ahead of real time;
 * - while its offset to a majority of the peers it hears from is beyond
 *   ε_self + ε_peer + rtt/2 (timesvc/offset_check.h). A clock off beyond its
 *   own bound breaks TrueTime, and then leases and commit-wait prove nothing:
 *   the node takes no leases, assigns no timestamps and serves nothing until
 *   the offset is back in bounds (CockroachDB's max-offset check).
 *
 * Every 250 ms the node calls "node.ClockProbe" on each peer in its address
 * book; the answer carries the peer's clock reading and ε. Loop thread only. */
#include "server/host.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mtime.h"
#include "proto/node.pb-c.h"
#include "server/pbreply.h"
#include "timesvc/offset_check.h"

#define MOD            "clock"
#define PROBE_EVERY_MS 250
#define PROBE_TIMEOUT  (1000LL * 1000) /* µs */
#define FRESH_NS       (2 * MTIME_S)   /* samples older than this do not count */
#define GRACE_NS       (2 * MTIME_S)   /* at start: wait this long for a first verdict */

typedef struct host_clock {
    host *h;
    rpc_node *rpc;
    uv_timer_t timer;
    offset_check oc;
    int refs;    /* the timer and every probe in flight */
    int stopped; /* host closed: callbacks touch nothing but this struct */
    int violated;
    int judged;            /* a verdict was reached since start */
    int64_t started_mono;  /* for the start grace */
    int64_t hold_until_ns; /* restart wait: wall time to reach */
    int hold_logged;
    uint64_t violations, refusals;
} host_clock;

typedef struct probe {
    host_clock *c;
    uint64_t peer;
    int64_t send_ns;
} probe;

static void clk_release(host_clock *c)
{
    if (--c->refs == 0) free(c);
}

static void on_timer_closed(uv_handle_t *t)
{
    clk_release(t->data);
}

/* The callee side: our raw clock reading (not gated: a peer needs it
 * precisely when we refuse service). */
static void on_probe(void *arg, rpc_req *req)
{
    host_clock *c = arg;
    tt_interval tt;
    if (!c || c->stopped || tt_now(&c->h->clock, &tt, NULL)) {
        rpc_reply(req, MERR_CLOCK, "no clock reading", NULL, 0);
        return;
    }
    Meridian__Node__ClockProbeResponse resp = MERIDIAN__NODE__CLOCK_PROBE_RESPONSE__INIT;
    resp.now_ns = tt.now_ns;
    resp.epsilon_ns = tt.epsilon_ns;
    pb_reply(req, &resp.base);
}

static void judge(host_clock *c, int64_t mono)
{
    oc_verdict v = oc_evaluate(&c->oc, mono);
    if (v.heard) c->judged = 1;
    if (v.violation && !c->violated) {
        c->violations++;
        MLOG_E(MOD,
               "clock offset to a majority of peers is beyond the uncertainty bounds: "
               "refusing leases, timestamps and reads until it is back",
               "peers_heard=%zu beyond=%zu worst_offset_ms=%.3f", v.heard, v.beyond,
               (double)v.worst_ns / 1e6);
    } else if (!v.violation && c->violated) {
        MLOG_I(MOD, "clock offset back within the bounds: serving again",
               "peers_heard=%zu worst_offset_ms=%.3f", v.heard, (double)v.worst_ns / 1e6);
    }
    c->violated = v.violation;
}

static void on_probe_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    probe *pr = arg;
    host_clock *c = pr->c;
    (void)msg;
    tt_interval tt;
    if (!c->stopped && code == 0 && tt_now(&c->h->clock, &tt, NULL) == 0) {
        Meridian__Node__ClockProbeResponse *m =
            meridian__node__clock_probe_response__unpack(NULL, len, p);
        int64_t mono = mtime_mono_ns();
        if (m) {
            oc_record(&c->oc, pr->peer, pr->send_ns, tt.now_ns, m->now_ns, m->epsilon_ns,
                      tt.epsilon_ns, mono);
            meridian__node__clock_probe_response__free_unpacked(m, NULL);
            judge(c, mono);
        }
    }
    free(pr);
    clk_release(c);
}

static void on_tick(uv_timer_t *t)
{
    host_clock *c = t->data;
    host *h = c->h;
    judge(c, mtime_mono_ns()); /* samples age out when peers go quiet */
    tt_interval tt;
    if (tt_now(&h->clock, &tt, NULL)) return;
    int64_t deadline = mtime_real_ns() / 1000 + PROBE_TIMEOUT;
    for (size_t i = 0; i < h->npeers; i++) {
        uint64_t id = h->peers[i].id;
        if (id == 0 || id == h->node_id || !rpc_node_peer_is_up(c->rpc, id)) continue;
        probe *pr = malloc(sizeof(*pr));
        if (!pr) return;
        pr->c = c;
        pr->peer = id;
        pr->send_ns = tt.now_ns;
        c->refs++;
        if (rpc_node_call(c->rpc, id, "node.ClockProbe", NULL, 0, deadline, on_probe_reply, pr,
                          NULL)) {
            c->refs--;
            free(pr);
        }
    }
}

int host_clock_start(host *h, merr *e)
{
    host_clock *c = calloc(1, sizeof(*c));
    if (!c) return merr_set(e, MERR_NOMEM, "out of memory");
    c->h = h;
    c->rpc = h->rpc;
    oc_init(&c->oc, FRESH_NS);
    c->started_mono = mtime_mono_ns();
    int64_t wall = mtime_real_ns() + h->clock.cfg.skew_ns;
    int64_t wait = hlc_restart_wait_ns(&h->hlc, wall);
    if (wait > 0) {
        c->hold_until_ns = wall + wait;
        MLOG_W(MOD,
               "the previous run handed out timestamps ahead of this clock: "
               "taking no leases until it passes them",
               "wait_ms=%.3f", (double)wait / 1e6);
    }
    uv_timer_init(h->loop, &c->timer);
    c->timer.data = c;
    c->refs = 1;
    uv_timer_start(&c->timer, on_tick, PROBE_EVERY_MS, PROBE_EVERY_MS);
    rpc_node_handle(h->rpc, "node.ClockProbe", on_probe, c);
    h->clk = c;
    return 0;
}

void host_clock_stop(host *h)
{
    host_clock *c = h->clk;
    if (!c) return;
    h->clk = NULL;
    c->stopped = 1;
    rpc_node_handle(h->rpc, "node.ClockProbe", on_probe, NULL);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

int host_clock_gate(host *h, const tt_interval *tt, merr *e)
{
    host_clock *c = h->clk;
    if (!c) return 0;
    if (c->hold_until_ns) {
        if (tt->now_ns < c->hold_until_ns)
            return merr_set(e, MERR_CLOCK,
                            "clock is %.3f ms behind timestamps the previous run handed out",
                            (double)(c->hold_until_ns - tt->now_ns) / 1e6);
        c->hold_until_ns = 0;
    }
    if (c->violated) {
        c->refusals++;
        return merr_set(e, MERR_CLOCK, "clock offset to a majority of peers is beyond the bounds");
    }
    /* A restarted node that knows peers uses its clock only once it heard
     * from one (or after a grace, when none answers: it cannot get a
     * majority then anyway). */
    if (!c->judged && h->npeers > 1 && mtime_mono_ns() - c->started_mono < GRACE_NS)
        return merr_set(e, MERR_CLOCK, "clock not yet compared with the peers");
    return 0;
}

void host_clock_metrics(host *h, mbuf *out)
{
    host_clock *c = h->clk;
    if (!c) return;
    mbuf_printf(out,
                "# TYPE meridian_clock_offset_violation gauge\n"
                "meridian_clock_offset_violation %d\n"
                "# TYPE meridian_clock_offset_violations_total counter\n"
                "meridian_clock_offset_violations_total %" PRIu64 "\n"
                "# TYPE meridian_clock_offset_refusals_total counter\n"
                "meridian_clock_offset_refusals_total %" PRIu64 "\n"
                "# TYPE meridian_clock_peer_offset_ns gauge\n",
                c->violated, c->violations, c->refusals);
    for (size_t i = 0; i < c->oc.npeers; i++)
        mbuf_printf(out, "meridian_clock_peer_offset_ns{peer=\"%" PRIu64 "\"} %" PRId64 "\n",
                    c->oc.peers[i].id, c->oc.peers[i].offset_ns);
}
