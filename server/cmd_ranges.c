/* `meridian debug split --host H --key KEY`: splits the range holding KEY so
 * that KEY starts a new range (docs/ranges.md). `meridian debug merge --host H
 * --key KEY` merges the range holding KEY with its right neighbour. The request goes to the
 * range's leaseholder (NOT_LEADER hints are followed) and returns once the
 * split is applied there. Splitting at a key that already starts a range
 * answers with that range and its left neighbour, so a retry is harmless. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/mtime.h"
#include "proto/range.pb-c.h"
#include "server/commands.h"
#include "server/kv_cli.h"

static Meridian__Kv__Error *err_split(ProtobufCMessage *m)
{
    return ((Meridian__Range__SplitResponse *)m)->error;
}

static void print_desc(const char *label, const Meridian__Meta__RangeDescriptor *d)
{
    if (!d) return;
    printf("%s range %" PRIu64 " generation %" PRIu64 " [", label, d->range_id, d->generation);
    for (size_t i = 0; i < d->start_key.len; i++) {
        uint8_t ch = d->start_key.data[i];
        printf(ch >= 0x20 && ch < 0x7f && ch != '\\' ? "%c" : "\\x%02x", ch);
    }
    printf(", ");
    if (!d->end_key.len) printf("+inf");
    for (size_t i = 0; i < d->end_key.len; i++) {
        uint8_t ch = d->end_key.data[i];
        printf(ch >= 0x20 && ch < 0x7f && ch != '\\' ? "%c" : "\\x%02x", ch);
    }
    printf(")\n");
}

static Meridian__Kv__Error *err_merge(ProtobufCMessage *m)
{
    return ((Meridian__Range__MergeResponse *)m)->error;
}

/* One command: both take --host and --key and print descriptors. */
static int range_cmd(int argc, char **argv, int merge)
{
    const char *host = NULL, *certs_dir = NULL, *key_s = NULL, *rstart_s = NULL;
    int64_t timeout = 30 * MTIME_S, rrange = 0;
    int insecure = 0;
    cli_flag flags[] = {
        {"host", CLI_STR, &host, "HOST:PORT[,...]",
         "nodes of the cluster, tried in turn (required)"},
        {"key", CLI_STR, &key_s, "KEY",
         merge ? "a key of the left range (text or 0x-hex)"
               : "the first key of the new range (text or 0x-hex)"},
        {"certs-dir", CLI_STR, &certs_dir, "DIR", "TLS: ca.crt, client.root.crt, client.root.key"},
        {"insecure", CLI_BOOL, &insecure, NULL, "no TLS (the cluster runs --insecure)"},
        {"timeout", CLI_DURATION, &timeout, NULL, "give up after this long (default 30s)"},
        {"right-range", CLI_INT, &rrange, "N",
         "merge: only with this right neighbour (with --right-start; a merge that already "
         "happened answers success)"},
        {"right-start", CLI_STR, &rstart_s, "KEY", "merge: the right neighbour's first key"},
        {0},
    };
    if (!merge) flags[5] = (cli_flag){0};
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "--host HOST:PORT --key KEY", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (!host || !key_s || npos || !certs_dir == !insecure) {
        fprintf(stderr, "%s: need --host, --key, and --certs-dir DIR or --insecure\n", argv[0]);
        return CLI_EXIT_USAGE;
    }
    merr e = {0};
    uint8_t *key = NULL, *rstart = NULL;
    size_t klen = 0, rslen = 0;
    if (kv_parse_key(key_s, &key, &klen, &e) ||
        (rstart_s && kv_parse_key(rstart_s, &rstart, &rslen, &e))) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        free(key);
        return CLI_EXIT_USAGE;
    }
    if (!rrange != !rstart_s || rrange < 0) {
        fprintf(stderr, "%s: give --right-range N and --right-start KEY together\n", argv[0]);
        free(key);
        free(rstart);
        return CLI_EXIT_USAGE;
    }
    kv_client c;
    ProtobufCMessage *out = NULL;
    rc = kv_client_open(&c, host, certs_dir, timeout, &e);
    /* A split waits for a range id from range 1 and for its own apply:
     * give one attempt longer than a lease takes to move. */
    c.call_timeout_ns = 15 * MTIME_S;
    if (!rc && merge) {
        /* A dry run names the two ranges; the merge then names them too, so
         * a resend (an answer lost, a timeout) finds them merged and says so
         * instead of merging the next neighbour as well. */
        Meridian__Range__MergeRequest q = MERIDIAN__RANGE__MERGE_REQUEST__INIT;
        q.key = (ProtobufCBinaryData){klen, key};
        if (!rrange) {
            q.dry_run = 1;
            rc = kv_client_call(&c, "range.Merge", &q.base,
                                &meridian__range__merge_response__descriptor, err_merge, &out, &e);
            Meridian__Range__MergeResponse *dry = rc ? NULL : (Meridian__Range__MergeResponse *)out;
            if (dry && dry->right) {
                rrange = (int64_t)dry->right->range_id;
                rslen = dry->right->start_key.len;
                rstart = malloc(rslen + 1);
                if (rstart)
                    memcpy(rstart, dry->right->start_key.data, rslen);
                else
                    rc = merr_set(&e, MERR_NOMEM, "out of memory");
            }
            if (out) protobuf_c_message_free_unpacked(out, NULL);
            out = NULL;
            q.dry_run = 0;
        }
        q.right_range_id = (uint64_t)rrange;
        q.right_start = (ProtobufCBinaryData){rslen, rstart};
        if (!rc)
            rc = kv_client_call(&c, "range.Merge", &q.base,
                                &meridian__range__merge_response__descriptor, err_merge, &out, &e);
        if (!rc) print_desc("merged:", ((Meridian__Range__MergeResponse *)out)->merged);
    } else if (!rc) {
        Meridian__Range__SplitRequest q = MERIDIAN__RANGE__SPLIT_REQUEST__INIT;
        q.key = (ProtobufCBinaryData){klen, key};
        rc = kv_client_call(&c, "range.Split", &q.base,
                            &meridian__range__split_response__descriptor, err_split, &out, &e);
    }
    if (!rc && !merge) {
        Meridian__Range__SplitResponse *r = (Meridian__Range__SplitResponse *)out;
        print_desc("left: ", r->left);
        print_desc("right:", r->right);
    }
    if (!rc) {
        protobuf_c_message_free_unpacked(out, NULL);
    } else {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg[0] ? e.msg : merr_str(rc));
    }
    kv_client_close(&c);
    free(key);
    free(rstart);
    return rc ? 1 : 0;
}

int cmd_debug_split(int argc, char **argv)
{
    return range_cmd(argc, argv, 0);
}

int cmd_debug_merge(int argc, char **argv)
{
    return range_cmd(argc, argv, 1);
}
