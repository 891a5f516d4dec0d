/* The test/bootstrap executor of the session service: each session gets a
 * plain SQLite database (a private in-memory one, or a shared file so that
 * several test servers see the same data across a failover). It exists so
 * that the protocol, libmeridian and the shell are testable end to end
 * before the distributed SQL layer is wired in; it is not Meridian's SQL.
 *
 * Test hooks (SQL functions, always present in this executor):
 *   meridian_test_abort(k)   fails with a retryable abort the first k times
 *                            it runs in a session (inside a transaction the
 *                            transaction is rolled back and marked failed)
 *   meridian_setting(name)   the session's "read_only", "max_staleness_ms",
 *                            "application_name", "user" */
#ifndef MERIDIAN_SERVER_SESSION_EXEC_SQLITE_H
#define MERIDIAN_SERVER_SESSION_EXEC_SQLITE_H

#include "server/session_service.h"

/* Fills *ex. path: NULL or ":memory:" = one private database per session;
 * otherwise a file shared by the sessions (WAL, busy timeout). The string
 * must outlive the executor. */
void session_exec_sqlite(session_executor *ex, const char *path);

#endif
