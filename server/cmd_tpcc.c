/* `meridian tpcc init|run|check`: the TPC-C tool (client/tpcc.h,
 * docs/tpcc.md). This file only turns flags into tpcc_opts and picks the
 * driver: libmeridian for --host, libpq for --pg-url. */
#include "client/tpcc.h"
#include "common/cli.h"
#include "server/commands.h"

#include <stdio.h>

enum { TPCC_INIT, TPCC_RUN, TPCC_CHECK };

static int tpcc_main(int argc, char **argv, int what)
{
    const char *host = NULL, *pg = NULL, *isolation = NULL, *csv = NULL, *svg = NULL;
    int64_t warehouses = 1, concurrency = 0, seed = 0, duration = 60 * 1000000000LL;
    int wait = 0, quiet = 0;
    cli_flag flags[13] = {
        {"host", CLI_STR, &host, "H[:P][,H2...]", "Meridian gateways (libmeridian, insecure)"},
        {"pg-url", CLI_STR, &pg, "URL", "PostgreSQL instead, through libpq"},
        {"warehouses", CLI_INT, &warehouses, "W", "number of warehouses (default 1)"},
        {"seed", CLI_INT, &seed, "N", "random seed (default: load 0, run from the clock)"},
        {"isolation", CLI_STR, &isolation, "LEVEL",
         "PostgreSQL isolation level (default serializable)"},
    };
    int nf = 5;
    if (what == TPCC_INIT || what == TPCC_RUN)
        flags[nf++] = (cli_flag){"concurrency", CLI_INT, &concurrency, "C",
                                 what == TPCC_INIT ? "loader connections (default 1)"
                                                   : "terminals (default 4; 10 per warehouse "
                                                     "with --wait)"};
    if (what == TPCC_RUN) {
        flags[nf++] = (cli_flag){"duration", CLI_DURATION, &duration, "D",
                                 "measurement interval (default 60s)"};
        flags[nf++] = (cli_flag){"wait", CLI_BOOL, &wait, NULL,
                                 "keying and think times per the spec (else as fast as possible)"};
        flags[nf++] = (cli_flag){"csv", CLI_STR, &csv, "FILE", "per-second series to FILE"};
        flags[nf++] = (cli_flag){"svg", CLI_STR, &svg, "FILE",
                                 "throughput and latency over time as a picture"};
    }
    if (what != TPCC_CHECK)
        flags[nf++] = (cli_flag){"quiet", CLI_BOOL, &quiet, NULL, "no progress or live lines"};
    flags[nf] = (cli_flag){0};
    int npos = 0, done = 0;
    int rc =
        cli_parse(argv[0], "(--host H | --pg-url URL) [flags]", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (npos || !host == !pg) {
        fprintf(stderr, "%s: give exactly one of --host and --pg-url, and no arguments\n", argv[0]);
        return CLI_EXIT_USAGE;
    }
    if (warehouses < 1 || warehouses > 100000 || concurrency < 0 || concurrency > 10000 ||
        duration <= 0) {
        fprintf(stderr, "%s: --warehouses, --concurrency or --duration out of range\n", argv[0]);
        return CLI_EXIT_USAGE;
    }
    tpcc_opts o = {
        .drv = host ? &tpcc_driver_meridian : &tpcc_driver_pg,
        .target = host ? host : pg,
        .isolation = isolation,
        .warehouses = (int)warehouses,
        .concurrency = (int)concurrency,
        .duration = duration,
        .wait = wait,
        .seed = (uint64_t)seed,
        .quiet = quiet,
        .csv = csv,
        .svg = svg,
    };
    switch (what) {
    case TPCC_INIT: return tpcc_init(&o);
    case TPCC_RUN: return tpcc_run(&o);
    default: return tpcc_check(&o);
    }
}

int cmd_tpcc_init(int argc, char **argv)
{
    return tpcc_main(argc, argv, TPCC_INIT);
}

int cmd_tpcc_run(int argc, char **argv)
{
    return tpcc_main(argc, argv, TPCC_RUN);
}

int cmd_tpcc_check(int argc, char **argv)
{
    return tpcc_main(argc, argv, TPCC_CHECK);
}
