/* SQL conformance: every script in tests/sql/scripts runs statement by
 * statement against SQLite and against Meridian; results (rows, types, error
 * messages) must be identical. A statement ends at a line ending in ';';
 * lines starting with "--" are comments. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diff.h"

static const char *g_dir;

static int run_file(const char *path, size_t *nstmt)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    char *stmt = NULL;
    size_t len = 0, lineno = 0, start = 0;
    int failures = 0;
    diff_ctx d;
    if (!f) return 1;
    if (diff_open(&d)) {
        fclose(f);
        return 1;
    }
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        if (strncmp(line, "--", 2) == 0) continue;
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == ' ' || line[n - 1] == '\r')) n--;
        if (!n && !len) continue;
        if (!len) start = lineno;
        stmt = realloc(stmt, len + n + 2);
        memcpy(stmt + len, line, n);
        len += n;
        stmt[len++] = '\n';
        stmt[len] = 0;
        if (n && line[n - 1] == ';') {
            snprintf(d.where, sizeof(d.where), "%s:%zu", path, start);
            if (diff_run(&d, stmt)) failures++;
            len = 0;
        }
    }
    *nstmt += d.statements;
    free(stmt);
    fclose(f);
    diff_close(&d);
    return failures;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_scripts(void **state)
{
    (void)state;
    DIR *dir = opendir(g_dir);
    assert_non_null(dir);
    char *names[256];
    size_t nn = 0, nstmt = 0;
    struct dirent *de;
    while ((de = readdir(dir)) && nn < 256) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".sql") == 0) names[nn++] = strdup(de->d_name);
    }
    closedir(dir);
    qsort(names, nn, sizeof(char *), cmp_names);
    assert_true(nn > 0);
    int failures = 0;
    for (size_t i = 0; i < nn; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", g_dir, names[i]);
        int f = run_file(path, &nstmt);
        if (f) print_message("%s: %d mismatches\n", names[i], f);
        failures += f;
        free(names[i]);
    }
    print_message("%zu scripts, %zu statements compared\n", nn, nstmt);
    assert_int_equal(failures, 0);
}

int main(int argc, char **argv)
{
    g_dir = argc > 1 ? argv[1] : "scripts";
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_scripts)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
