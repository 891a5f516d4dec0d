/* The Jepsen harness (`jp_run`, docs/jepsen.md "The harness"): client
 * workers run a workload against a real cluster while a nemesis injects
 * faults, and every operation's invocation and completion goes into a
 * history file (jp_recorder.h) for jp_check.
 *
 * Three parts share this header:
 *   - workloads (jh_workloads.c): what one operation is, and the final reads
 *     once the cluster is healed. A workload is a table entry: register and
 *     set on the key-value API (jh_client.h), bank and list-append as SQL
 *     transactions over libmeridian (jh_sql.c);
 *   - the nemesis (jh_nemesis.c): faults on the processes of a cluster
 *     started by deploy/local-cluster.sh, scheduled by a seeded PRNG;
 *   - the run (jh_run_main.c): flags, workers, phases, summary.
 *
 * Recording rule (Jepsen's): a worker is one process at a time; an `info`
 * completion retires its process id and the worker goes on under a fresh
 * one. Times are mtime_mono_ns(), taken before the invocation is recorded
 * and after the answer arrived, so each op's window covers its real one. */
#ifndef MERIDIAN_TESTS_JEPSEN_JH_RUN_H
#define MERIDIAN_TESTS_JEPSEN_JH_RUN_H

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include "common/err.h"
#include "rpc/fault.h"
#include "tests/jepsen/jh_client.h"
#include "tests/jepsen/jp_history.h"
#include "tests/jepsen/jp_recorder.h"

#define JH_MAX_NODES JH_MAX_HOSTS

typedef struct jh_run jh_run;
typedef struct jh_worker jh_worker;
typedef struct jh_sqlconn jh_sqlconn;

typedef struct jh_workload {
    const char *name; /* also jp_check's --workload */
    /* Before the clients start (tables, rows), or NULL. */
    int (*setup)(jh_worker *w, merr *e);
    /* Invokes, performs and completes one operation (both recorded). */
    int (*op)(jh_worker *w, merr *e);
    /* After healing and recovery: the reads the checker judges the end by. */
    int (*final)(jh_worker *w, merr *e);
} jh_workload;

const jh_workload *jh_workload_find(const char *name);
/* "register|set|bank|list-append": for usage messages. */
const char *jh_workload_names(void);

/* ---- the cluster, as deploy/local-cluster.sh records it ---- */

typedef struct jh_node {
    int idx; /* local-cluster.sh's index I */
    int pid;
    uint64_t id; /* node id, from STORE/IDENTITY */
    char rpc[64];
    char store[512];
} jh_node;

typedef struct jh_cluster {
    const char *dir;         /* DIR given to local-cluster.sh */
    const char *start_flags; /* MERIDIAN_START_FLAGS of the cluster */
    const char *lc;          /* path of local-cluster.sh */
    const char *bin;         /* the meridian binary (debug faults) */
    int log_fd;              /* where tools' output goes */
    jh_node nodes[JH_MAX_NODES];
    int n;
    int skewed[JH_MAX_NODES]; /* by idx % JH_MAX_NODES: running with a skewed clock */
    /* DIR/netns (local-cluster.sh MERIDIAN_NETNS): node I runs in namespace
     * "<prefix>n<I>"; "" when the cluster is on loopback. */
    char netns_prefix[32];
} jh_cluster;

/* Reads DIR/nodes and each store's IDENTITY. */
int jh_cluster_load(jh_cluster *c, merr *e);
/* Runs argv (stdout to out if given, NUL-terminated; else to the log).
 * Returns the exit status, or -1 if it could not run. */
int jh_tool(jh_cluster *c, char *const argv[], char *out, size_t cap);
/* --split N: pre-splits the workload's table through `meridian debug split`
 * when the binary has it; otherwise says the run is single-range. */
int jh_split(jh_worker *w, int n, merr *e);
/* bank, list-append: looks the workload table's id up into r->table_id. */
int jh_table_id(jh_worker *w, merr *e);
/* The split nemesis's next split point: a key inside the workload's live
 * key space (register and set: around the keys in use; bank: an account;
 * list-append: around the live keys), as 0x-hex in hex. 0, or -1 when the
 * workload has no key to split at yet. Any thread. */
