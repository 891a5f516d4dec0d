/* `meridian sql`: the interactive shell and its non-interactive modes.
 *
 * Statements are gathered line by line until SQLite's tokenizer says they
 * are complete (sqlite3_complete: a `;` outside strings, comments and
 * triggers), then run one by one with meridian_prepare's tail. Ctrl-C: the
 * SIGINT handler only writes a byte to a pipe (async-signal-safe); a small
 * thread reads it and calls meridian_interrupt, which is thread-safe, so the
 * running statement is canceled and the shell lives on. */
#include "client/shell.h"

#include "common/cli.h"
#include "common/mtime.h"

#include <editline/readline.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

typedef struct shell {
    meridian *db;
    shell_format fmt;
    int timer;
    int interactive;
    char user[64];
} shell;

static int sigpipe_fds[2] = {-1, -1};
static int promptpipe_fds[2] = {-1, -1}; /* wakes the line reader on Ctrl-C */
static meridian *sig_db;
/* busy: a statement batch is being run; intr: Ctrl-C came during it. */
static pthread_mutex_t busy_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t busy_cv = PTHREAD_COND_INITIALIZER;
static int busy;
static atomic_int intr;
static volatile sig_atomic_t got_sigint; /* seen by the prompt */

static void on_sigint(int sig)
{
    (void)sig;
    char c = 1;
    int saved = errno;
    /* The prompt's pipe first: the interrupter may end the statement at
     * once, and the shell drains this pipe before its next prompt, so the
     * byte must be there by then. */
    got_sigint = 1;
    if (promptpipe_fds[1] >= 0 && write(promptpipe_fds[1], &c, 1) < 0) {
        /* pipe full: a Ctrl-C is already pending */
    }
    if (sigpipe_fds[1] >= 0 && write(sigpipe_fds[1], &c, 1) < 0) {
        /* same */
    }
    errno = saved;
}

/* libedit reads keys through this: it waits on the terminal and on the
 * Ctrl-C pipe together, so a Ctrl-C that lands before libedit blocks in
 * read() still ends the line instead of being lost. */
static int shell_getc(FILE *f)
{
    for (;;) {
        struct pollfd p[2] = {{fileno(f), POLLIN, 0}, {promptpipe_fds[0], POLLIN, 0}};
        int n = poll(p, promptpipe_fds[0] >= 0 ? 2 : 1, -1);
        if (n < 0 && errno == EINTR) {
            if (got_sigint) return EOF;
            continue;
        }
        if (n < 0) return EOF;
        if (p[1].revents) return EOF; /* got_sigint is set */
        unsigned char c;
        ssize_t r = read(fileno(f), &c, 1);
        if (r == 1) return c;
        if (r < 0 && errno == EINTR) continue;
        return EOF;
    }
}

static void drain_prompt_pipe(void)
{
    char junk[64];
    while (promptpipe_fds[0] >= 0 && read(promptpipe_fds[0], junk, sizeof(junk)) > 0) {
    }
}

static void set_busy(int b)
{
    pthread_mutex_lock(&busy_mu);
    busy = b;
    if (!b) {
        atomic_store(&intr, 0);
        pthread_cond_broadcast(&busy_cv);
    }
    pthread_mutex_unlock(&busy_mu);
}

/* Interrupts until the batch ends: an interrupt is a no-op in the gaps
 * between statements (while one is being prepared, say), so one call could
 * be lost; the run_sql loop also checks intr before each statement. */
static void interrupt_until_idle(void)
{
    pthread_mutex_lock(&busy_mu);
    if (busy) atomic_store(&intr, 1);
    while (busy) {
        pthread_mutex_unlock(&busy_mu);
        meridian_interrupt(sig_db);
        pthread_mutex_lock(&busy_mu);
        if (!busy) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&busy_cv, &busy_mu, &ts);
    }
    pthread_mutex_unlock(&busy_mu);
}

static void *interrupter(void *arg)
{
    (void)arg;
    char c;
    for (;;) {
        ssize_t n = read(sigpipe_fds[0], &c, 1);
        if (n == 0) break;
        if (n < 0) {
            if (errno == EINTR) continue;
            break;
        }
        if (c == 0) break; /* shutdown */
        interrupt_until_idle();
    }
    return NULL;
}

