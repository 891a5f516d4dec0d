/* meridian: one binary, many subcommands (DESIGN.md §1, modelled on the
 * `cockroach` CLI). This file is only the command table; commands live in
 * server/cmd_*.c. */
#include "common/cli.h"
#include "server/commands.h"

#include <signal.h>

/* `meridian bench <what>`: add entries here, and the "bench" line below. */
static const cli_cmd bench_cmds[] = {
    {"clock", "cost of tt_now/hlc_now, HLC fsync, commit-wait vs 2ε", cmd_bench_clock, NULL},
    {"kv", "durable puts against a running cluster: ops/s and latency", cmd_bench_kv, NULL},
    {"logstore", "replication log store: group commit throughput and latency", cmd_bench_logstore,
     NULL},
    {"paxos", "CPU cost of the Multi-Paxos core, batched vs unbatched", cmd_bench_paxos, NULL},
    {"rpc", "rpc ping-pong over loopback: requests/s and p50/p99 latency", cmd_bench_rpc, NULL},
    {"ranges", "idle ranges on one node: memory, CPU and fds per range", cmd_bench_ranges, NULL},
    {"storage", "MVCC range store vs raw SQLite: point reads, batched writes", cmd_bench_storage,
     NULL},
    {"sql", "SQL through libmeridian against a cluster: ops/s and latency", cmd_bench_sql, NULL},
    {"txn-reads", "snapshot reads from every replica vs the leaseholder: reads/s, ratio",
     bench_txn_reads_run, NULL},
    {"txn", "read-write transactions, 1 range vs 2 ranges (2PC): txn/s, p50/p99", cmd_bench_txn,
     NULL},
    {0},
};

/* `meridian debug <what>` */
static const cli_cmd debug_cmds[] = {
    {"faults", "inject rpc faults into a node (tests)", cmd_debug_faults, NULL},
    {"kv", "key-value operations: put, get, del, scan", cmd_debug_kv, NULL},
    {"ping", "round trips from one node to every other, as Paxos sees them", cmd_debug_ping, NULL},
    {"ranges", "every range: span, replicas, leaseholder, size, applied slots", cmd_debug_ranges,
     NULL},
    {"split", "split the range holding --key KEY at KEY", cmd_debug_split, NULL},
    {"merge", "merge the range holding --key KEY with its right neighbour", cmd_debug_merge, NULL},
    {"settings", "cluster settings: list, get NAME, set NAME VALUE", cmd_debug_settings, NULL},
    {"transfer-lease", "move range --range R's lease to node --to NODE", cmd_debug_transfer_lease,
     NULL},
    {"policy", "placement policies: list, set NAME --start K ..., rm NAME", cmd_debug_policy, NULL},
    {0},
};

/* `meridian cert <what>`: TLS certificates (docs/security.md). */
static const cli_cmd cert_cmds[] = {
    {"create-ca", "create the cluster CA (certificate and key)", cmd_cert_create_ca, NULL},
    {"create-client", "create a client certificate for USER", cmd_cert_create_client, NULL},
    {"create-node", "create a node certificate for HOST...", cmd_cert_create_node, NULL},
    {"list", "list the certificates in a certs directory", cmd_cert_list, NULL},
    {0},
};

/* `meridian node <what>` */
static const cli_cmd node_cmds[] = {
    {"status", "every node: address, locality, state, replicas, leases", cmd_node_status, NULL},
    {"decommission", "move every replica off a node before it leaves", cmd_node_decommission, NULL},
    {0},
};

/* `meridian tpcc <what>`: the TPC-C tool (docs/tpcc.md). */
static const cli_cmd tpcc_cmds[] = {
    {"check", "verify the consistency conditions 1-4", cmd_tpcc_check, NULL},
    {"init", "create and load the TPC-C tables", cmd_tpcc_init, NULL},
    {"run", "run the TPC-C mix and report tpmC and latency", cmd_tpcc_run, NULL},
    {0},
};

static const cli_cmd commands[] = {
    {"bench", "run a benchmark: meridian bench <what>", NULL, bench_cmds},
    {"cert", "create and list TLS certificates: meridian cert <what>", NULL, cert_cmds},
    {"clock", "show this node's time interval, uncertainty and clock status", cmd_clock, NULL},
    {"debug", "debugging tools: meridian debug <what>", NULL, debug_cmds},
    {"demo", "a throwaway local cluster with the SQL shell on it", cmd_demo, NULL},
    {"init", "initialise a new cluster at one node", cmd_init, NULL},
    {"node", "cluster nodes: meridian node status", NULL, node_cmds},
    {"sql", "the SQL shell: meridian sql --host H[,H2...] [-e SQL]", cmd_sql, NULL},
    {"start", "run a node", cmd_start, NULL},
    {"tpcc", "TPC-C against Meridian or PostgreSQL: meridian tpcc init|run|check", NULL, tpcc_cmds},
    {"version", "print the version, git revision and build type", cmd_version, NULL},
    {0},
};

int main(int argc, char **argv)
{
    /* A peer that hangs up must be an error on that connection, not a dead node. */
    signal(SIGPIPE, SIG_IGN);
    return cli_dispatch("meridian", "meridian: a Spanner-style distributed SQL database", commands,
                        argc, argv);
}
