/* The picture of a `meridian tpcc run`: throughput (tpmC) and latency
 * (p50/p90/p99) per second as a self-contained SVG, written by hand so the
 * tool needs no plotting package on the machine that ran the benchmark. */
#include "client/tpcc_int.h"

#include <math.h>
#include <stdio.h>

/* A "nice" axis maximum >= v: 1, 2 or 5 times a power of ten. */
static double nice_max(double v)
{
    if (v <= 0) return 1;
    double p = pow(10, floor(log10(v)));
    double m = v / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

/* One panel: series s[k][0..n-1], k < ns, in colours col[k], at y offset top. */
static void panel(FILE *f, int top, const char *title, const char *unit, int n, int ns,
                  const double *const *s, const char *const *name, const char *const *col)
{
    const int x0 = 70, w = 620, h = 200;
    double max = 0;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < n; i++)
            if (s[k][i] > max) max = s[k][i];
    max = nice_max(max);
    fprintf(f, "<text x='%d' y='%d' font-weight='bold'>%s</text>\n", x0, top - 8, title);
    fprintf(f, "<rect x='%d' y='%d' width='%d' height='%d' fill='none' stroke='#888'/>\n", x0, top,
            w, h);
    for (int g = 0; g <= 4; g++) {
        int y = top + h - g * h / 4;
        fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%d' stroke='#ddd'/>", x0, y, x0 + w, y);
        fprintf(f, "<text x='%d' y='%d' text-anchor='end' font-size='11'>%g%s</text>\n", x0 - 4,
                y + 4, max * g / 4, g == 4 ? unit : "");
    }
    for (int k = 0; k < ns; k++) {
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.5' points='", col[k]);
        for (int i = 0; i < n; i++)
            fprintf(f, "%.1f,%.1f ", x0 + (n > 1 ? (double)i * w / (n - 1) : 0),
                    top + h - s[k][i] / max * h);
        fprintf(f, "'/>\n<text x='%d' y='%d' fill='%s' font-size='12'>%s</text>\n", x0 + w + 8,
                top + 14 + 16 * k, col[k], name[k]);
    }
    fprintf(f, "<text x='%d' y='%d' font-size='11'>1 s</text>", x0, top + h + 14);
    fprintf(f, "<text x='%d' y='%d' font-size='11' text-anchor='end'>%d s</text>\n", x0 + w,
            top + h + 14, n);
}

int tpcc_svg_write(const char *path, const char *title, int n, const double *tpmc,
                   const double *p50, const double *p90, const double *p99)
{
    FILE *f = fopen(path, "w");
    if (!f) return MERR_IO;
    fprintf(f,
            "<svg xmlns='http://www.w3.org/2000/svg' width='800' height='560' "
            "font-family='sans-serif' font-size='13'>\n<rect width='800' height='560' "
            "fill='white'/>\n<text x='70' y='24' font-size='15'>%s</text>\n",
            title);
    const double *thr[1] = {tpmc};
    const char *const thr_name[1] = {"tpmC"};
    const char *const thr_col[1] = {"#1f77b4"};
    panel(f, 60, "throughput (New-Order per minute, each second)", "", n, 1, thr, thr_name,
          thr_col);
    const double *lat[3] = {p50, p90, p99};
    const char *const lat_name[3] = {"p50", "p90", "p99"};
    const char *const lat_col[3] = {"#2ca02c", "#ff7f0e", "#d62728"};
    panel(f, 320, "latency of all transactions (ms, each second)", " ms", n, 3, lat, lat_name,
          lat_col);
    fprintf(f, "</svg>\n");
    return fclose(f) ? MERR_IO : 0;
}