/* Prints an error; with an offset, the statement's line and a caret. */
static void print_error(shell *sh, const char *sql, size_t len)
{
    fprintf(stderr, "ERROR: %s\n", meridian_errmsg(sh->db));
    int off = meridian_error_offset(sh->db);
    if (off < 0 || !sql || (size_t)off > len) return;
    const char *start = sql + off;
    while (start > sql && start[-1] != '\n') start--;
    const char *end = sql + off;
    while (end < sql + len && *end != '\n') end++;
    int line = 1;
    for (const char *p = sql; p < start; p++) line += *p == '\n';
    char prefix[32];
    int plen = snprintf(prefix, sizeof(prefix), "LINE %d: ", line);
    fprintf(stderr, "%s%.*s\n%*s^\n", prefix, (int)(end - start), start,
            plen + (int)(sql + off - start), "");
}

/* Runs every statement of sql; returns 0 or 1 after the first error. */
static int run_statements(shell *sh, const char *sql)
{
    const char *p = sql, *end = sql + strlen(sql);
    while (p < end) {
        if (atomic_load(&intr)) {
            fprintf(stderr, "ERROR: interrupted\n");
            return 1;
        }
        meridian_stmt *st = NULL;
        const char *tail = NULL;
        int64_t t0 = mtime_mono_ns();
        int rc = meridian_prepare(sh->db, p, (int)(end - p), &st, &tail);
        if (rc) {
            print_error(sh, p, (size_t)(end - p));
            return 1;
        }
        if (!st) {
            /* Blanks, comments or a lone ';': skip them, go on after. */
            if (!tail || tail <= p) break;
            p = tail;
            continue;
        }
        shell_out o;
        if (shell_out_begin(&o, sh->fmt, stdout, st)) {
            fprintf(stderr, "ERROR: out of memory\n");
            meridian_finalize(st);
            return 1;
        }
        while ((rc = meridian_step(st)) == MERIDIAN_ROW)
            if (shell_out_row(&o, st)) break;
        int ncols = o.ncols;
        shell_out_end(&o);
        if (rc != MERIDIAN_DONE) {
            fflush(stdout);
            print_error(sh, p, (size_t)(tail - p));
            meridian_finalize(st);
            return 1;
        }
        if (!ncols && sh->fmt == SHELL_TABLE) {
            int64_t n = meridian_changes(sh->db);
            if (n)
                printf("OK, %lld row%s affected\n", (long long)n, n == 1 ? "" : "s");
            else
                printf("OK\n");
        }
        meridian_finalize(st);
        if (sh->timer) {
            char d[32];
            cli_format_duration(mtime_mono_ns() - t0, d, sizeof(d));
            printf("Time: %s\n", d);
        }
        fflush(stdout);
        p = tail;
    }
    return 0;
}

static int run_sql(shell *sh, const char *sql)
{
    set_busy(1);
    int rc = run_statements(sh, sql);
    set_busy(0);
    return rc;
}

static int read_file(shell *sh, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "ERROR: cannot open %s: %s\n", path, strerror(errno));
        return 1;
    }
    char *buf = NULL;
    size_t cap = 0, len = 0;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                fprintf(stderr, "ERROR: out of memory\n");
                return 1;
            }
            buf = nb;
        }
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (!buf) return 0;
    buf[len] = 0;
    int rc = run_statements(sh, buf); /* already busy: .read runs inside a batch */
    free(buf);
    return rc;
}

static const char *help_text =
    ".help                 this text\n"
    ".quit, .exit          leave the shell\n"
    ".tables               list tables and views\n"
    ".schema [TABLE]       show CREATE statements\n"
    ".mode MODE            output: table, csv, tsv, json, line\n"
    ".timer on|off         show how long each statement took\n"
    ".read FILE            run the SQL in FILE\n"
    ".ranges [TABLE]       key ranges of a table (needs a Meridian cluster)\n"
    ".nodes                nodes of the cluster (needs a Meridian cluster)\n"
    ".demo nodes|kill N|restart N   inside `meridian demo`: list, kill -9, restart nodes\n"
    "SQL statements end with ';' and may span several lines. Ctrl-C cancels the\n"
    "running statement; Ctrl-D or .quit leaves.\n"
    "Reads in the past: SELECT ... AS OF SYSTEM TIME '-10s' (or a UTC time, a\n"
    "meridian_now() value, follower_read_timestamp()); BEGIN AS OF SYSTEM TIME ...\n";

/* `.demo nodes|kill N|restart N`: inside `meridian demo`, which names its
 * cluster script and directory in the environment, runs that script (in its
 * own session, so a restarted node never sees the terminal's Ctrl-C). */
