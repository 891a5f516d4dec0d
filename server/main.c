/* meridian: one binary, many subcommands (DESIGN.md §1, modelled on the
 * `cockroach` CLI). This file is only the command table; commands live in
 * server/cmd_*.c. */
#include "common/cli.h"
#include "server/commands.h"

#include <signal.h>

/* `meridian bench <what>`: add entries here, and the "bench" line below. */
static const cli_cmd bench_cmds[] = {
    {"rpc", "rpc ping-pong over loopback: requests/s and p50/p99 latency", cmd_bench_rpc, NULL},
    {0},
};

static const cli_cmd commands[] = {
    {"bench", "run a benchmark: meridian bench <what>", NULL, bench_cmds},
    {"sql", "the SQL shell: meridian sql --host H[,H2...] [-e SQL]", cmd_sql, NULL},
    {"start", "run a node", cmd_start, NULL},
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
