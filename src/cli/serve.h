/* serve.h: the `metacenter serve` subcommand (owned by the node module). */
#ifndef MC_CLI_SERVE_H
#define MC_CLI_SERVE_H

/* argv[0] is "serve". Returns the process exit code. */
int mc_cli_serve(int argc, char **argv);

#endif