static int demo_command(const char *what, const char *arg)
{
    const char *ctl = getenv("MERIDIAN_DEMO_CTL"), *dir = getenv("MERIDIAN_DEMO_DIR");
    if (!ctl || !dir) {
        fprintf(stderr, "ERROR: .demo works inside `meridian demo` only\n");
        return 1;
    }
    const char *sub = NULL;
    if (what && !strcmp(what, "nodes") && !arg) sub = "status";
    if (what && !strcmp(what, "kill") && arg) sub = "kill";
    if (what && !strcmp(what, "restart") && arg) sub = "restart";
    if (!sub || (arg && strspn(arg, "0123456789") != strlen(arg))) {
        fprintf(stderr, "ERROR: usage: .demo nodes | .demo kill N | .demo restart N\n");
        return 1;
    }
    if (!strcmp(sub, "status")) printf("node pid state rpc http\n");
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) return 1;
    if (pid == 0) {
        setsid();
        execlp("bash", "bash", ctl, sub, dir, arg, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        if (strcmp(sub, "status")) printf("OK\n");
        return 0;
    }
    return 1;
}

/* 1 when the gateway runs Meridian's SQL (its catalog views exist), 0 for
 * the plain-SQLite test executor. */
/* 1 when the gateway has the system view (Meridian's SQL, not a test
 * executor). */
static int has_view(shell *sh, const char *view)
{
    char sql[128];
    meridian_stmt *st = NULL;
    snprintf(sql, sizeof(sql), "SELECT 1 FROM %s LIMIT 0", view);
    int ok = meridian_prepare(sh->db, sql, -1, &st, NULL) == MERIDIAN_OK;
    meridian_finalize(st);
    return ok;
}

static int has_catalog_views(shell *sh)
{
    return has_view(sh, "meridian_tables");
}

/* `.nodes` and `.ranges [TABLE]`: queries of the cluster views. */
static int cluster_command(shell *sh, const char *cmd, const char *table)
{
    if (!has_view(sh, cmd[1] == 'n' ? "meridian_nodes" : "meridian_ranges")) {
        fprintf(stderr, "ERROR: %s needs a Meridian cluster; this gateway serves SQL without one\n",
                cmd);
        return 1;
    }
    if (cmd[1] == 'n')
        return run_sql(sh, "SELECT node_id, address, region, zone, state, ranges, leases, "
                           "CAST(uptime_s AS INTEGER) AS uptime_s, clock_source, clock_epsilon_us "
                           "FROM meridian_nodes "
                           "ORDER BY node_id;");
    if (table && strchr(table, '\'')) {
        fprintf(stderr, "ERROR: bad table name\n");
        return 1;
    }
    char sql[512], where[160] = "";
    if (table) {
        /* A name that is no table is an error, not an empty list. */
        snprintf(sql, sizeof(sql), "SELECT 1 FROM meridian_tables WHERE name = '%s' LIMIT 1",
                 table);
        meridian_stmt *st = NULL;
        int found = meridian_prepare(sh->db, sql, -1, &st, NULL) == MERIDIAN_OK && st &&
                    meridian_step(st) == MERIDIAN_ROW;
        meridian_finalize(st);
        if (!found) {
            fprintf(stderr, "ERROR: no such table: %s\n", table);
            return 1;
        }
        snprintf(where, sizeof(where), "WHERE table_name = '%s' ", table);
    }
    snprintf(sql, sizeof(sql),
             "SELECT range_id, table_name, start_key, end_key, replicas, leader_node, keys, "
             "bytes FROM meridian_ranges %sORDER BY range_id, table_name;",
             where);
    return run_sql(sh, sql);
}

