/* admin.c: cluster membership, snapshot and check commands. Offline (--data-dir) the snapshot and
 * check commands work on a stopped node's engine; the rest need servers. */
#include "cli/admin.h"
#include "cli/backend.h"
#include "cli/output.h"
#include "metacenter/client.h"
#include "metacenter/error.h"

#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const struct mc_flag_spec mc_cli_cluster_add_flags[] = {
    {"learner", 0, 0, NULL, "join as a non-voting learner"},
    {"client-addr", 1, 0, "HOST:PORT", "the new member's client address (for redirects)"},
    {NULL, 0, 0, NULL, NULL},
};

static int be_fail(int code)
{
    const char *why = mc_cli_be_errmsg();
    return mc_cli_fail(code, "%s", why && *why ? why : mc_strerror(code));
}

/* Prints a jansson value compactly (consumes it). */
static int print_json(json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return mc_cli_print_json(s);
}

/* Opens the server-mode client of this invocation (closed by the backend's close). */
static int server(struct mc_cli *cli, struct mc_client **c)
{
    if (!cli->client) {
        int rc = mc_cli_client_open(cli, mc_cli_endpoints(cli), &cli->client);
        if (rc != 0) {
            return rc;
        }
    }
    *c = cli->client;
    return 0;
}

static int parse_id(const struct mc_cli *cli, const char *s, uint64_t *id)
{
    if (mc_args_parse_u64(s, 1, UINT64_MAX, id) != 0) {
        return mc_cli_usage(cli, "member ID must be a positive integer, not '%.40s'", s);
    }
    return 0;
}

/* Per-member probes use a short deadline so one dead node does not stall the whole command. */
#define PROBE_TIMEOUT_MS 1000

/* Asks the member at addr (its client address) for its own status. */
static int probe_status(struct mc_cli *cli, const char *addr, struct mc_cluster_status *out)
{
    if (!addr || !*addr) {
        return MC_ENOTFOUND;
    }
    uint64_t saved = cli->timeout_ms;
    if (!cli->timeout_ms || cli->timeout_ms > PROBE_TIMEOUT_MS) {
        cli->timeout_ms = PROBE_TIMEOUT_MS;
    }
    struct mc_client *c = NULL;
    int rc = mc_cli_client_open(cli, addr, &c);
    cli->timeout_ms = saved;
    if (rc == 0) {
        rc = mc_client_cluster_status(c, 0, out);
        mc_client_close(c);
    }
    return rc;
}

static int probe_check(struct mc_cli *cli, const char *addr, struct mc_check_result *out)
{
    uint64_t saved = cli->timeout_ms;
    if (!cli->timeout_ms || cli->timeout_ms > PROBE_TIMEOUT_MS) {
        cli->timeout_ms = PROBE_TIMEOUT_MS;
    }
    struct mc_client *c = NULL;
    int rc = mc_cli_client_open(cli, addr, &c);
    cli->timeout_ms = saved;
    if (rc == 0) {
        rc = mc_client_check(c, 0, 0, out);
        mc_client_close(c);
    }
    return rc;
}

static const struct mc_member_status *find_member(const struct mc_cluster_status *st, uint64_t id)
{
    for (uint32_t i = 0; i < st->n_members && i < MC_CLUSTER_MAX_MEMBERS; i++) {
        if (st->members[i].id == id) {
            return &st->members[i];
        }
    }
    return NULL;
}

/* The membership as the leader sees it (it knows match indexes and reachability best). */
static int leader_view(struct mc_cli *cli, struct mc_cluster_status *st)
{
    struct mc_client *c = NULL;
    int rc = server(cli, &c);
    if (rc == 0) {
        rc = mc_client_cluster_status(c, -1, st);
        if (rc != 0) {
            rc = mc_cli_client_error(cli, c, rc);
        }
    }
    if (rc != 0) {
        return rc;
    }
    const struct mc_member_status *l = find_member(st, st->leader_id);
    if (st->leader_id && st->node_id != st->leader_id && l) {
        struct mc_cluster_status *ls = malloc(sizeof(*ls));
        if (ls && probe_status(cli, l->client_addr, ls) == 0 && ls->node_id == st->leader_id) {
            *st = *ls;
        }
        free(ls);
    }
    return 0;
}

struct member_row {
    uint64_t id;
    const char *address;
    const char *peer_address;
    const char *role;
    bool probed;                  /* answered this CLI's own status request */
    bool reachable;               /* probed, or reachable in the leader's view */
    struct mc_cluster_status own; /* the member's own status when reachable */
    bool has_lag;
    uint64_t lag_entries;
};