int jh_split_point(jh_run *r, rpc_rng *g, char *hex, size_t cap);
/* A SQL row key (table tid, primary index, integer key) as 0x-hex. */
int jh_row_key_hex(int64_t tid, int64_t at, char *hex, size_t cap);

/* A span of keys [lo, hi), both bounds non-empty (JH_KEY_MAX bytes at most). */
#define JH_KEY_MAX 64
typedef struct jh_keyspan {
    uint8_t lo[JH_KEY_MAX], hi[JH_KEY_MAX];
    size_t lo_len, hi_len;
} jh_keyspan;
/* The merge nemesis's bounds: the workload's whole key space (register:
 * jp/r/..., set: jp/s/..., bank and list-append: the table's primary index).
 * 0, or -1 when it is not known yet (no table id). Any thread. */
int jh_key_space(jh_run *r, jh_keyspan *sp);
/* The primary index of table tid: [prefix, its successor). */
int jh_table_span(int64_t tid, jh_keyspan *sp);
/* Bytes as 0x-hex (NUL-terminated). 0, or -1 when cap is too small. */
int jh_hex(const uint8_t *p, size_t n, char *hex, size_t cap);

/* ---- the nemesis ---- */

typedef enum jh_fault {
    JH_F_KILL,     /* kill -9 a node, restart it later */
    JH_F_PAUSE,    /* SIGSTOP a node, SIGCONT later */
    JH_F_ISOLATE,  /* cut one node off from every other, both ways */
    JH_F_LEADER,   /* the same for range 1's leaseholder */
    JH_F_ONEWAY,   /* one node's messages to (or from) every other are lost */
    JH_F_HALVES,   /* a random minority cut off from the majority */
    JH_F_SKEW,     /* restart a node with its clock skewed within its bound */
    JH_F_SKEW_BIG, /* ... skewed beyond the maximum clock uncertainty */
    JH_F_DISK,     /* a node's log writes fail with ENOSPC */
    JH_F_SPLIT,    /* split the workload's key space at random keys (jh_nemesis_ranges.c) */
    JH_F_TRANSFER, /* move random ranges' leases to other voters (jh_nemesis_ranges.c) */
    JH_F_NETNS,    /* partitions by network namespaces + iptables (jh_netns.c) */
    JH_F_MERGE,    /* merge ranges of the workload's key space with their right neighbours */
    JH_F_COUNT
} jh_fault;

const char *jh_fault_name(jh_fault f);

typedef struct jh_nemesis_opts {
    unsigned kinds; /* bitmask of 1u << jh_fault; 0 = none */
    uint64_t seed;
    int64_t end_ns; /* monotonic: no new fault starts after this... */
    /* ...once every enabled class (kill, pause, partition) ran once. */
    int64_t quiet_min_ns, quiet_max_ns, hold_min_ns, hold_max_ns;
    /* split: picks split points in run's workload (jh_split_point; a
     * pointer so the nemesis links without the workloads). */
    int (*split_point)(jh_run *run, rpc_rng *g, char *hex, size_t cap);
    /* merge: the workload's key space (jh_key_space), the same way. */
    int (*key_space)(jh_run *run, jh_keyspan *sp);
    jh_run *run;
} jh_nemesis_opts;

/* Parses none|kill|pause|partition|all|clock-skew|clock-skew-big|disk-full|
 * split|leader-transfer|netns-partition|merge (comma-separated) into kinds. all = kill, pause and
 * partition. */
int jh_nemesis_parse(const char *spec, unsigned *kinds);

/* The cut of partition variant f (isolate, isolate-leader, one-way,
 * halves), drawing the victims from g: side[i] = 1 for the cut-off nodes,
 * *how "both", "out" (their sends are lost) or "in" (they hear nothing);
 * what gets a description ("isolate: 2"). Returns 0, or -1 when there is no
 * place for f (one node). */
int jh_partition_cut(jh_cluster *c, jh_fault f, rpc_rng *g, int side[], const char **how,
                     char *what, size_t wcap);

