/* Internals of the placement driver's node side, shared by node_pd.c (the
 * loop, the operation executor, lifecycle), node_pd_hb.c (heartbeats) and
 * node_pd_settings.c (pd.Settings). Not for other modules. */
#ifndef MERIDIAN_SERVER_NODE_PD_INT_H
#define MERIDIAN_SERVER_NODE_PD_INT_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "common/log.h"
#include "common/mtime.h"
#include "placement/pd_feed.h"
#include "placement/pd_loadkey.h"
#include "placement/pd_policy_text.h"
#include "placement/pd_sched.h"
#include "placement/pd_settings_text.h"
#include "proto/pd.pb-c.h"
#include "proto/range.pb-c.h"
#include "server/kv_service.h"
#include "server/node_int.h"
#include "server/node_moves.h"
#include "server/pbreply.h"
#include "server/range_desc.h"
#include "server/replica.h"

#define MOD             "pd"
#define HB_MS           1000
#define PD_RUN_MS       1000
#define PD_WARMUP_MS    (3 * HB_MS) /* a few heartbeats before a new PD decides */
#define PD_MAX_INFLIGHT 8
#define PD_OP_WAIT      (15 * MTIME_S)
#define PD_SETTLE_MS    (2 * HB_MS + 500)
/* Leaseholders above this × range.split_qps sample their load key. */
#define PD_SAMPLE_FRACTION 0.5

static const uint8_t SETTING_PREFIX[] = "\x00sys/setting/";
#define SETTING_PREFIX_LEN (sizeof(SETTING_PREFIX) - 1)
static const uint8_t POLICY_PREFIX[] = "\x00sys/policy/";
#define POLICY_PREFIX_LEN (sizeof(POLICY_PREFIX) - 1)
static const uint8_t NODE_PREFIX[] = "\x00sys/node/";
#define NODE_PREFIX_LEN (sizeof(NODE_PREFIX) - 1)

/* An operation under way, or finished less than PD_SETTLE_MS ago: the
 * heartbeats behind the next snapshot may predate its effect, so its range
 * stays claimed until fresh ones arrive (no second split at a stale key).
 * A replica step that worked is released as soon as the heartbeats show
 * its effect (pd_inflight_visible): a move's next step then follows within
 * a heartbeat, not a fixed settle time. */
typedef struct pd_running {
    pd_inflight f;
    uint64_t seq;    /* 0: free slot */
    int64_t done_ns; /* 0: still running */
    int ok;          /* finished without an error */
} pd_running;

struct node_pd {
    node *n;
    uv_timer_t timer;
    int timer_on, stopped, refs, hb_inflight;
    int64_t last_hb_ns;
    uint64_t split_above; /* as the PD last answered */
    double split_qps;     /* idem (0: unknown, nothing sampled) */
    uint64_t pd_hint;     /* nodes without range 1: where the PD was last */
    uint64_t probe;       /* ... and which peer to ask when unknown */
    /* PD leader state (volatile) */
    int leading;
    int64_t since_ns;
    pd_hb_table hbs;
    pd_learner_table learners; /* when this term first saw each learner */
    pd_missing_table missing;  /* voters whose node lacks the range (pd_missing.h) */
    pd_running running[PD_MAX_INFLIGHT];
    uint64_t seq;
    pd_cluster last; /* the last run's snapshot, for operators */
    int have_last;
    pd_settings settings;
    int policy_writing;     /* a pd.Policy set/rm is being written */
    size_t policies_hidden; /* stored policies the last run left out */
    /* counters */
    uint64_t heartbeats, runs, ops_started, ops_failed, ops_done, unavailable;
};

static inline host *H(node_pd *p)
{
    return &p->n->host;
}

static inline void prefix_end(const uint8_t *prefix, size_t len, uint8_t *end)
{
    memcpy(end, prefix, len);
    end[len - 1]++; /* "/" + 1: just past every key under the prefix */
}

/* Drops a reference; the last one after node_pd_stop frees p. */
void node_pd_unref(node_pd *p);
/* Range 1's replica here if it is where range 1 is served, else NULL. */
replica *node_pd_range1(node_pd *p);

/* node_pd_hb.c */
/* Takes over as the PD: forgets the previous term's volatile state. */
void node_pd_become_leader(node_pd *p, int64_t now);
void node_pd_on_heartbeat(void *arg, rpc_req *req); /* "pd.Heartbeat" */
void node_pd_send_heartbeat(node_pd *p);

/* node_pd_settings.c */
/* Serves req with range 1's replica here once it holds the lease (renewed
 * first if it lapsed), or with NULL when this node is not range 1's
 * leaseholder: serve must then refuse with NOT_LEADER. */
typedef void (*node_pd_r1_fn)(node_pd *p, rpc_req *req, replica *r1);
void node_pd_at_range1(node_pd *p, rpc_req *req, node_pd_r1_fn serve);
/* The settings as range 1 (this node's replica) holds them over the
 * defaults. */
void node_pd_load_settings(replica *r1, pd_settings *s);
void node_pd_on_settings(void *arg, rpc_req *req); /* "pd.Settings" */

/* node_pd_policy.c */
/* The named policies range 1 (this node's replica) holds, by name. */
size_t node_pd_load_policies(replica *r1, pd_named_policy **out);
void node_pd_policies_free(pd_named_policy *v, size_t n);
/* Adds every stored policy to c (one overlapping a policy added before it,
 * by name, is left out and said): 0 or MERR_NOMEM. */
int node_pd_add_policies(node_pd *p, replica *r1, pd_cluster *c);
void node_pd_on_policy(void *arg, rpc_req *req); /* "pd.Policy" */

#endif
