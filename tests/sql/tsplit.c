/* Splitting a table's rows between ranges (tsplit.h). A row's key is
 * (table id, primary index 1, primary key) in the key codec (sql/row.c). */
#include "tsplit.h"

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>

#include "common/buf.h"
#include "common/keycodec.h"

extern char **environ;

#define PRIMARY_INDEX 1

int64_t tsplit_table_id(meridian *db, const char *table)
{
    meridian_stmt *st = NULL;
    int64_t id = -1;
    if (meridian_prepare(db, "SELECT table_id FROM meridian_tables WHERE name = ?1", -1, &st,
                         NULL) != MERIDIAN_OK)
        return -1;
    meridian_bind_text(st, 1, table, -1);
    if (meridian_step(st) == MERIDIAN_ROW) id = meridian_column_int64(st, 0);
    meridian_finalize(st);
    return id;
}

int tsplit_start(const char *bin, const char *hosts, int64_t tid, int64_t at)
{
    mkey_val v[3] = {mkey_int(tid, 0), mkey_int(PRIMARY_INDEX, 0), mkey_int(at, 0)};
    mbuf k = MBUF_INIT;
    if (mkey_encode(v, 3, &k)) return -1;
    char hex[2 + 2 * 64 + 1] = "0x";
    for (size_t j = 0; j < k.len && j < 64; j++) snprintf(hex + 2 + 2 * j, 3, "%02x", k.data[j]);
    mbuf_free(&k);
    char *argv[] = {(char *)bin, "debug", "split", "--insecure", "--host", (char *)hosts,
                    "--timeout", "60s",   "--key", hex,          NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    return rc ? -1 : pid;
}

int tsplit_at(const char *bin, const char *hosts, int64_t tid, int64_t at)
{
    int status = 0;
    pid_t pid = tsplit_start(bin, hosts, tid, at);
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}
