/* Raw txn.Commit for the real-process transaction tests (txn_test.c,
 * twopc_gc_test.c): one packed CommitRequest sent to whichever node answers
 * as the leaseholder. */
#ifndef MERIDIAN_TESTS_TXN_RPC_H
#define MERIDIAN_TESTS_TXN_RPC_H

#include <stddef.h>
#include <stdint.h>

#include "proto/txn.pb-c.h"

/* Sends buf to each of hosts ("h:p,h:p,...") in turn until a reply is other
 * than NOT_LEADER; NULL when none came within timeout_ns. The caller frees
 * the reply (meridian__txn__commit_response__free_unpacked). */
Meridian__Txn__CommitResponse *txn_rpc_commit(const char *hosts, const uint8_t *buf, size_t len,
                                              int64_t timeout_ns);

#endif
