/* Stage histograms of the put path (see put_stages.h). Loop thread only. */
#include "server/put_stages.h"

#include <stdio.h>
#include <stdlib.h>

#include "common/histogram.h"
#include "common/log.h"
#include "common/mtime.h"

static int64_t every = -1; /* -1: not read yet; 0: off */
static mhist *hists;

static const char *const names[STAGE_N] = {"chosen", "apply", "cwait", "total", "persist"};

static int on(void)
{
    if (every < 0) {
        const char *v = getenv("MERIDIAN_PUT_STAGES");
        every = v ? atoll(v) : 0;
        if (every > 0) hists = calloc(STAGE_N, sizeof(*hists));
        if (!hists) every = 0;
        for (int i = 0; every > 0 && i < STAGE_N; i++) mhist_init(&hists[i]);
    }
    return every > 0;
}

int64_t stage_now(void)
{
    return on() ? mtime_mono_ns() : 0;
}

void stage_record(put_stage s, int64_t since)
{
    if (!since || !on()) return;
    mhist_record(&hists[s], (uint64_t)(mtime_mono_ns() - since));
    if (s != STAGE_TOTAL || mhist_count(&hists[s]) < (uint64_t)every) return;
    for (int i = 0; i < STAGE_N; i++) {
        char line[256];
        mhist_summary(&hists[i], line, sizeof(line));
        MLOG_I("stages", "put path", "stage=%s %s", names[i], line);
        mhist_reset(&hists[i]);
    }
}
