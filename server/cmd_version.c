/* `meridian version`: version, git revision and build type. */
#include "common/cli.h"
#include "common/version.h"
#include "server/commands.h"

#include <stdio.h>
#include <sqlite3.h>
#include <uv.h>
#include <protobuf-c/protobuf-c.h>

int cmd_version(int argc, char **argv)
{
    int json = 0;
    const cli_flag flags[] = {
        {"json", CLI_BOOL, &json, NULL, "print one JSON object"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "[--json]", flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (npos) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[1]);
        return CLI_EXIT_USAGE;
    }
    if (json) {
        printf("{\"version\":\"%s\",\"revision\":\"%s\",\"build\":\"%s\",\"sqlite\":\"%s\","
               "\"libuv\":\"%s\",\"protobuf_c\":\"%s\"}\n",
               MERIDIAN_VERSION, meridian_git_revision(), MERIDIAN_BUILD_TYPE, sqlite3_libversion(),
               uv_version_string(), protobuf_c_version());
    } else {
        printf("meridian %s\nrevision:   %s\nbuild:      %s\nsqlite:     %s\nlibuv:      "
               "%s\nprotobuf-c: %s\n",
               MERIDIAN_VERSION, meridian_git_revision(), MERIDIAN_BUILD_TYPE, sqlite3_libversion(),
               uv_version_string(), protobuf_c_version());
    }
    return 0;
}
