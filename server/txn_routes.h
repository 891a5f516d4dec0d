/* The transaction client's route cache: which host holds the lease of the
 * range a key lies in, learned from read replies (GetResponse/ScanResponse
 * carry the serving range's span and whether the answering node holds its
 * lease). Without it the client sent every request to the host that
 * answered last and followed NOT_LEADER hints, so a transaction alternating
 * between ranges led by different nodes paid a wasted round trip on nearly
 * every statement.
 *
 * Pure: no I/O, no locks (one client is used by one thread at a time). A
 * stale entry only costs the redirect the cache saves: the caller forgets
 * it on NOT_LEADER and learns the range anew from the next reply. */
#ifndef MERIDIAN_SERVER_TXN_ROUTES_H
#define MERIDIAN_SERVER_TXN_ROUTES_H

#include <stddef.h>
#include <stdint.h>

#define TXN_ROUTES_MAX  64 /* ranges remembered; the least recently used goes */
#define TXN_ROUTES_HOST 128

typedef struct txn_route {
    uint64_t range_id;
    uint8_t *start, *end; /* end_len 0: to the end of the keyspace */
    size_t start_len, end_len;
    char host[TXN_ROUTES_HOST];
    uint64_t used; /* the tick of the last lookup or learn */
} txn_route;

typedef struct txn_routes {
    txn_route r[TXN_ROUTES_MAX];
    int n;
    uint64_t tick;
} txn_routes;

void txn_routes_init(txn_routes *rt);
void txn_routes_free(txn_routes *rt);
/* host leads range_id = [start, end): replaces every entry it overlaps or
 * that names the same range. 0, or MERR_NOMEM / MERR_INVALID (empty or
 * too long host, start >= end) with the cache unchanged. */
int txn_routes_learn(txn_routes *rt, uint64_t range_id, const uint8_t *start, size_t slen,
                     const uint8_t *end, size_t elen, const char *host);
/* The host believed to lead the range holding key, or NULL. */
const char *txn_routes_for_key(txn_routes *rt, const uint8_t *key, size_t klen);
/* The host believed to lead range_id, or NULL. */
const char *txn_routes_for_range(txn_routes *rt, uint64_t range_id);
/* Forgets the entry holding key / naming range_id (a NOT_LEADER there). */
void txn_routes_forget_key(txn_routes *rt, const uint8_t *key, size_t klen);
void txn_routes_forget_range(txn_routes *rt, uint64_t range_id);

#endif
