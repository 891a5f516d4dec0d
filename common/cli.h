/* Command-line parsing for `meridian <subcommand> [flags] [args]`.
 *
 * A command is a table entry; a command either runs or holds a table of its own
 * (`meridian bench rpc`). Flags are `--name value` or `--name=value`; booleans
 * take no value. `--help`/`-h` prints the command's usage and exits 0. An
 * unknown subcommand or flag, a missing or bad value: a clear message on
 * stderr and exit status 2 (CLI_EXIT_USAGE). */
#ifndef MERIDIAN_COMMON_CLI_H
#define MERIDIAN_COMMON_CLI_H

#include <stdint.h>
#include <stdio.h>

#define CLI_EXIT_USAGE 2

typedef enum cli_kind {
    CLI_STR,      /* const char ** */
    CLI_INT,      /* int64_t * */
    CLI_BOOL,     /* int *, set to 1 */
    CLI_DURATION, /* int64_t * in nanoseconds: "250us", "3s", "1m30s", "500ms" */
    CLI_SIZE,     /* int64_t * in bytes: "4096", "64KiB", "64MiB", "1GB" */
    CLI_DOUBLE,   /* double * */
} cli_kind;

typedef struct cli_flag {
    const char *name; /* without the dashes */
    cli_kind kind;
    void *dst;
    const char *metavar; /* shown in help: --listen HOST:PORT */
    const char *help;
} cli_flag;

typedef struct cli_cmd cli_cmd;
struct cli_cmd {
    const char *name;
    const char *summary;
    /* Either run (argv[0] is the command name) ... */
    int (*run)(int argc, char **argv);
    /* ... or a NULL-name-terminated table of subcommands. */
    const cli_cmd *subs;
};

/* Dispatches argv[1] among `cmds`; `prog` names the path so far ("meridian").
 * Returns the exit status. */
int cli_dispatch(const char *prog, const char *summary, const cli_cmd *cmds, int argc, char **argv);

/* Parses flags in argv[1..]. Positionals are gathered into argv[1..*npos]
 * (argv is permuted). `usage` is the line after the command name, e.g.
 * "[flags] KEY VALUE". Returns 0 to go on, or an exit status (0 after --help,
 * CLI_EXIT_USAGE on error) with *done set to 1. */
int cli_parse(const char *cmd, const char *usage, const cli_flag *flags, int argc, char **argv,
              int *npos, int *done);

void cli_print_help(FILE *out, const char *cmd, const char *usage, const cli_flag *flags);

/* Value parsers; return 0 or MERR_INVALID. */
int cli_parse_duration(const char *s, int64_t *ns);
int cli_parse_size(const char *s, int64_t *bytes);
int cli_parse_int(const char *s, int64_t *v);

/* Formats a duration for humans: "1.25ms", "3s". */
void cli_format_duration(int64_t ns, char *buf, size_t cap);

#endif
