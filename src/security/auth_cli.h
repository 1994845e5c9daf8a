/* auth_cli.h: `metacenter auth ...` subcommands (hash-token). */
#ifndef MC_SECURITY_AUTH_CLI_H
#define MC_SECURITY_AUTH_CLI_H

/* argv[0] is "auth". Returns the process exit code (0 ok, 1 error, 2 usage). */
int mc_auth_cli_main(int argc, char **argv);

#endif
