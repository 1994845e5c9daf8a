/* admin.c: cluster membership, snapshot and check commands. Offline (--data-dir) the snapshot and
 * check commands work on a stopped node's engine; the rest need servers. */
#include "cli/admin.h"
#include "cli/backend.h"
#include "cli/output.h"
#include "metacenter/error.h"

#include <errno.h>
#include <jansson.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

const struct mc_flag_spec mc_cli_cluster_add_flags[] = {
    {"learner", 0, 0, NULL, "join as a non-voting learner"},
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

static int server_unavailable(const struct mc_cli *cli)
{
    return mc_cli_fail(
        MC_EUNAVAIL, "'%s' against %s is not available in this build yet (no client library)",
        mc_cli_cmd_name(cli->cmd), cli->endpoints ? cli->endpoints : MC_CLI_DEFAULT_ENDPOINT);
}

static int parse_id(const struct mc_cli *cli, const char *s, uint64_t *id)
{
    if (mc_args_parse_u64(s, 1, UINT64_MAX, id) != 0) {
        return mc_cli_usage(cli, "member ID must be a positive integer, not '%.40s'", s);
    }
    return 0;
}

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
    return server_unavailable(cli);
}

int mc_cli_cmd_cluster_change(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                              size_t npos)
{
    (void)a;
    (void)npos;
    uint64_t id;
    if (parse_id(cli, pos[0], &id) != 0) {
        return MC_CLI_EXIT_USAGE;
    }
    if (cli->offline) {
        return mc_cli_usage(cli, "cluster commands talk to servers: use --endpoints, not "
                                 "--data-dir");
    }
    return server_unavailable(cli);
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
    return server_unavailable(cli);
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
    struct stat st;
    if (stat(eng, &st) == 0) {
        close(in);
        return mc_cli_fail(MC_EEXIST, "%s already exists: restore only creates new data dirs", eng);
    }
    if ((mkdir(cli->data_dir, 0755) != 0 && errno != EEXIST) ||
        (mkdir(stage, 0755) != 0 && errno != EEXIST)) {
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
        return server_unavailable(cli);
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
