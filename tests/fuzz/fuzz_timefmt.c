/* libFuzzer target: the clock service's text parsers. Mode 0 (first byte
 * even): hlc_parse on the rest as a C string, and what parses must format
 * back to a string that parses to the same timestamp; the first 8 bytes as a
 * raw timestamp must also survive hlc_format -> hlc_parse. Mode 1:
 * tt_chrony_parse_tracking on the rest as `chronyc -c tracking` output.
 * Seeds: tests/fuzz/corpus/fuzz_timefmt/. */
#include "timesvc/hlc.h"
#include "timesvc/tt_uv.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void hlc_roundtrip(hlc_ts t)
{
    char buf[HLC_FORMAT_MAX];
    int n = hlc_format(t, buf, sizeof buf);
    if (n < 0 || (size_t)n >= sizeof buf) abort();
    hlc_ts back = 0;
    merr e = {0};
    if (hlc_parse(buf, &back, &e) != 0 || back != t) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0] & 1;
    data++;
    size--;
    merr e = {0};
    if (mode == 0) {
        char *s = malloc(size + 1);
        if (!s) return 0;
        memcpy(s, data, size);
        s[size] = 0;
        hlc_ts t = 0;
        int rc = hlc_parse(s, &t, &e);
        if (rc == 0)
            hlc_roundtrip(t);
        else if (rc != MERR_INVALID || !e.msg[0])
            abort();
        free(s);
        if (size >= HLC_ENCODED_LEN) {
            hlc_ts raw;
            if (hlc_decode_buf(data, HLC_ENCODED_LEN, &raw, NULL)) abort();
            hlc_roundtrip(raw);
            /* a buffer too small is refused, not overrun */
            char tiny[8];
            if (hlc_format(raw, tiny, (size_t)(data[0] % sizeof tiny)) != MERR_TOOBIG) abort();
        }
    } else {
        tt_sample smp;
        int rc = tt_chrony_parse_tracking((const char *)data, size, &smp, &e);
        if (rc == 0) {
            if (smp.stratum < 0 || smp.stratum > 16) abort();
            if (smp.root_delay_ns < 0 || smp.root_dispersion_ns < 0) abort();
            if (strnlen(smp.ref_name, sizeof smp.ref_name) == sizeof smp.ref_name) abort();
        } else if (rc != MERR_PROTOCOL || !e.msg[0]) {
            abort();
        }
    }
    return 0;
}