int mc_cli_cmd_cluster_status(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                              size_t npos)
{
    (void)a;
    (void)pos;
    (void)npos;
    if (cli->offline) {
        return mc_cli_usage(cli, "cluster commands talk to servers: use --endpoints, not "
                                 "--data-dir");
    }
    struct mc_cluster_status *st = calloc(1, sizeof(*st));
    struct member_row *rows = calloc(MC_CLUSTER_MAX_MEMBERS, sizeof(*rows));
    int ec = MC_CLI_EXIT_OK;
    if (!st || !rows) {
        ec = mc_cli_fail(MC_ENOMEM, "%s", mc_strerror(MC_ENOMEM));
        goto out;
    }
    int rc = leader_view(cli, st);
    if (rc != 0) {
        ec = be_fail(rc);
        goto out;
    }
    uint32_t n = st->n_members < MC_CLUSTER_MAX_MEMBERS ? st->n_members : MC_CLUSTER_MAX_MEMBERS;
    uint64_t leader_commit = st->node_id == st->leader_id ? st->commit_index : 0;
    for (uint32_t i = 0; i < n; i++) {
        const struct mc_member_status *m = &st->members[i];
        struct member_row *r = &rows[i];
        r->id = m->id;
        r->address = m->client_addr;
        r->peer_address = m->peer_addr;
        r->role = m->id == st->leader_id ? "leader" : m->learner ? "learner" : "follower";
        r->probed = probe_status(cli, m->client_addr, &r->own) == 0 && r->own.node_id == m->id;
        /* Reachable from here, or (when this machine cannot reach it) in the leader's view. */
        r->reachable = r->probed || (st->node_id == st->leader_id && m->reachable);
        if (r->probed && leader_commit) {
            r->has_lag = true;
            r->lag_entries =
                leader_commit > r->own.applied_index ? leader_commit - r->own.applied_index : 0;
        } else if (leader_commit && m->match_index) {
            r->has_lag = true;
            r->lag_entries = leader_commit > m->match_index ? leader_commit - m->match_index : 0;
        }
    }
    if (cli->json) {
        json_t *members = json_array();
        for (uint32_t i = 0; i < n && members; i++) {
            const struct member_row *r = &rows[i];
            json_t *o = json_pack(
                "{s:I, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:b}", "id", (json_int_t)r->id, "address",
                r->address, "peer_address", r->peer_address, "role", r->role, "term",
                r->probed ? json_integer((json_int_t)r->own.term) : json_null(), "commit_index",
                r->probed ? json_integer((json_int_t)r->own.commit_index) : json_null(),
                "applied_index",
                r->probed ? json_integer((json_int_t)r->own.applied_index) : json_null(),
                "lag_entries", r->has_lag ? json_integer((json_int_t)r->lag_entries) : json_null(),
                "reachable", r->reachable);
            json_array_append_new(members, o);
        }
        ec = print_json(
            json_pack("{s:o, s:I, s:o}", "leader",
                      st->leader_id ? json_integer((json_int_t)st->leader_id) : json_null(), "term",
                      (json_int_t)st->term, "members", members));
        goto out;
    }
    static const char *const hdr[] = {"ID",     "ADDRESS", "ROLE", "TERM",
                                      "COMMIT", "APPLIED", "LAG",  "REACHABLE"};
    struct mc_table t;
    mc_table_init(&t, 8, hdr);
    for (int c = 3; c <= 6; c++) {
        t.right[c] = true;
    }
    for (uint32_t i = 0; i < n; i++) {
        const struct member_row *r = &rows[i];
        char id[24], term[24] = "-", commit[24] = "-", applied[24] = "-", lag[24] = "-";
        snprintf(id, sizeof(id), "%llu", (unsigned long long)r->id);
        if (r->probed) {
            snprintf(term, sizeof(term), "%llu", (unsigned long long)r->own.term);
            snprintf(commit, sizeof(commit), "%llu", (unsigned long long)r->own.commit_index);
            snprintf(applied, sizeof(applied), "%llu", (unsigned long long)r->own.applied_index);
        }
        if (r->has_lag) {
            snprintf(lag, sizeof(lag), "%llu", (unsigned long long)r->lag_entries);
        }
        const char *row[] = {id,      *r->address ? r->address : r->peer_address,
                             r->role, term,
                             commit,  applied,
                             lag,     r->reachable ? "yes" : "no"};
        mc_table_row(&t, row);
    }
    mc_table_print(&t, stdout);
    if (st->leader_id) {
        printf("leader %llu, term %llu\n", (unsigned long long)st->leader_id,
               (unsigned long long)st->term);
    } else {
        printf("no leader known (term %llu)\n", (unsigned long long)st->term);
    }
out:
    free(st);
    free(rows);
    return ec;
}

