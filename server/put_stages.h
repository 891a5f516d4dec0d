/* Per-stage latency histograms of the durable put path, for profiling
 * (`MERIDIAN_PUT_STAGES=N` in a node's environment: every N puts the node
 * logs one summary line per stage). Off by default: a disabled stage_now()
 * returns 0 and stage_record() returns at once, so the path pays one branch. */
#ifndef MERIDIAN_SERVER_PUT_STAGES_H
#define MERIDIAN_SERVER_PUT_STAGES_H

#include <stdint.h>

typedef enum {
    STAGE_CHOSEN,  /* proposal -> chosen (quorum of durable acceptances) */
    STAGE_APPLY,   /* one apply transaction into the range store */
    STAGE_CWAIT,   /* applied -> commit-wait over */
    STAGE_TOTAL,   /* proposal -> client answered */
    STAGE_PERSIST, /* log store submit -> durable (every batch, leader or not) */
    STAGE_N
} put_stage;

/* Monotonic ns when enabled, else 0 (callers store it as is). */
int64_t stage_now(void);
/* Records now - since when enabled and since != 0; counts puts on TOTAL. */
void stage_record(put_stage s, int64_t since);

#endif
