/* Internal helpers shared by txn/participant.c and txn/coordinator.c. */
#ifndef MERIDIAN_TXN_TWOPC_INT_H
#define MERIDIAN_TXN_TWOPC_INT_H

#include "txn/twopc.h"

void twopc_out_reset(txn_out *out);
/* Appends an action (zeroed but for its type) and returns it. */
txn_action *twopc_push(txn_out *out, txn_action_type t);
/* Fills out->rec (no participants) and appends a PROPOSE action. */
void twopc_propose(txn_out *out, txn_rec_type type, txn_id txn, txn_ts ts, uint64_t coord);
/* A CHOSEN event's record is present, well formed and of this txn. */
int twopc_check_record(const txn_event *ev, txn_id txn, merr *e);

#define TWOPC_BIT(s) (1u << (s))

#endif