int mc_cli_cmd_cluster_change(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                              size_t npos)
{
    uint64_t id;
    if (parse_id(cli, pos[0], &id) != 0) {
        return MC_CLI_EXIT_USAGE;
    }
    if (cli->offline) {
        return mc_cli_usage(cli, "cluster commands talk to servers: use --endpoints, not "
                                 "--data-dir");
    }
    const char *what = cli->cmd->name;
    const char *client_addr = mc_args_get(a, "client-addr");
    if (strcmp(what, "add") == 0) {
        if (npos < 2 || !*pos[1] || strlen(pos[1]) >= MC_ADDR_MAX || !strchr(pos[1], ':')) {
            return mc_cli_usage(cli, "ADDR must be HOST:PORT (under %d bytes)", MC_ADDR_MAX);
        }
        if (client_addr && (strlen(client_addr) >= MC_ADDR_MAX || !strchr(client_addr, ':'))) {
            return mc_cli_usage(cli, "--client-addr must be HOST:PORT (under %d bytes)",
                                MC_ADDR_MAX);
        }
    }
    struct mc_client *c = NULL;
    int rc = server(cli, &c);
    if (rc != 0) {
        return be_fail(rc);
    }
    if (strcmp(what, "add") == 0) {
        rc = mc_client_add_member(c, id, pos[1], client_addr ? client_addr : "",
                                  mc_args_has(a, "learner"));
    } else if (strcmp(what, "promote") == 0) {
        rc = mc_client_promote(c, id);
    } else if (strcmp(what, "remove") == 0) {
        rc = mc_client_remove_member(c, id);
    } else {
        rc = mc_client_transfer_leader(c, id);
    }
    if (rc != 0) {
        return be_fail(mc_cli_client_error(cli, c, rc));
    }
    if (cli->json) {
        return print_json(
            json_pack("{s:s, s:I, s:b}", "action", what, "id", (json_int_t)id, "ok", 1));
    }
    printf("cluster %s %llu: done\n", what, (unsigned long long)id);
    return MC_CLI_EXIT_OK;
}

/*
 * check against servers: every member's state hash at its applied index. Hashes only compare
 * at equal indexes, so members are asked again (a few rounds) until they report the same index.
 */
#define CHECK_ROUNDS         20
#define CHECK_ROUND_PAUSE_MS 100

