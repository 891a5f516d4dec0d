/* One-shot transactional reads and writes for follower_reads_test.sh, through
 * txn_client (server/txn_client.h):
 *
 *   reads_client put HOSTS KEY VALUE           a read-write commit
 *   reads_client get HOSTS MODE ARG KEY [REV]  a read-only get; MODE strong,
 *       exact, bounded (ARG: staleness in µs) or at (ARG: an HLC ts);
 *       prints "found VALUE ts=TS" or "absent ts=TS"
 *   reads_client scan HOSTS MODE ARG LO HI     as get, every row in [LO, HI)
 *       as "K=V", then "ts=TS"
 *   reads_client gets HOSTS KEY MODE ARG [MODE ARG...]  one client, one
 *       read-only get per MODE ARG in turn; prints "HOST found VALUE" or
 *       "HOST absent" for each, HOST being where the client was after it
 *
 * MERIDIAN_TEST_TIMEOUT_MS bounds each call (default 10 s). Exit 0 on
 * success, 2 when the read or write failed (the error on stderr). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mtime.h"
#include "server/txn_client.h"
#include "sql/kv.h"

static int mode_of(const char *s)
{
    if (!strcmp(s, "strong")) return TXN_CLIENT_READ_STRONG;
    if (!strcmp(s, "exact")) return TXN_CLIENT_READ_EXACT;
    if (!strcmp(s, "bounded")) return TXN_CLIENT_READ_BOUNDED;
    if (!strcmp(s, "at")) return TXN_CLIENT_READ_AT;
    return -1;
}

static int fail(const char *what, const merr *e)
{
    fprintf(stderr, "%s: %s\n", what, e->msg);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: reads_client put|get|scan HOSTS ...\n");
        return 1;
    }
    const sql_kv_ops *ops = txn_client_kv_ops();
    txn_client *c;
    merr e = {0};
    if (txn_client_open(argv[2], NULL, &c, &e)) return fail("open", &e);
    const char *tmo = getenv("MERIDIAN_TEST_TIMEOUT_MS");
    txn_client_set_timeout(c, (tmo ? atoll(tmo) : 10000) * MTIME_MS);
    sql_kv_txn *t = NULL;
    int rc = 0;
    if (!strcmp(argv[1], "put")) {
        const char *k = argv[3], *v = argv[4];
        if (ops->begin(c, 0, &t, &e) ||
            ops->put(t, (const uint8_t *)k, strlen(k), (const uint8_t *)v, strlen(v), &e) ||
            ops->commit(t, &e)) {
            if (t) ops->rollback(t);
            rc = fail("put", &e);
        } else {
            printf("committed\n");
        }
        t = NULL;
    } else if ((!strcmp(argv[1], "get") && argc >= 6) || (!strcmp(argv[1], "scan") && argc >= 7)) {
        int mode = mode_of(argv[3]);
        uint64_t arg = strtoull(argv[4], NULL, 10);
        if (mode < 0 || txn_client_set_read_mode(c, mode, mode == TXN_CLIENT_READ_AT ? 0 : arg,
                                                 mode == TXN_CLIENT_READ_AT ? arg : 0)) {
            fprintf(stderr, "bad mode %s %s\n", argv[3], argv[4]);
            txn_client_close(c);
            return 1;
        }
        if (ops->begin(c, SQL_KV_READ_ONLY, &t, &e)) {
            rc = fail("begin", &e);
        } else if (!strcmp(argv[1], "get")) {
            mbuf v = MBUF_INIT;
            const char *k = argv[5];
            int g = ops->get(t, (const uint8_t *)k, strlen(k), &v, &e);
            if (g == 0)
                printf("found %.*s ts=%" PRIu64 "\n", (int)v.len, (const char *)v.data,
                       txn_client_read_ts(t));
            else if (g == MERR_NOTFOUND)
                printf("absent ts=%" PRIu64 "\n", txn_client_read_ts(t));
            else
                rc = fail("get", &e);
            mbuf_free(&v);
        } else {
            sql_kv_iter *it = NULL;
            const char *lo = argv[5], *hi = argv[6];
            if (ops->scan(t, (const uint8_t *)lo, strlen(lo), (const uint8_t *)hi, strlen(hi), 0, 0,
                          &it, &e)) {
                rc = fail("scan", &e);
            } else {
                const uint8_t *k, *v;
                size_t kl, vl;
                int n;
                while ((n = ops->iter_next(it, &k, &kl, &v, &vl, &e)) == 1)
                    printf("%.*s=%.*s\n", (int)kl, (const char *)k, (int)vl, (const char *)v);
                if (n < 0) rc = fail("scan", &e);
                ops->iter_close(it);
                if (!rc) printf("ts=%" PRIu64 "\n", txn_client_read_ts(t));
            }
        }
        if (t) ops->rollback(t);
    } else if (!strcmp(argv[1], "gets") && argc >= 6 && argc % 2 == 0) {
        const char *k = argv[3];
        for (int i = 4; i + 1 < argc && !rc; i += 2) {
            int mode = mode_of(argv[i]);
            uint64_t arg = strtoull(argv[i + 1], NULL, 10);
            if (mode < 0 || txn_client_set_read_mode(c, mode, mode == TXN_CLIENT_READ_AT ? 0 : arg,
                                                     mode == TXN_CLIENT_READ_AT ? arg : 0)) {
                fprintf(stderr, "bad mode %s %s\n", argv[i], argv[i + 1]);
                rc = 1;
                break;
            }
            mbuf v = MBUF_INIT;
            int g = ops->begin(c, SQL_KV_READ_ONLY, &t, &e);
            if (!g) g = ops->get(t, (const uint8_t *)k, strlen(k), &v, &e);
            if (t) ops->rollback(t);
            t = NULL;
            if (g == 0)
                printf("%s found %.*s\n", txn_client_current_host(c), (int)v.len,
                       (const char *)v.data);
            else if (g == MERR_NOTFOUND)
                printf("%s absent\n", txn_client_current_host(c));
            else
                rc = fail("get", &e);
            mbuf_free(&v);
        }
    } else {
        fprintf(stderr, "unknown command %s\n", argv[1]);
        rc = 1;
    }
    txn_client_close(c);
    return rc;
}
