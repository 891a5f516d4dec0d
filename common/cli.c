/* Command-line parsing (see cli.h). */
#include "common/cli.h"
#include "common/err.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

int cli_parse_int(const char *s, int64_t *v)
{
    if (!s || !*s) return MERR_INVALID;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno || *end) return MERR_INVALID;
    *v = x;
    return 0;
}

int cli_parse_duration(const char *s, int64_t *ns)
{
    if (!s || !*s) return MERR_INVALID;
    double total = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        double x = strtod(p, &end);
        if (end == p || errno || x < 0 || !isfinite(x)) return MERR_INVALID;
        p = end;
        double unit;
        if (strncmp(p, "ns", 2) == 0) {
            unit = 1;
            p += 2;
        } else if (strncmp(p, "us", 2) == 0) {
            unit = 1e3;
            p += 2;
        } else if (strncmp(p, "ms", 2) == 0) {
            unit = 1e6;
            p += 2;
        } else if (*p == 's') {
            unit = 1e9;
            p += 1;
        } else if (*p == 'm') {
            unit = 60e9;
            p += 1;
        } else if (*p == 'h') {
            unit = 3600e9;
            p += 1;
        } else {
            return MERR_INVALID; /* a unit is required: "5" alone is ambiguous */
        }
        total += x * unit;
        if (total > 9.2e18) return MERR_INVALID;
    }
    *ns = (int64_t)llround(total);
    return 0;
}

int cli_parse_size(const char *s, int64_t *bytes)
{
    if (!s || !*s) return MERR_INVALID;
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || errno || x < 0 || !isfinite(x)) return MERR_INVALID;
    static const struct {
        const char *suf;
        double mul;
    } units[] = {{"", 1},          {"B", 1},
                 {"KiB", 1024.0},  {"MiB", 1048576.0},
                 {"GiB", 1 << 30}, {"TiB", 1099511627776.0},
                 {"KB", 1e3},      {"MB", 1e6},
                 {"GB", 1e9},      {"TB", 1e12},
                 {"K", 1024.0},    {"M", 1048576.0},
                 {"G", 1 << 30}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suf) == 0) {
            double v = x * units[i].mul;
            if (v > 9.2e18) return MERR_INVALID;
            *bytes = (int64_t)llround(v);
            return 0;
        }
    }
    return MERR_INVALID;
}

void cli_format_duration(int64_t ns, char *buf, size_t cap)
{
    double v = (double)ns;
    if (ns < 0) v = -v;
    const char *sign = ns < 0 ? "-" : "";
    if (v < 1e3)
        snprintf(buf, cap, "%s%" PRId64 "ns", sign, ns < 0 ? -ns : ns);
    else if (v < 1e6)
        snprintf(buf, cap, "%s%.3gus", sign, v / 1e3);
    else if (v < 1e9)
        snprintf(buf, cap, "%s%.3gms", sign, v / 1e6);
    else
        snprintf(buf, cap, "%s%.4gs", sign, v / 1e9);
}

static const char *kind_metavar(cli_kind k)
{
    switch (k) {
    case CLI_STR: return "STRING";
    case CLI_INT: return "N";
    case CLI_BOOL: return "";
    case CLI_DURATION: return "DURATION";
    case CLI_SIZE: return "SIZE";
    case CLI_DOUBLE: return "NUM";
    }
    return "";
}

void cli_print_help(FILE *out, const char *cmd, const char *usage, const cli_flag *flags)
{
    fprintf(out, "Usage: %s %s\n", cmd, usage ? usage : "[flags]");
    if (flags && flags[0].name) fprintf(out, "\nFlags:\n");
    for (const cli_flag *f = flags; f && f->name; f++) {
        char left[96];
        const char *mv = f->metavar ? f->metavar : kind_metavar(f->kind);
        snprintf(left, sizeof(left), "--%s%s%s", f->name, *mv ? " " : "", mv);
        fprintf(out, "  %-34s %s\n", left, f->help ? f->help : "");
    }
    fprintf(out, "  %-34s %s\n", "--help", "show this help");
}

