/* serve.c: parses `metacenter serve` flags and runs the node until SIGTERM/SIGINT. */
#include "cli/serve.h"

#include <stdio.h>

int mc_cli_serve(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "serve: not built yet\n");
    return 1;
}
