/* libFuzzer target: the Jepsen-style suite's history parser
 * (tests/jepsen/jp_history.h) and, on whatever parses, every checker with
 * small search bounds. A parsed history must write back out as text that
 * parses to as many ops; checkers must return a verdict on any well-formed
 * history without crashing. Seeds: tests/fuzz/corpus/fuzz_jepsen_history/. */
#include "tests/jepsen/jp_check.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192) return 0; /* checkers are polynomial; keep execs fast */
    jp_history h;
    jp_history_init(&h);
    merr e = {0};
    int rc = jp_history_parse((const char *)data, size, &h, &e);
    if (rc) {
        if (rc != MERR_INVALID && rc != MERR_NOMEM) abort();
        if (h.n != 0) abort(); /* "h is left empty" */
        jp_history_free(&h);
        return 0;
    }
    /* write -> parse round trip */
    char *text = NULL;
    size_t tlen = 0;
    FILE *f = open_memstream(&text, &tlen);
    if (!f) abort();
    if (jp_history_write(&h, f, &e)) abort();
    fclose(f);
    jp_history h2;
    jp_history_init(&h2);
    if (jp_history_parse(text, tlen, &h2, &e)) abort();
    if (h2.n != h.n || h2.ncalls != h.ncalls) abort();
    jp_history_free(&h2);
    free(text);

    jp_report r;
    jp_register_opts ro = {.max_steps = 20000, .max_cache_bytes = 1 << 20, .max_ops_per_key = 200};
    jp_elle_opts eo = {.process_order = (int)(size & 1), .max_cycle_starts = 16};
    jp_bank_opts bo = {.has_total = 0, .negative_ok = (int)(size & 2)};
    jp_report_init(&r);
    (void)jp_check_register(&h, &ro, &r, NULL);
    jp_report_free(&r);
    jp_report_init(&r);
    (void)jp_check_list_append(&h, &eo, &r, NULL);
    jp_report_free(&r);
    jp_report_init(&r);
    (void)jp_check_rw_register(&h, &eo, &r, NULL);
    jp_report_free(&r);
    jp_report_init(&r);
    (void)jp_check_bank(&h, &bo, &r, NULL);
    jp_report_free(&r);
    jp_report_init(&r);
    (void)jp_check_set(&h, &r, NULL);
    jp_report_free(&r);
    jp_history_free(&h);
    return 0;
}
