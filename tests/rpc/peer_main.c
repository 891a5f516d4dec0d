/* A child-process rpc peer for integration tests: serves "echo" until
 * killed. Usage: rpc_test_peer NODE_ID LISTEN CLUSTER. Prints "ready" once
 * listening. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s NODE_ID LISTEN CLUSTER\n", argv[0]);
        return 2;
    }
    /* Never outlive the test that started us, even if it crashed. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1) return 1;
    th_opts o = {.id = strtoull(argv[1], NULL, 10), .listen = argv[2], .cluster = argv[3]};
    rpc_node *n = th_start(&o);
    if (!n) return 1;
    th_handle(n, "echo", th_echo, NULL);
    printf("ready\n");
    fflush(stdout);
    for (;;) pause(); /* the test kills us by PID */
}
