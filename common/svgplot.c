/* SVG line charts (see svgplot.h). */
#include "common/svgplot.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/buf.h"
#include "common/fsutil.h"

#define W  900
#define H  420
#define ML 70 /* margins: left, right, top, bottom */
#define MR 70
#define MT 40
#define MB 50

static const char *colours[SVGPLOT_MAX_SERIES] = {"#1f77b4", "#d62728", "#2ca02c",
                                                  "#ff7f0e", "#9467bd", "#8c564b"};

/* A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten. */
static double nice_max(double v)
{
    if (v <= 0 || !isfinite(v)) return 1;
    double p = pow(10, floor(log10(v)));
    for (int i = 0; i < 3; i++) {
        double m = (double[]){1, 2, 5}[i] * p;
        if (v <= m) return m;
    }
    return 10 * p;
}

static void esc(mbuf *b, const char *s)
{
    for (; s && *s; s++) {
        if (*s == '<')
            mbuf_append_str(b, "&lt;");
        else if (*s == '>')
            mbuf_append_str(b, "&gt;");
        else if (*s == '&')
            mbuf_append_str(b, "&amp;");
        else
            mbuf_append(b, s, 1);
    }
}

int svgplot_write(const svgplot *p, const char *path, merr *e)
{
    if (p->n == 0 || p->nseries == 0) return merr_set(e, MERR_INVALID, "plot: nothing to draw");
    double xmin = p->x[0], xmax = p->x[p->n - 1];
    if (xmax <= xmin) xmax = xmin + 1;
    double ymax[2] = {0, 0};
    for (size_t s = 0; s < p->nseries; s++)
        for (size_t i = 0; i < p->n; i++)
            if (isfinite(p->series[s].y[i]) && p->series[s].y[i] > ymax[p->series[s].right_axis])
                ymax[p->series[s].right_axis] = p->series[s].y[i];
    ymax[0] = nice_max(ymax[0]);
    ymax[1] = nice_max(ymax[1]);
    double pw = W - ML - MR, ph = H - MT - MB;
    mbuf b = MBUF_INIT;
    mbuf_printf(&b,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                "font-family=\"sans-serif\" font-size=\"12\">\n"
                "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                "<text x=\"%d\" y=\"22\" font-size=\"15\">",
                W, H, ML);
    esc(&b, p->title);
    mbuf_printf(&b, "</text>\n");
    /* grid and tick labels: 5 steps on each axis */
    for (int t = 0; t <= 5; t++) {
        double y = MT + ph - ph * t / 5.0;
        mbuf_printf(&b,
                    "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n"
                    "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                    ML, y, W - MR, y, ML - 6, y + 4, ymax[0] * t / 5.0);
        if (p->y2_label)
            mbuf_printf(&b, "<text x=\"%d\" y=\"%.1f\">%g</text>\n", W - MR + 6, y + 4,
                        ymax[1] * t / 5.0);
        double x = ML + pw * t / 5.0;
        mbuf_printf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%.3g</text>\n", x,
                    H - MB + 18, xmin + (xmax - xmin) * t / 5.0);
    }
    mbuf_printf(&b,
                "<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" "
                "stroke=\"#333\"/>\n<text x=\"%.0f\" y=\"%d\" text-anchor=\"middle\">",
                ML, MT, pw, ph, ML + pw / 2, H - 12);
    esc(&b, p->x_label);
    mbuf_printf(&b,
                "</text>\n<text x=\"16\" y=\"%.0f\" transform=\"rotate(-90 16 %.0f)\" "
                "text-anchor=\"middle\">",
                MT + ph / 2, MT + ph / 2);
    esc(&b, p->y_label);
    mbuf_printf(&b, "</text>\n");
    if (p->y2_label) {
        mbuf_printf(&b,
                    "<text x=\"%d\" y=\"%.0f\" transform=\"rotate(90 %d %.0f)\" "
                    "text-anchor=\"middle\">",
                    W - 16, MT + ph / 2, W - 16, MT + ph / 2);
        esc(&b, p->y2_label);
        mbuf_printf(&b, "</text>\n");
    }
    for (size_t s = 0; s < p->nseries; s++) {
        const svgplot_series *sr = &p->series[s];
        double ym = ymax[sr->right_axis];
        mbuf_printf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" points=\"",
                    colours[s]);
        for (size_t i = 0; i < p->n; i++) {
            if (!isfinite(sr->y[i])) continue;
            double x = ML + pw * (p->x[i] - xmin) / (xmax - xmin);
            double y = MT + ph - ph * (sr->y[i] / ym);
            mbuf_printf(&b, "%.1f,%.1f ", x, y);
        }
        mbuf_printf(&b,
                    "\"/>\n<rect x=\"%d\" y=\"%zu\" width=\"12\" height=\"3\" fill=\"%s\"/>"
                    "<text x=\"%d\" y=\"%zu\">",
                    ML + 10, (size_t)MT + 12 + 16 * s, colours[s], ML + 28,
                    (size_t)MT + 16 + 16 * s);
        esc(&b, sr->name);
        if (p->y2_label) mbuf_printf(&b, sr->right_axis ? " (right)" : " (left)");
        mbuf_printf(&b, "</text>\n");
    }
    mbuf_printf(&b, "</svg>\n");
    int rc = b.data ? mfs_write_atomic(path, b.data, b.len, e)
                    : merr_set(e, MERR_NOMEM, "out of memory");
    mbuf_free(&b);
    return rc;
}
