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
extern const struct mc_flag_spec mc_cli_cluster_promote_flags[];
extern const struct mc_flag_spec mc_cli_snapshot_restore_flags[];

/* Table rows for mc_cli_cmds (commands.c). */
#define MC_CLI_ADMIN_CMDS                                                                          \
    {"cluster",                                                                                    \
     "status",                                                                                     \
     "",                                                                                           \
     0,                                                                                            \
     0,                                                                                            \
     NULL,                                                                                         \
     "show every member's role, term, indexes and lag",                                            \
     "--json: {\"leader\":ID,\"term\":T,\"members\":[{\"id\",\"address\",\"role\",\"term\",\n"     \
     "\"commit_index\",\"applied_index\",\"lag_entries\",\"reachable\"}]}",                        \
     mc_cli_cmd_cluster_status},                                                                   \
        {"cluster",                                                                                \
         "add",                                                                                    \
         "ID PEER_ADDR [--learner] [--client-addr A]",                                             \
         2,                                                                                        \
         2,                                                                                        \
         mc_cli_cluster_add_flags,                                                                 \
         "add a member: a learner first, promoted to voter once caught up",                        \
         NULL,                                                                                     \
         mc_cli_cmd_cluster_change},                                                               \
        {"cluster",                                                                                \
         "promote",                                                                                \
         "ID [--wait]",                                                                            \
         1,                                                                                        \
         1,                                                                                        \
         mc_cli_cluster_promote_flags,                                                             \
         "promote a learner to a voter",                                                           \
         "Fails with LearnerLagging while the learner is more than the leader's --ready-max-lag\n" \
         "entries behind; --wait retries until it has caught up.",                                 \
         mc_cli_cmd_cluster_change},                                                               \
        {"cluster",                                                                                \
         "remove",                                                                                 \
         "ID",                                                                                     \
         1,                                                                                        \
         1,                                                                                        \
         NULL,                                                                                     \
         "remove a member (the leader hands over first)",                                          \
         "Removing the leader transfers leadership to the most caught-up voter, which then\n"      \
         "removes it. A removed node that learns of its removal stops.",                           \
         mc_cli_cmd_cluster_change},                                                               \
        {"cluster", "transfer-leader",        "ID", 1, 1, NULL, "hand leadership to member ID",    \
         NULL,      mc_cli_cmd_cluster_change},                                                    \
        {"snapshot",                                                                               \
         "save",                                                                                   \
         "FILE",                                                                                   \
         1,                                                                                        \
         1,                                                                                        \
         NULL,                                                                                     \
         "save a consistent snapshot of the state to FILE",                                        \
         "A snapshot file (checksum verified) at one applied index. With --data-dir (offline):\n"  \
         "from a stopped node's engine. Otherwise streamed from a server (progress on a tty).",    \
         mc_cli_cmd_snapshot_save},                                                                \
        {"snapshot",                                                                               \
         "restore",                                                                                \
         "FILE --data-dir DIR [--node-id N]",                                                      \
         1,                                                                                        \
         1,                                                                                        \
         mc_cli_snapshot_restore_flags,                                                            \
         "create a new single-node cluster in DIR from snapshot FILE",                             \
         "Offline, like etcdutl. DIR must not hold a node yet; FILE's checksums are verified\n"    \
         "first. Start the node with serve --data-dir DIR, then grow it with cluster add.",        \
         mc_cli_cmd_snapshot_restore},                                                             \
    {                                                                                              \
        NULL, "check", "", 0, 0, NULL, "compare state hashes across replicas",                     \
            "With --data-dir (offline): prints the data dir's applied index and state hash.",      \
            mc_cli_cmd_check                                                                       \
    }

#endif
