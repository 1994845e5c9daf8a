/* main.c: the `metacenter` command: dispatches to serve, offline and client subcommands. */
#include "cli/serve.h"
#include "metacenter/error.h"

#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: metacenter [--endpoints HOST:PORT,...] [--data-dir DIR] [--json] COMMAND ...\n"
                 "       metacenter serve [flags]\n"
                 "Run 'metacenter COMMAND --help' for a command's flags.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "serve") == 0) {
        return mc_cli_serve(argc - 1, argv + 1);
    }
    fprintf(stderr, "InvalidArgument: unknown command '%s'\n", argv[1]);
    return 2;
}
