/* Small SVG line charts for benchmark results that people would rather see
 * than read (throughput and latency over time). No dependencies: the file is
 * plain SVG text any browser shows. */
#ifndef MERIDIAN_COMMON_SVGPLOT_H
#define MERIDIAN_COMMON_SVGPLOT_H

#include <stddef.h>

#include "common/err.h"

#define SVGPLOT_MAX_SERIES 6

typedef struct svgplot_series {
    const char *name;
    const double *y; /* n values, one per x */
    int right_axis;  /* plotted against the right-hand axis */
} svgplot_series;

typedef struct svgplot {
    const char *title;
    const char *x_label, *y_label, *y2_label;
    const double *x; /* n values, increasing */
    size_t n;
    svgplot_series series[SVGPLOT_MAX_SERIES];
    size_t nseries;
} svgplot;

/* Writes the chart to path (atomically). 0 or a MERR code with a message. */
int svgplot_write(const svgplot *p, const char *path, merr *e);

#endif
