/* `meridian sql`: the SQL shell (client/shell.c), a libmeridian application
 * that happens to ship inside the meridian binary. */
#include "client/shell.h"
#include "server/commands.h"

int cmd_sql(int argc, char **argv)
{
    return shell_main(argc, argv);
}