/* Returns 0, 1 on error, or -1 to quit. */
static int dot_command(shell *sh, char *line)
{
    char *args[3] = {0};
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(line, " \t\r\n", &save); t && n < 3;
         t = strtok_r(NULL, " \t\r\n", &save))
        args[n++] = t;
    const char *cmd = args[0];
    if (!strcmp(cmd, ".quit") || !strcmp(cmd, ".exit") || !strcmp(cmd, ".q")) return -1;
    if (!strcmp(cmd, ".help")) {
        fputs(help_text, stdout);
        return 0;
    }
    if (!strcmp(cmd, ".tables")) {
        return run_sql(sh, "SELECT name FROM sqlite_schema WHERE type IN ('table','view') "
                           "AND name NOT LIKE 'sqlite_%' ORDER BY name;");
    }
    if (!strcmp(cmd, ".schema")) {
        char sql[1024];
        if (args[1] && strchr(args[1], '\'')) {
            fprintf(stderr, "ERROR: bad table name\n");
            return 1;
        }
        char where[160] = "";
        if (args[1]) snprintf(where, sizeof(where), "WHERE tbl = '%s'", args[1]);
        if (has_catalog_views(sh)) {
            /* Meridian's SQL: sqlite_schema only shows the virtual tables
             * standing in for the real ones; the catalog has their SQL. */
            snprintf(sql, sizeof(sql),
                     "SELECT sql || ';' AS \"schema\" FROM (SELECT name AS tbl, 0 AS o, name, "
                     "sql FROM meridian_tables UNION ALL SELECT table_name, 1, name, 'CREATE ' "
                     "|| CASE WHEN is_unique THEN 'UNIQUE ' ELSE '' END || 'INDEX ' || name || "
                     "' ON ' || table_name || '(' || columns || ')' FROM meridian_indexes WHERE "
                     "name NOT LIKE 'sqlite_%%') %s ORDER BY tbl, o, name;",
                     where);
        } else {
            snprintf(sql, sizeof(sql),
                     "SELECT sql || ';' AS \"schema\" FROM (SELECT tbl_name AS tbl, type, name, "
                     "sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%%') "
                     "%s ORDER BY tbl, type DESC, name;",
                     where);
        }
        return run_sql(sh, sql);
    }
    if (!strcmp(cmd, ".mode")) {
        if (!args[1]) {
            printf("%s\n", shell_format_name(sh->fmt));
            return 0;
        }
        if (shell_format_parse(args[1], &sh->fmt)) {
            fprintf(stderr, "ERROR: unknown mode '%s' (table, csv, tsv, json, line)\n", args[1]);
            return 1;
        }
        return 0;
    }
    if (!strcmp(cmd, ".timer")) {
        if (args[1] && !strcmp(args[1], "on"))
            sh->timer = 1;
        else if (args[1] && !strcmp(args[1], "off"))
            sh->timer = 0;
        else {
            fprintf(stderr, "ERROR: usage: .timer on|off\n");
            return 1;
        }
        return 0;
    }
    if (!strcmp(cmd, ".read")) {
        if (!args[1]) {
            fprintf(stderr, "ERROR: usage: .read FILE\n");
            return 1;
        }
        set_busy(1);
        int rc = read_file(sh, args[1]);
        set_busy(0);
        return rc;
    }
    if (!strcmp(cmd, ".demo")) return demo_command(args[1], args[2]);
    if (!strcmp(cmd, ".ranges") || !strcmp(cmd, ".nodes"))
        return cluster_command(sh, cmd, cmd[1] == 'r' ? args[1] : NULL);
    fprintf(stderr, "ERROR: unknown command '%s' (try .help)\n", cmd);
    return 1;
}

static void make_prompt(shell *sh, char *buf, size_t cap, int cont)
{
    const char *host = meridian_host(sh->db);
    char head[160];
    int txn = meridian_txn_state(sh->db);
    snprintf(head, sizeof(head), "%s@%s%s", sh->user, host ? host : "(disconnected)",
             txn == MERIDIAN_TXN_OPEN     ? " OPEN"
             : txn == MERIDIAN_TXN_FAILED ? " ERROR"
                                          : "");
    if (!cont) {
        snprintf(buf, cap, "%s> ", head);
    } else {
        size_t w = strlen(head);
        if (w > cap - 4) w = cap - 4;
        memset(buf, ' ', w);
        snprintf(buf + w, cap - w, "-> ");
    }
}

/* Appends line to *buf (growing it). */
static int append(char **buf, size_t *len, size_t *cap, const char *line)
{
    size_t n = strlen(line);
    if (*len + n + 2 > *cap) {
        size_t nc = (*len + n + 2) * 2;
        char *nb = realloc(*buf, nc);
        if (!nb) return -1;
        *buf = nb;
        *cap = nc;
    }
    memcpy(*buf + *len, line, n);
    *len += n;
    (*buf)[(*len)++] = '\n';
    (*buf)[*len] = 0;
    return 0;
}

/* Reads statements from the terminal (libedit) or a stream. Interactive:
 * errors are reported and the shell goes on. Otherwise: stop at the first
 * error. Returns the exit status. */