static int check_servers(struct mc_cli *cli)
{
    struct mc_cluster_status *st = calloc(1, sizeof(*st));
    if (!st) {
        return mc_cli_fail(MC_ENOMEM, "%s", mc_strerror(MC_ENOMEM));
    }
    int rc = leader_view(cli, st);
    if (rc != 0) {
        free(st);
        return be_fail(rc);
    }
    uint32_t n = st->n_members < MC_CLUSTER_MAX_MEMBERS ? st->n_members : MC_CLUSTER_MAX_MEMBERS;
    struct mc_check_result res[MC_CLUSTER_MAX_MEMBERS];
    bool ok[MC_CLUSTER_MAX_MEMBERS];
    bool same_index = false;
    for (int round = 0; round < CHECK_ROUNDS && !same_index; round++) {
        if (round > 0) {
            struct timespec ts = {0, CHECK_ROUND_PAUSE_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
        same_index = true;
        uint64_t idx = 0;
        bool first = true;
        for (uint32_t i = 0; i < n; i++) {
            memset(&res[i], 0, sizeof(res[i]));
            ok[i] = probe_check(cli, st->members[i].client_addr, &res[i]) == 0;
            if (!ok[i]) {
                continue;
            }
            if (first) {
                idx = res[i].index;
                first = false;
            } else if (res[i].index != idx) {
                same_index = false;
            }
        }
    }
    uint32_t reachable = 0;
    bool consistent = same_index;
    for (uint32_t i = 0; i < n; i++) {
        if (ok[i]) {
            reachable++;
            for (uint32_t j = 0; j < i; j++) {
                if (ok[j] && res[j].index == res[i].index && res[j].hash != res[i].hash) {
                    consistent = false;
                }
            }
        }
    }
    int ec = MC_CLI_EXIT_OK;
    if (cli->json) {
        json_t *members = json_array();
        for (uint32_t i = 0; i < n && members; i++) {
            char hex[17];
            snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)res[i].hash);
            json_array_append_new(
                members, json_pack("{s:I, s:s, s:b, s:o, s:o}", "id", (json_int_t)st->members[i].id,
                                   "address", st->members[i].client_addr, "reachable", ok[i],
                                   "applied_index",
                                   ok[i] ? json_integer((json_int_t)res[i].index) : json_null(),
                                   "state_hash", ok[i] ? json_string(hex) : json_null()));
        }
        ec = print_json(json_pack("{s:b, s:o}", "consistent", consistent && reachable == n,
                                  "members", members));
    } else {
        for (uint32_t i = 0; i < n; i++) {
            if (ok[i]) {
                printf("member %llu  %s  applied_index %llu  state_hash %016llx\n",
                       (unsigned long long)st->members[i].id, st->members[i].client_addr,
                       (unsigned long long)res[i].index, (unsigned long long)res[i].hash);
            } else {
                printf("member %llu  %s  unreachable\n", (unsigned long long)st->members[i].id,
                       st->members[i].client_addr);
            }
        }
    }
    if (ec == MC_CLI_EXIT_OK) {
        if (!consistent && same_index) {
            ec = mc_cli_fail(MC_ECORRUPT, "replicas disagree: different state hashes at the "
                                          "same applied index");
        } else if (!consistent) {
            ec = mc_cli_fail(MC_EBUSY, "replicas kept applying; no common applied index to "
                                       "compare (retry when writes pause)");
        } else if (reachable < n) {
            ec = mc_cli_fail(MC_EUNAVAIL, "%u of %u members unreachable; checked the others",
                             n - reachable, n);
        } else if (!cli->json) {
            printf("consistent: %u members agree\n", n);
        }
    }
    free(st);
    return ec;
}

/* Writes a snapshot of the offline engine to path via a temp file renamed into place. */
static int save_offline(struct mc_cli *cli, const char *path)
{
    int rc = mc_cli_offline_open(cli, false);
    if (rc != 0) {
        return be_fail(rc);
    }
    char tmp[4200];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        return mc_cli_usage(cli, "FILE path too long");
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return mc_cli_fail(MC_EIO, "cannot create %s: %s", tmp, strerror(errno));
    }
    uint64_t applied = 0;
    rc = mc_engine_copy_to_fd(cli->eng, fd, &applied);
    if (rc == 0 && fsync(fd) != 0) {
        rc = MC_EIO;
    }
    struct stat st;
    if (rc == 0 && fstat(fd, &st) != 0) {
        rc = MC_EIO;
    }
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = MC_EIO;
    }
    if (rc != 0) {
        unlink(tmp);
        return mc_cli_fail(rc, "cannot write snapshot %s: %s", path, mc_strerror(rc));
    }
    if (cli->json) {
        return print_json(json_pack("{s:s, s:I, s:I}", "file", path, "applied_index",
                                    (json_int_t)applied, "size_bytes", (json_int_t)st.st_size));
    } else {
        printf("snapshot at applied index %" PRIu64 " saved to %s (%lld bytes)\n", applied, path,
               (long long)st.st_size);
    }
    return MC_CLI_EXIT_OK;
}

int mc_cli_cmd_snapshot_save(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                             size_t npos)
{
    (void)a;
    (void)npos;
    if (cli->offline) {
        return save_offline(cli, pos[0]);
    }
    struct mc_client *c = NULL;
    int rc = server(cli, &c);
    uint64_t total = 0;
    if (rc == 0) {
        rc = mc_client_snapshot_save(c, -1, pos[0], &total);
        if (rc != 0) {
            rc = mc_cli_client_error(cli, c, rc);
        }
    }
    if (rc != 0) {
        return be_fail(rc);
    }
    if (cli->json) {
        return print_json(json_pack("{s:s, s:I}", "file", pos[0], "size_bytes", (json_int_t)total));
    }
    printf("snapshot saved to %s (%llu bytes)\n", pos[0], (unsigned long long)total);
    return MC_CLI_EXIT_OK;
}

static int copy_file(int in, int out)
{
    char buf[1 << 16];
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n == 0) {
            return 0;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            return MC_EIO;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return errno == ENOSPC ? MC_ENOSPC : MC_EIO;
            }
            off += w;
        }
    }
}