/* Each node's rpc fault spec (rpc/fault.h) for partition f, drawing the
 * victims from g; what gets a description ("isolate: 2"). spec[i] is "" for
 * a node left alone. Rules name peers by node id (jh_node.id), never by
 * index. Returns 0, or -1 when there is no place for f (one node). */
#define JH_SPEC_MAX 512
int jh_partition_specs(jh_cluster *c, jh_fault f, rpc_rng *g, char spec[][JH_SPEC_MAX], char *what,
                       size_t wcap);

/* netns-partition's preconditions: root, `ip`, `iptables` in path (NULL: the
 * usual sbin/bin folders). Returns 0 when the nemesis can run here, else -1
 * with the reason in why. (The cluster must also run in namespaces:
 * jh_cluster.netns_prefix.) */
int jh_netns_probe(const char *path, char *why, size_t cap);

/* One packet-filter rule of a namespace cut: in node `node`'s namespace,
 * drop packets from (chain "INPUT") or to ("OUTPUT") address addr. */
typedef struct jh_netns_rule {
    int node; /* index into jh_cluster.nodes */
    const char *chain;
    char addr[64];
} jh_netns_rule;
/* The rules that make the cut (side, how) of jh_partition_cut between the
 * nodes' addresses (their rpc host part): only the cut-off side filters.
 * Returns how many (at most cap), or -1 when an address cannot be read. */
int jh_netns_rules(const jh_cluster *c, const int side[], const char *how, jh_netns_rule *out,
                   int cap);
typedef struct jh_nemesis_stats {
    int count[JH_F_COUNT];
    int errors; /* tool invocations that failed */
    /* clock-skew-big: lines of the skewed nodes' logs, while skewed, where
     * they refused to serve for want of a trustworthy clock. */
    int clock_refusals;
    int skew_led; /* clock-skew(-big): times the skewed node got range 1's lease */
    /* disk-full: log-write failures the full nodes logged; nodes that died
     * (a crash, not a clean refusal); nodes restarted because a replica had
     * stopped and does not resume by itself once the disk has room. */
    int disk_failures, disk_crashes, disk_restarts;
    /* split, leader-transfer: requests that took effect, and those the
     * cluster refused or that timed out (counted, not errors: a split is
     * refused while 2PC intents are prepared, a transfer while another runs) */
    int splits, splits_refused, transfers, transfers_refused;
    /* merge: the same; an event that found no boundary inside the key
     * space to remove asks nothing (merges_idle) */
    int merges, merges_refused, merges_idle;
    /* netns-partition: why it did not run on this machine ("" if it ran) */
    char netns_skipped[256];
} jh_nemesis_stats;

/* netns-partition: one cut (a variant of jh_partition_cut drawn from g) by
 * iptables rules inside the nodes' namespaces, held for hold_ns, then every
 * namespace's INPUT and OUTPUT chains flushed. */
void jh_netns_fault(jh_cluster *c, int64_t hold_ns, rpc_rng *g, jp_recorder *rec,
                    volatile sig_atomic_t *stop, jh_nemesis_stats *st);

/* A round's order of fault classes (fault numbers; JH_F_COUNT: the next
 * partition): shuffled, except that split comes before merge. */
void jh_shuffle_round(int *classes, int n, rpc_rng *g);
/* Runs the schedule until the end (or until *stop), healing each fault
 * before the next. Events go to rec as comments and to the log. */
int jh_nemesis_run(jh_cluster *c, const jh_nemesis_opts *o, jp_recorder *rec,
                   volatile sig_atomic_t *stop, jh_nemesis_stats *st, merr *e);
/* split, leader-transfer and merge (jh_nemesis_ranges.c): one event of fault f,
 * held for hold_ns (several requests spread over it). */
void jh_ranges_fault(jh_cluster *c, jh_fault f, const jh_nemesis_opts *o, int64_t hold_ns,
                     rpc_rng *g, jp_recorder *rec, volatile sig_atomic_t *stop,
                     jh_nemesis_stats *st);
/* One line of `meridian debug ranges` (table): "range start end replicas
 * lease ...". Replicas are node ids, learners marked L: only voters are
 * kept (a lease goes to voters only). lease is 0 for "none". start and end
 * are the span's bytes (\xNN escapes undone); length 0 is -inf / +inf. */