static int repl(shell *sh, FILE *in)
{
    char *buf = NULL, prompt[200];
    size_t len = 0, cap = 0;
    int status = 0;
    char hist[4096] = "";
    if (sh->interactive) {
        const char *h = getenv("MERIDIAN_HISTORY"), *home = getenv("HOME");
        if (h)
            snprintf(hist, sizeof(hist), "%s", h);
        else if (home)
            snprintf(hist, sizeof(hist), "%s/.meridian_history", home);
        if (hist[0]) read_history(hist);
        printf(
            "# Welcome to the Meridian SQL shell. Type .help for help; statements end with ';'.\n");
    }
    for (;;) {
        char *line = NULL;
        if (sh->interactive) {
            make_prompt(sh, prompt, sizeof(prompt), len > 0);
            got_sigint = 0;
            drain_prompt_pipe();
            line = readline(prompt);
            if (!line && got_sigint) {
                /* Ctrl-C at the prompt drops the statement being typed. */
                printf("^C\n");
                len = 0;
                if (buf) buf[0] = 0;
                continue;
            }
        } else {
            size_t lcap = 0;
            ssize_t n = getline(&line, &lcap, in);
            if (n < 0) {
                free(line);
                line = NULL;
            } else if (n && line[n - 1] == '\n') {
                line[n - 1] = 0;
            }
        }
        if (!line) break;
        const char *s = line;
        while (*s == ' ' || *s == '\t') s++;
        if (!len && *s == '.') {
            if (sh->interactive) add_history(line);
            int rc = dot_command(sh, line);
            free(line);
            if (rc < 0) break;
            if (rc && !sh->interactive) {
                status = 1;
                break;
            }
            continue;
        }
        if ((!len && !*s) || append(&buf, &len, &cap, line)) {
            free(line);
            continue;
        }
        free(line);
        if (!sqlite3_complete(buf)) continue;
        if (sh->interactive) {
            buf[len - 1] = 0; /* history without the trailing newline */
            /* The history file must not keep a password in clear. */
            if (!strcasestr(buf, "PASSWORD")) add_history(buf);
            buf[len - 1] = '\n';
        }
        int rc = run_sql(sh, buf);
        len = 0;
        buf[0] = 0;
        if (rc && !sh->interactive) {
            status = 1;
            break;
        }
    }
    if (!status && len && !sh->interactive) {
        /* A last statement without ';' still runs, as in sqlite3. */
        status = run_sql(sh, buf);
    }
    if (sh->interactive) {
        printf("\n");
        if (hist[0]) write_history(hist);
    }
    free(buf);
    return status;
}

/* Appends " key='value'" with conninfo's quoting; returns bytes written. */
static int quote_opt(char *out, size_t cap, const char *key, const char *v)
{
    size_t o = (size_t)snprintf(out, cap, " %s='", key);
    for (; *v && o + 3 < cap; v++) {
        if (*v == '\'' || *v == '\\') out[o++] = '\\';
        out[o++] = *v;
    }
    if (o + 2 > cap) return (int)cap;
    out[o++] = '\'';
    out[o] = 0;
    return (int)o;
}

/* Reads a password from the terminal without echo. */
static int read_password(const char *user, char *pw, size_t cap)
{
    FILE *tty = fopen("/dev/tty", "r+");
    if (!tty) return -1;
    struct termios old, noecho;
    int fd = fileno(tty), have = tcgetattr(fd, &old) == 0;
    fprintf(tty, "Password for user %s: ", user);
    fflush(tty);
    if (have) {
        noecho = old;
        noecho.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fd, TCSAFLUSH, &noecho);
    }
    int rc = fgets(pw, (int)cap, tty) ? 0 : -1;
    if (have) tcsetattr(fd, TCSAFLUSH, &old);
    fprintf(tty, "\n");
    fclose(tty);
    if (!rc) pw[strcspn(pw, "\r\n")] = 0;
    return rc;
}

