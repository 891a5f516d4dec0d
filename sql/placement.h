/* Placement policies from SQL (docs/sql.md, "Placement"):
 *
 *   ALTER TABLE t SET PLACEMENT (replicas = 5, regions = 'us,eu',
 *                                lead_region = 'us', survive = 'zone')
 *   ALTER TABLE t RESET PLACEMENT
 *   SHOW PLACEMENT [FOR TABLE t]
 *
 * SET puts the cluster's placement policy "table.<id>" over the table's
 * whole key span (its rows and indexes: every key starts with its id);
 * RESET removes it. Both need ADMIN, act at once and are not part of a
 * transaction (refused inside one). SHOW is a query over the system view
 * meridian_placement. The cluster is reached through the session's
 * sql_cluster_ops (sql/cluster.h), which checks the policy itself. */
#ifndef MERIDIAN_SQL_PLACEMENT_H
#define MERIDIAN_SQL_PLACEMENT_H

#include "sql/sql_int.h"

typedef struct sql_placement sql_placement;

/* 1 when sql starts like one of the statements above. */
int sql_placement_is(const char *sql);
/* Parses one statement; *end = bytes consumed (through the ';'). Errors say
 * what was expected where. */
int sql_placement_parse(const char *sql, sql_placement **out, size_t *end, merr *e);
void sql_placement_free(sql_placement *p);
/* SHOW: the SELECT that answers it (malloc'd) in *out; NULL for SET/RESET. */
int sql_placement_show_sql(const sql_placement *p, char **out, merr *e);
/* SET or RESET. */
int sql_placement_exec(sql_session *s, const sql_placement *p, merr *e);

/* DROP TABLE: the table's policy is removed once the drop commits (the
 * cluster keeps policies outside transactions). table_dropped notes it
 * (ddl.c), before_commit forgets tables a ROLLBACK TO brought back, and
 * txn_done removes the policies if the transaction committed (session.c). */
int sql_placement_table_dropped(sql_session *s, uint32_t tid, merr *e);
void sql_placement_before_commit(sql_session *s);
void sql_placement_txn_done(sql_session *s, int committed);

#endif