typedef struct jh_range_row {
    uint64_t id, lease;
    uint64_t voters[16];
    int nvoters;
    uint8_t start[JH_KEY_MAX], end[JH_KEY_MAX];
    size_t start_len, end_len;
} jh_range_row;
/* Parses that table into rows (at most cap); header and junk lines are
 * skipped. Returns the number of rows. */
int jh_parse_ranges(const char *text, jh_range_row *rows, int cap);
/* The merge nemesis's pick: a row whose end is a boundary strictly inside
 * sp and whose right neighbour (the row starting there) has the same
 * voters, as a merge requires. Writes a key of that row inside sp (its
 * start, or sp's lo when the row starts below it) to key/klen and returns
 * the row's index, or -1 when there is no such boundary. */
int jh_merge_pick(const jh_range_row *rows, int n, const jh_keyspan *sp, rpc_rng *g, uint8_t *key,
                  size_t *klen);
/* Shared with jh_nemesis.c: a "<mono ns> nemesis TEXT" comment in the
 * history and a line in the log; a sleep cut short by *stop. */
void jh_note(jh_cluster *c, jp_recorder *rec, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void jh_nap(int64_t ns, volatile sig_atomic_t *stop);

/* Heals everything: restarts dead nodes, resumes paused ones, clears every
 * node's rpc faults. Idempotent; the last step before the final reads. */
int jh_nemesis_heal_all(jh_cluster *c, jp_recorder *rec, jh_nemesis_stats *st, merr *e);

/* ---- the run ---- */

enum { JH_STAT_OK, JH_STAT_FAIL, JH_STAT_INFO };

struct jh_run {
    const jh_workload *wl;
    jp_recorder *rec;
    jh_cluster cluster;
    const char *hosts[JH_MAX_NODES];
    int nhosts;
    int clients;
    uint64_t seed;
    int64_t op_timeout_ns, final_timeout_ns;
    int keys;        /* register: keys in use at a time */
    int ops_per_key; /* register: ops on a key before it is retired */
    int accounts;    /* bank: accounts, each starting with balance */
    int64_t balance;
    int64_t table_id;       /* bank, list-append: the table's id (jh_table_id), 0 unknown */
    atomic_int testing_bug; /* record one wrong final read (the harness's self-test) */
    atomic_int_fast64_t next_process;
    atomic_int stop;
    /* SIGINT/SIGTERM arrived: the final reads stop at the next key (each
     * read may still run out its own deadline). */
    atomic_int interrupted;
    atomic_int record_failed;
    atomic_uint_fast64_t stats[JP_F_MEMBERS + 1][3];
    void *wl_state; /* the workload's shared state */
};

struct jh_worker {
    jh_run *run;
    int idx;
    int64_t process;
    jh_client *cl;
    jh_sqlconn *sql; /* bank, list-append: the worker's libmeridian connection */
    rpc_rng rng;
};

/* Records op as an invocation by w's process, stamped now. */
int jh_invoke(jh_worker *w, jp_op *op, merr *e);
/* Records op's completion (type set by the caller), stamped now; an info
 * completion retires the process. */
int jh_complete(jh_worker *w, jp_op *op, merr *e);
/* Workload state is set up and freed by these (jh_workloads.c). */
int jh_workload_init(jh_run *r, merr *e);
void jh_workload_free(jh_run *r);
/* Shared by the workloads: a fresh unique value (1, 2, ...); a key from the
 * live window (--keys keys at a time, each retired after --ops-per-key
 * picks); the highest key picked so far (-1: none). */
int64_t jh_next_value(jh_run *r);
int64_t jh_live_key(jh_worker *w);
int64_t jh_max_key(jh_run *r);

/* The transactional workloads over libmeridian (jh_sql.c). */
int jh_bank_setup(jh_worker *w, merr *e);
int jh_bank_op(jh_worker *w, merr *e);
int jh_bank_final(jh_worker *w, merr *e);
int jh_la_setup(jh_worker *w, merr *e);
int jh_la_op(jh_worker *w, merr *e);
int jh_la_final(jh_worker *w, merr *e);
/* Closes w's SQL connection, if any. */
void jh_sql_close(jh_worker *w);

#endif