static const cli_flag *find_flag(const cli_flag *flags, const char *name, size_t n)
{
    for (const cli_flag *f = flags; f && f->name; f++)
        if (strlen(f->name) == n && strncmp(f->name, name, n) == 0) return f;
    return NULL;
}

static int set_flag(const char *cmd, const cli_flag *f, const char *val)
{
    int rc = 0;
    switch (f->kind) {
    case CLI_STR: *(const char **)f->dst = val; break;
    case CLI_BOOL: *(int *)f->dst = 1; break;
    case CLI_INT: rc = cli_parse_int(val, (int64_t *)f->dst); break;
    case CLI_DURATION: rc = cli_parse_duration(val, (int64_t *)f->dst); break;
    case CLI_SIZE: rc = cli_parse_size(val, (int64_t *)f->dst); break;
    case CLI_DOUBLE: {
        char *end;
        errno = 0;
        double d = strtod(val, &end);
        if (end == val || *end || errno)
            rc = MERR_INVALID;
        else
            *(double *)f->dst = d;
        break;
    }
    }
    if (rc) {
        const char *what = f->kind == CLI_DURATION ? " (a duration such as 500ms, 3s, 1m)"
                           : f->kind == CLI_SIZE   ? " (a size such as 4096, 64KiB, 1GiB)"
                           : f->kind == CLI_INT    ? " (an integer)"
                                                   : "";
        fprintf(stderr, "%s: bad value '%s' for --%s%s\n", cmd, val, f->name, what);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

int cli_parse(const char *cmd, const char *usage, const cli_flag *flags, int argc, char **argv,
              int *npos, int *done)
{
    int pos = 1;
    *done = 0;
    int only_pos = 0;
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            argv[pos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            cli_print_help(stdout, cmd, usage, flags);
            *done = 1;
            return 0;
        }
        if (a[1] != '-') {
            fprintf(stderr, "%s: unknown flag '%s' (flags are --long; try --help)\n", cmd, a);
            *done = 1;
            return CLI_EXIT_USAGE;
        }
        const char *name = a + 2;
        const char *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        const cli_flag *f = find_flag(flags, name, n);
        if (!f) {
            fprintf(stderr, "%s: unknown flag '--%.*s' (try --help)\n", cmd, (int)n, name);
            *done = 1;
            return CLI_EXIT_USAGE;
        }
        const char *val = NULL;
        if (f->kind == CLI_BOOL) {
            if (eq) {
                fprintf(stderr, "%s: --%s takes no value\n", cmd, f->name);
                *done = 1;
                return CLI_EXIT_USAGE;
            }
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(stderr, "%s: --%s needs a value\n", cmd, f->name);
            *done = 1;
            return CLI_EXIT_USAGE;
        }
        int rc = set_flag(cmd, f, val);
        if (rc) {
            *done = 1;
            return rc;
        }
    }
    *npos = pos - 1;
    return 0;
}

static void print_cmds(FILE *out, const char *prog, const char *summary, const cli_cmd *cmds)
{
    if (summary) fprintf(out, "%s\n\n", summary);
    fprintf(out, "Usage: %s <command> [flags]\n\nCommands:\n", prog);
    for (const cli_cmd *c = cmds; c->name; c++) fprintf(out, "  %-14s %s\n", c->name, c->summary);
    fprintf(out, "\nRun '%s <command> --help' for a command's flags.\n", prog);
}

int cli_dispatch(const char *prog, const char *summary, const cli_cmd *cmds, int argc, char **argv)
{
    if (argc < 2) {
        print_cmds(stderr, prog, summary, cmds);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        print_cmds(stdout, prog, summary, cmds);
        return 0;
    }
    for (const cli_cmd *c = cmds; c->name; c++) {
        if (strcmp(c->name, name) != 0) continue;
        char path[256];
        snprintf(path, sizeof(path), "%s %s", prog, c->name);
        if (c->subs) return cli_dispatch(path, c->summary, c->subs, argc - 1, argv + 1);
        argv[1] = path;
        return c->run(argc - 1, argv + 1);
    }
    fprintf(stderr, "%s: unknown command '%s'\n", prog, name);
    print_cmds(stderr, prog, NULL, cmds);
    return CLI_EXIT_USAGE;
}
