/* admin.h: cluster, snapshot and check commands (server mode; snapshot/check also offline). */
#ifndef MC_CLI_ADMIN_H
#define MC_CLI_ADMIN_H

#include "cli/cli.h"

int mc_cli_cmd_cluster_status(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                              size_t npos);
int mc_cli_cmd_cluster_change(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                              size_t npos);
int mc_cli_cmd_snapshot_save(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                             size_t npos);
int mc_cli_cmd_snapshot_restore(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                                size_t npos);
int mc_cli_cmd_check(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                     size_t npos);

extern const struct mc_flag_spec mc_cli_cluster_add_flags[];

/* Table rows for mc_cli_cmds (commands.c). */
#define MC_CLI_ADMIN_CMDS                                                                            \
    {"cluster",                                                                                      \
     "status",                                                                                       \
     "",                                                                                             \
     0,                                                                                              \
     0,                                                                                              \
     NULL,                                                                                           \
     "show every member's role, term, indexes and lag",                                              \
     "--json: {\"leader\":ID,\"term\":T,\"members\":[{\"id\",\"address\",\"role\",\"term\",\n"       \
     "\"commit_index\",\"applied_index\",\"lag_entries\",\"reachable\"}]}",                          \
     mc_cli_cmd_cluster_status},                                                                     \
        {"cluster",                                                                                  \
         "add",                                                                                      \
         "ID PEER_ADDR [--learner] [--client-addr A]",                                               \
         2,                                                                                          \
         2,                                                                                          \
         mc_cli_cluster_add_flags,                                                                   \
         "add a member (as a learner with --learner; promote it once caught up)",                    \
         NULL,                                                                                       \
         mc_cli_cmd_cluster_change},                                                                 \
        {"cluster",                                                                                  \
         "promote",                                                                                  \
         "ID",                                                                                       \
         1,                                                                                          \
         1,                                                                                          \
         NULL,                                                                                       \
         "promote a learner to a voter",                                                             \
         NULL,                                                                                       \
         mc_cli_cmd_cluster_change},                                                                 \
        {"cluster", "remove", "ID", 1, 1, NULL, "remove a member", NULL, mc_cli_cmd_cluster_change}, \
        {"cluster", "transfer-leader",        "ID", 1, 1, NULL, "hand leadership to member ID",      \
         NULL,      mc_cli_cmd_cluster_change},                                                      \
        {"snapshot",                                                                                 \
         "save",                                                                                     \
         "FILE",                                                                                     \
         1,                                                                                          \
         1,                                                                                          \
         NULL,                                                                                       \
         "save a consistent snapshot of the state to FILE",                                          \
         "With --data-dir (offline): copies the stopped node's engine. Otherwise asks a server.",    \
         mc_cli_cmd_snapshot_save},                                                                  \
        {"snapshot",                                                                                 \
         "restore",                                                                                  \
         "FILE --data-dir DIR",                                                                      \
         1,                                                                                          \
         1,                                                                                          \
         NULL,                                                                                       \
         "create a new data dir DIR from snapshot FILE",                                             \
         "Always offline. DIR must not hold engine data yet; FILE is checked before it is used.",    \
         mc_cli_cmd_snapshot_restore},                                                               \
    {                                                                                                \
        NULL, "check", "", 0, 0, NULL, "compare state hashes across replicas",                       \
            "With --data-dir (offline): prints the data dir's applied index and state hash.",        \
            mc_cli_cmd_check                                                                         \
    }

#endif
