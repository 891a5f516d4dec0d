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
    diff_ctx d;
    if (diff_open(&d)) return 1;
    int failures = diff_run_script(&d, path);
    *nstmt += d.statements;
    diff_close(&d);
    return failures < 0 ? 1 : failures;
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
