/* jp_check: checks a recorded history file with one of the workload
 * checkers and prints the verdict and its explanation.
 *   jp_check --workload register|list-append|rw-register|bank|set [flags] HISTORY_FILE
 * Exit status: 0 valid, 1 invalid, 2 unknown, unreadable or malformed
 * history, or a usage error. */
#include <stdio.h>
#include <string.h>

#include "common/cli.h"
#include "tests/jepsen/jp_check.h"

int main(int argc, char **argv)
{
    const char *workload = NULL;
    int64_t total = 0, max_steps = 0;
    int has_total = 0, negative_ok = 0, no_realtime = 0, process_order = 0;
    const char *total_s = NULL;
    const cli_flag flags[] = {
        {"workload", CLI_STR, &workload, "W", "register, list-append, rw-register, bank or set"},
        {"total", CLI_STR, &total_s, "N", "bank: the fixed total (default: the earliest read's)"},
        {"negative-ok", CLI_BOOL, &negative_ok, NULL, "bank: negative balances are allowed"},
        {"no-realtime", CLI_BOOL, &no_realtime, NULL,
         "list-append, rw-register: serializability only, no real-time edges"},
        {"process-order", CLI_BOOL, &process_order, NULL,
         "list-append, rw-register: process-order edges (session guarantees)"},
        {"max-steps", CLI_INT, &max_steps, "N", "register: search steps per key before unknown"},
        {0},
    };
    int npos = 0, done = 0;
    const char *usage = "--workload register|list-append|rw-register|bank|set [flags] HISTORY_FILE";
    int rc = cli_parse("jp_check", usage, flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (npos != 1 || !workload || max_steps < 0) {
        fprintf(stderr, "usage: jp_check %s\n", usage);
        return CLI_EXIT_USAGE;
    }
    if (total_s) {
        if (cli_parse_int(total_s, &total)) {
            fprintf(stderr, "jp_check: bad --total '%s'\n", total_s);
            return CLI_EXIT_USAGE;
        }
        has_total = 1;
    }
    enum { W_REG, W_LIST, W_RW, W_BANK, W_SET } w;
    if (!strcmp(workload, "register"))
        w = W_REG;
    else if (!strcmp(workload, "list-append"))
        w = W_LIST;
    else if (!strcmp(workload, "rw-register"))
        w = W_RW;
    else if (!strcmp(workload, "bank"))
        w = W_BANK;
    else if (!strcmp(workload, "set"))
        w = W_SET;
    else {
        fprintf(stderr,
                "jp_check: unknown workload '%s' (register, list-append, rw-register, bank, set)\n",
                workload);
        return CLI_EXIT_USAGE;
    }
    jp_history h;
    merr e = {0};
    if (jp_history_load(argv[1], &h, &e)) {
        fprintf(stderr, "jp_check: %s\n", merr_msg(&e));
        return 2;
    }
    jp_report r;
    jp_report_init(&r);
    switch (w) {
    case W_REG: {
        jp_register_opts o = {.max_steps = (uint64_t)max_steps};
        rc = jp_check_register(&h, &o, &r, &e);
        break;
    }
    case W_LIST: {
        jp_elle_opts o = {.no_realtime = no_realtime, .process_order = process_order};
        rc = jp_check_list_append(&h, &o, &r, &e);
        break;
    }
    case W_RW: {
        jp_elle_opts o = {.no_realtime = no_realtime, .process_order = process_order};
        rc = jp_check_rw_register(&h, &o, &r, &e);
        break;
    }
    case W_BANK: {
        jp_bank_opts o = {.has_total = has_total, .total = total, .negative_ok = negative_ok};
        rc = jp_check_bank(&h, &o, &r, &e);
        break;
    }
    case W_SET: rc = jp_check_set(&h, &r, &e); break;
    }
    int status = 2;
    if (rc) {
        fprintf(stderr, "jp_check: %s\n", merr_msg(&e));
    } else {
        printf("%s: %s (%zu operations)\n", workload, jp_verdict_name(r.verdict), h.ncalls);
        if (r.text.len) fwrite(r.text.data, 1, r.text.len, stdout);
        status = (int)r.verdict;
    }
    jp_report_free(&r);
    jp_history_free(&h);
    return status;
}