int shell_main(int argc, char **argv)
{
    const char *hosts = "127.0.0.1:26257", *exec = NULL, *format = NULL, *user = "root";
    const char *certs_dir = NULL;
    int64_t timeout_ns = 5 * MTIME_S, staleness_ns = 0;
    int read_only = 0, insecure = 0, ask_password = 0;
    const cli_flag flags[] = {
        {"host", CLI_STR, &hosts, "HOST:PORT[,...]", "gateways to try, in order"},
        {"execute", CLI_STR, &exec, "SQL", "run SQL and exit (also -e)"},
        {"format", CLI_STR, &format, "FMT", "table|csv|tsv|json|line (default table)"},
        {"user", CLI_STR, &user, "NAME", "session user (default root)"},
        {"connect-timeout", CLI_DURATION, &timeout_ns, NULL, "per host (default 5s)"},
        {"read-only", CLI_BOOL, &read_only, NULL, "a read-only session"},
        {"max-staleness", CLI_DURATION, &staleness_ns, NULL,
         "read-only statements read at most this stale, at the nearest replica"},
        {"certs-dir", CLI_STR, &certs_dir, "DIR", "TLS: ca.crt, client.USER.crt/.key if any"},
        {"password", CLI_BOOL, &ask_password, NULL,
         "log in with a password (MERIDIAN_PASSWORD, else asked for)"},
        {"insecure", CLI_BOOL, &insecure, NULL, "an --insecure cluster: no TLS, no login"},
        {0},
    };
    /* Our flag parser speaks --long only; -e is too familiar to refuse. */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-e")) argv[i] = (char *)"--execute";
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "[--host H[,H2...]] [-e SQL] [--format F]", flags, argc, argv,
                       &npos, &done);
    if (done) return rc;
    if (npos) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[1]);
        return CLI_EXIT_USAGE;
    }
    shell sh = {.fmt = SHELL_TABLE};
    if (format && shell_format_parse(format, &sh.fmt)) {
        fprintf(stderr, "%s: unknown format '%s' (table, csv, tsv, json, line)\n", argv[0], format);
        return CLI_EXIT_USAGE;
    }
    snprintf(sh.user, sizeof(sh.user), "%s", user);
    char conninfo[2048], d[32];
    snprintf(d, sizeof(d), "%lldms", (long long)(timeout_ns / MTIME_MS));
    int n = snprintf(conninfo, sizeof(conninfo),
                     "hosts=%s user=%s connect_timeout=%s read_only=%s insecure=%s", hosts, user, d,
                     read_only ? "on" : "off", insecure ? "on" : "off");
    if (staleness_ns > 0 && (size_t)n < sizeof(conninfo))
        n += snprintf(conninfo + n, sizeof(conninfo) - (size_t)n, " max_staleness=%lldms",
                      (long long)(staleness_ns / MTIME_MS));
    if (certs_dir)
        n += quote_opt(conninfo + n, sizeof(conninfo) - (size_t)n, "certs_dir", certs_dir);
    if (ask_password && !insecure && !getenv("MERIDIAN_PASSWORD")) {
        char pw[256];
        if (read_password(user, pw, sizeof(pw))) {
            fprintf(stderr, "%s: cannot read a password (no terminal?): set MERIDIAN_PASSWORD\n",
                    argv[0]);
            return 1;
        }
        n += quote_opt(conninfo + n, sizeof(conninfo) - (size_t)n, "password", pw);
        memset(pw, 0, sizeof(pw));
    }
    if ((size_t)n >= sizeof(conninfo)) {
        fprintf(stderr, "%s: arguments too long\n", argv[0]);
        return CLI_EXIT_USAGE;
    }
    int orc = meridian_open(conninfo, &sh.db);
    memset(conninfo, 0, sizeof(conninfo)); /* may hold the password */
    if (orc) {
        fprintf(stderr, "ERROR: %s\n", meridian_errmsg(sh.db));
        meridian_close(sh.db);
        return 1;
    }
    sh.interactive = !exec && isatty(STDIN_FILENO);
    sh.timer = sh.interactive;

    pthread_t th;
    int have_thread = 0;
    if (sh.interactive && pipe(promptpipe_fds) == 0) {
        fcntl(promptpipe_fds[0], F_SETFL, O_NONBLOCK);
        fcntl(promptpipe_fds[1], F_SETFL, O_NONBLOCK);
        rl_getc_function = shell_getc;
    }
    if (pipe(sigpipe_fds) == 0) {
        sig_db = sh.db;
        have_thread = pthread_create(&th, NULL, interrupter, NULL) == 0;
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
    }
    if (exec)
        rc = run_sql(&sh, exec);
    else
        rc = repl(&sh, stdin);

    signal(SIGINT, SIG_DFL);
    if (have_thread) {
        char z = 0;
        if (write(sigpipe_fds[1], &z, 1) == 1) pthread_join(th, NULL);
    }
    sig_db = NULL;
    meridian_close(sh.db);
    return rc;
}
