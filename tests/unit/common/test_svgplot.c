/* SVG plots: a well-formed file with one polyline per series and escaped text. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/svgplot.h"

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p++) n++;
    return n;
}

static void test_plot(void **state)
{
    (void)state;
    double x[4] = {1, 2, 3, 4}, a[4] = {10, 20, 15, 30}, b[4] = {0.5, NAN, 2.5, 1};
    svgplot p = {.title = "ops <&> latency",
                 .x_label = "s",
                 .y_label = "ops/s",
                 .y2_label = "ms",
                 .x = x,
                 .n = 4};
    p.series[0] = (svgplot_series){"ops/s", a, 0};
    p.series[1] = (svgplot_series){"p99", b, 1};
    p.nseries = 2;
    char dir[] = "/tmp/meridian-svg-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof(path), "%s/p.svg", dir);
    merr e = {0};
    assert_int_equal(svgplot_write(&p, path, &e), 0);
    mbuf m = MBUF_INIT;
    assert_int_equal(mfs_read_all(path, 1 << 20, &m, &e), 0);
    mbuf_append_u8(&m, 0);
    const char *s = (const char *)m.data;
    assert_non_null(strstr(s, "<svg"));
    assert_non_null(strstr(s, "</svg>"));
    assert_int_equal(count(s, "<polyline"), 2);
    assert_non_null(strstr(s, "ops &lt;&amp;&gt; latency")); /* escaped title */
    assert_null(strstr(s, "nan"));                           /* NaN points skipped */
    /* the axis tops are "nice": 30 -> 50, 2.5 -> 5 */
    assert_non_null(strstr(s, ">50</text>"));
    assert_non_null(strstr(s, ">5</text>"));
    mbuf_free(&m);
    unlink(path);
    rmdir(dir);
    svgplot empty = {.title = "x", .x = x, .n = 0};
    assert_int_equal(svgplot_write(&empty, path, &e), MERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_plot)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