/*
 * Restores FILE (an engine copy, as `snapshot save` writes) as DIR/engine/data.mdb. The copy
 * goes to a temp name first and is opened with the engine before it is renamed into place, so
 * a bad FILE leaves DIR as it was.
 */
int mc_cli_cmd_snapshot_restore(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                                size_t npos)
{
    (void)a;
    (void)npos;
    if (!cli->data_dir) {
        return mc_cli_usage(cli, "snapshot restore needs --data-dir DIR (the new data dir)");
    }
    const char *file = pos[0];
    char eng[4096], stage[4096], data[4096];
    if (snprintf(eng, sizeof(eng), "%s/engine", cli->data_dir) >= (int)sizeof(eng) ||
        snprintf(stage, sizeof(stage), "%s/engine.restore", cli->data_dir) >= (int)sizeof(stage) ||
        snprintf(data, sizeof(data), "%s/data.mdb", stage) >= (int)sizeof(data)) {
        return mc_cli_usage(cli, "--data-dir path too long");
    }
    int in = open(file, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        return mc_cli_fail(errno == ENOENT ? MC_ENOTFOUND : MC_EIO, "cannot open %s: %s", file,
                           strerror(errno));
    }
    char magic[8] = {0};
    if (pread(in, magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
        memcmp(magic, "MCSNAP01", 8) == 0) {
        /* A server snapshot (storage module format: header + engine image). */
        close(in);
        return mc_cli_fail(MC_EVERSION,
                           "%s is a server snapshot (MCSNAP01); restoring those needs the storage "
                           "module's snapshot reader, not in this build yet",
                           file);
    }
    struct stat st;
    if (stat(eng, &st) == 0) {
        close(in);
        return mc_cli_fail(MC_EEXIST, "%s already exists: restore only creates new data dirs", eng);
    }
    int prc = mc_cli_offline_prepare(cli->data_dir);
    if (prc != 0) {
        close(in);
        return be_fail(prc);
    }
    if (mkdir(stage, 0755) != 0 && errno != EEXIST) {
        close(in);
        return mc_cli_fail(MC_EIO, "cannot create %s: %s", stage, strerror(errno));
    }
    int out = open(data, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int rc = out < 0 ? MC_EIO : copy_file(in, out);
    if (rc == 0 && fsync(out) != 0) {
        rc = MC_EIO;
    }
    close(in);
    if (out >= 0) {
        close(out);
    }
    uint64_t applied = 0;
    void *conf = NULL;
    size_t conf_len = 0;
    if (rc == 0) {
        rc = mc_engine_read_meta(stage, &applied, &conf, &conf_len);
        free(conf);
    }
    if (rc == 0 && rename(stage, eng) != 0) {
        rc = MC_EIO;
    }
    if (rc != 0) {
        const char *why = mc_engine_last_error();
        unlink(data);
        char lock[4200];
        if (snprintf(lock, sizeof(lock), "%s/LOCK", stage) < (int)sizeof(lock)) {
            unlink(lock);
        }
        if (snprintf(lock, sizeof(lock), "%s/lock.mdb", stage) < (int)sizeof(lock)) {
            unlink(lock);
        }
        rmdir(stage);
        return mc_cli_fail(rc, "cannot restore %s: %s", file, why && *why ? why : mc_strerror(rc));
    }
    if (cli->json) {
        return print_json(json_pack("{s:s, s:I}", "data_dir", cli->data_dir, "applied_index",
                                    (json_int_t)applied));
    } else {
        printf("restored %s into %s (applied index %" PRIu64 ")\n", file, cli->data_dir, applied);
    }
    return MC_CLI_EXIT_OK;
}

int mc_cli_cmd_check(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                     size_t npos)
{
    (void)a;
    (void)pos;
    (void)npos;
    if (!cli->offline) {
        return check_servers(cli);
    }
    int rc = mc_cli_offline_open(cli, false);
    if (rc != 0) {
        return be_fail(rc);
    }
    uint64_t hash = 0, applied = 0;
    rc = mc_engine_state_hash(cli->eng, &hash, &applied);
    if (rc != 0) {
        return be_fail(rc);
    }
    if (cli->json) {
        char hex[17];
        snprintf(hex, sizeof(hex), "%016" PRIx64, hash);
        return print_json(
            json_pack("{s:I, s:s}", "applied_index", (json_int_t)applied, "state_hash", hex));
    } else {
        printf("applied_index %" PRIu64 "  state_hash %016" PRIx64 "\n", applied, hash);
    }
    return MC_CLI_EXIT_OK;
}
