/* verify.h: the `verify` command (offline scan of an engine file for corruption). */
#ifndef MC_CLI_VERIFY_H
#define MC_CLI_VERIFY_H

#include "cli/cli.h"

#include <stddef.h>

int mc_cli_cmd_verify(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                      size_t npos);

#define MC_CLI_VERIFY_DETAILS                                                                      \
    "Offline only (--data-dir of a stopped node). Checks every record's checksum, key order,\n"    \
    "that every record is found by a lookup, and the page accounting of engine/data.mdb.\n"        \
    "Exit 0 and a summary when intact; Corruption (exit 1) naming the file, table and key\n"       \
    "otherwise. A node runs the same scan at start after an unclean stop. Progress lines go\n"     \
    "to stderr once a second. --json: {\"ok\",\"records\",\"bytes\",\"pages\",\"seconds\"}"

#endif
