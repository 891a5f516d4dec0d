/* Recording a history while a workload runs: client threads hand each
 * invocation and completion to a recorder, which appends one line per op to
 * the history file (jp_history.h's format) with a single write(2) under a
 * lock. Lines reach the kernel as they happen, so a harness that crashes
 * keeps the history it had. */
#ifndef MERIDIAN_TESTS_JEPSEN_JP_RECORDER_H
#define MERIDIAN_TESTS_JEPSEN_JP_RECORDER_H

#include "common/err.h"
#include "tests/jepsen/jp_history.h"

typedef struct jp_recorder jp_recorder;

/* Creates (or truncates) path and writes the header line. */
int jp_recorder_open(const char *path, jp_recorder **out, merr *e);
/* Appends op as one line; thread-safe. op->line is ignored. */
int jp_recorder_add(jp_recorder *r, const jp_op *op, merr *e);
/* Appends "# text" as one comment line (newlines in text become spaces):
 * how a harness puts events such as faults into the history; the parser
 * skips them. Thread-safe. */
int jp_recorder_comment(jp_recorder *r, const char *text, merr *e);
/* fsyncs and closes; r is freed even on error. NULL is fine. */
int jp_recorder_close(jp_recorder *r, merr *e);

#endif
