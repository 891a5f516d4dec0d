/* Entry points of the `meridian` subcommands. Each takes argv[0] = the command
 * path ("meridian clock") and returns the process exit status. */
#ifndef MERIDIAN_SERVER_COMMANDS_H
#define MERIDIAN_SERVER_COMMANDS_H

int cmd_version(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_debug_kv(int argc, char **argv);
int cmd_node_status(int argc, char **argv);
int cmd_node_decommission(int argc, char **argv);
int cmd_debug_ranges(int argc, char **argv);
int cmd_debug_faults(int argc, char **argv);
int cmd_bench_kv(int argc, char **argv);
int cmd_bench_rpc(int argc, char **argv);
int cmd_clock(int argc, char **argv);
int cmd_bench_clock(int argc, char **argv);
int cmd_bench_storage(int argc, char **argv);
int cmd_bench_logstore(int argc, char **argv);
int cmd_bench_paxos(int argc, char **argv);
int cmd_bench_ranges(int argc, char **argv);
int cmd_cert_create_ca(int argc, char **argv);
int cmd_cert_create_node(int argc, char **argv);
int cmd_cert_create_client(int argc, char **argv);
int cmd_cert_list(int argc, char **argv);
int cmd_sql(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_tpcc_init(int argc, char **argv);
int cmd_tpcc_run(int argc, char **argv);
int cmd_tpcc_check(int argc, char **argv);
int cmd_debug_ping(int argc, char **argv);
int cmd_bench_sql(int argc, char **argv);
int cmd_debug_split(int argc, char **argv);
int cmd_debug_merge(int argc, char **argv);
int cmd_debug_transfer_lease(int argc, char **argv);
int cmd_debug_settings(int argc, char **argv);
int cmd_debug_policy(int argc, char **argv);
/* server/cmd_bench_txn_reads.c: the snapshot-read phase of `bench txn`. */
int bench_txn_reads_run(int argc, char **argv);
int cmd_bench_txn(int argc, char **argv);

#endif
