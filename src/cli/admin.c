/* admin.c: cluster membership, snapshot and check commands. Offline (--data-dir) the snapshot and
 * check commands work on a stopped node's engine; the rest need servers. */
#include "cli/admin.h"
#include "cli/backend.h"
#include "cli/output.h"
#include "node/backup.h"
#include "node/seal.h"
#include "util/checksum.h"
#include "util/clock.h"
#include "util/log.h"
#include "metacenter/client.h"
#include "metacenter/error.h"

#include <assert.h>
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
    {"learner", 0, 0, NULL,
     "join as a non-voting learner (default: learner, then promoted once "
     "caught up)"},
    {"client-addr", 1, 0, "HOST:PORT", "the new member's client address (for redirects)"},
    {"wait-ms", 1, 0, "N", "voter: how long to wait for the learner to catch up (default 300000)"},
    {NULL, 0, 0, NULL, NULL},
};

const struct mc_flag_spec mc_cli_snapshot_restore_flags[] = {
    {"node-id", 1, 0, "N", "the restored node's id (default 1)"},
    {"listen-peer", 1, 0, "HOST:PORT", "its peer address, recorded in the membership"},
    {NULL, 0, 0, NULL, NULL},
};

const struct mc_flag_spec mc_cli_cluster_promote_flags[] = {
    {"wait", 0, 0, NULL, "while the learner lags (LearnerLagging), wait and retry"},
    {"wait-ms", 1, 0, "N", "with --wait: give up after N ms (default 300000)"},
    {NULL, 0, 0, NULL, NULL},
};

#define PROMOTE_WAIT_DEFAULT_MS 300000
#define PROMOTE_RETRY_MS        200
#define CONF_RETRY_MS           10000 /* retry ConfChangeInProgress this long */

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

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Per-member probes use a short deadline so one dead node does not stall the whole command. */
#define PROBE_TIMEOUT_MS 1000

/* Opens a client of the member at addr (its client address) whose requests get timeout_ms, or
 * --timeout-ms when shorter. no_retry: a request's first failed attempt is final (client.h). */
static int open_probe(struct mc_cli *cli, const char *addr, uint64_t timeout_ms, bool no_retry,
                      struct mc_client **c)
{
    *c = NULL;
    if (!addr || !*addr) {
        return MC_ENOTFOUND;
    }
    struct mc_client_opts o;
    mc_cli_client_opts(cli, &o);
    if (cli->timeout_ms && cli->timeout_ms < timeout_ms) {
        timeout_ms = cli->timeout_ms;
    }
    assert(timeout_ms > 0 && timeout_ms <= UINT32_MAX);
    o.request_timeout_ms = (uint32_t)timeout_ms;
    if (o.connect_timeout_ms > o.request_timeout_ms) {
        o.connect_timeout_ms = o.request_timeout_ms;
    }
    o.no_retry = no_retry;
    int rc = mc_client_open(addr, &o, c);
    if (rc != 0) {
        *c = NULL;
    }
    return rc;
}

/* Asks the member at addr (its client address) for its own status. */
static int probe_status(struct mc_cli *cli, const char *addr, struct mc_cluster_status *out)
{
    struct mc_client *c = NULL;
    int rc = open_probe(cli, addr, PROBE_TIMEOUT_MS, false, &c);
    if (rc == 0) {
        rc = mc_client_cluster_status(c, 0, out);
        mc_client_close(c);
    }
    return rc;
}

static int probe_check(struct mc_cli *cli, const char *addr, uint64_t index,
                       struct mc_check_result *out)
{
    struct mc_client *c = NULL;
    int rc = open_probe(cli, addr, PROBE_TIMEOUT_MS, false, &c);
    if (rc == 0) {
        rc = mc_client_check(c, 0, index, out);
        mc_client_close(c);
    }
    return rc;
}

/* A member's state hash is a whole-engine scan (off the member's loop): seconds at 1M objects,
 * so it gets this long unless --timeout-ms says otherwise. The member is pinged first with the
 * probe deadline: a dead or wedged one still costs PROBE_TIMEOUT_MS at most. Busy (the member
 * hashes already, for its automatic check or another request) and SlowDown are retried until
 * then; each try gets the time left. The requests are not retried by the client (no_retry): a
 * member that stops (ShuttingDown), dies or restarts while it hashes is reported at once, not
 * retried (the hash it was asked for is gone) until the deadline. */
#define CHECK_HASH_TIMEOUT_MS 120000
#define CHECK_BUSY_PAUSE_MS   100

/* Returns 0 (out filled), MC_EBUSY when the member stayed busy until the deadline (SlowDown
 * counts as busy: a loaded member, waited for the same way), or the error that ended the probe
 * (MC_EIO: connection lost or refused; MC_ESHUTDOWN; MC_ETIMEOUT...). */
static int probe_hash(struct mc_cli *cli, const char *addr, struct mc_check_result *out)
{
    struct mc_client *c = NULL;
    int rc = open_probe(cli, addr, PROBE_TIMEOUT_MS, true, &c);
    if (rc == 0) {
        struct mc_ping_info ping;
        rc = mc_client_ping(c, 0, &ping);
        if (rc == MC_ELIMIT) {
            rc = 0; /* SlowDown: it answered, so it is there; the hash loop waits for it */
        }
    }
    uint64_t deadline_ms =
        mc_mono_ms() + (cli->timeout_ms ? cli->timeout_ms : CHECK_HASH_TIMEOUT_MS);
    bool busy = false; /* the last answer was Busy (or SlowDown) */
    while (rc == 0) {
        uint64_t now = mc_mono_ms();
        if (now >= deadline_ms) {
            /* The pause overshot the deadline: a member that only answered Busy is busy. */
            rc = busy ? MC_EBUSY : MC_ETIMEOUT;
            break;
        }
        mc_client_set_request_timeout(c, (uint32_t)(deadline_ms - now));
        rc = mc_client_check(c, 0, 0, out);
        busy = rc == MC_EBUSY || rc == MC_ELIMIT;
        if (busy) {
            rc = MC_EBUSY;
        }
        if (!busy || mc_mono_ms() + CHECK_BUSY_PAUSE_MS >= deadline_ms) {
            break;
        }
        sleep_ms(CHECK_BUSY_PAUSE_MS);
        rc = 0;
    }
    if (c) {
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

/* A member's view may lack some client addresses (a node learns them from its peers' HELLO):
 * fill them in by asking each --endpoints address which node it is. */
static void fill_addresses(struct mc_cli *cli, struct mc_cluster_status *st)
{
    bool missing = false;
    for (uint32_t i = 0; i < st->n_members && i < MC_CLUSTER_MAX_MEMBERS; i++) {
        missing |= !st->members[i].client_addr[0];
    }
    const char *eps = mc_cli_endpoints(cli);
    while (missing && eps && *eps) {
        char addr[MC_ADDR_MAX];
        size_t len = strcspn(eps, ",");
        bool known = false;
        if (len > 0 && len < sizeof(addr)) {
            memcpy(addr, eps, len);
            addr[len] = 0;
            for (uint32_t i = 0; i < st->n_members && i < MC_CLUSTER_MAX_MEMBERS; i++) {
                known |= strcmp(st->members[i].client_addr, addr) == 0;
            }
        }
        if (len > 0 && len < sizeof(addr) && !known) {
            struct mc_client *c = NULL;
            struct mc_ping_info p;
            if (open_probe(cli, addr, PROBE_TIMEOUT_MS, false, &c) == 0 &&
                mc_client_ping(c, 0, &p) == 0) {
                for (uint32_t i = 0; i < st->n_members && i < MC_CLUSTER_MAX_MEMBERS; i++) {
                    if (st->members[i].id == p.node_id && !st->members[i].client_addr[0]) {
                        snprintf(st->members[i].client_addr, MC_ADDR_MAX, "%s", addr);
                    }
                }
            }
            if (c) {
                mc_client_close(c);
            }
        }
        eps += len + (eps[len] == ',');
    }
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
    fill_addresses(cli, st);
    const struct mc_member_status *l = find_member(st, st->leader_id);
    if (st->leader_id && st->node_id != st->leader_id && l) {
        struct mc_cluster_status *ls = malloc(sizeof(*ls));
        if (ls && probe_status(cli, l->client_addr, ls) == 0 && ls->node_id == st->leader_id) {
            *st = *ls;
            fill_addresses(cli, st);
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
    /* The leader's automatic consistency check (--check-interval-ms): a check request at index
     * UINT64_MAX returns its alarm (node_id = the member that differed, 0 = none). */
    struct mc_check_result alarm;
    memset(&alarm, 0, sizeof(alarm));
    for (uint32_t i = 0; i < n; i++) {
        /* Only a leader that just answered: a dead one would cost another probe timeout. */
        if (rows[i].id == st->leader_id && rows[i].probed &&
            probe_check(cli, st->members[i].client_addr, UINT64_MAX, &alarm) != 0) {
            memset(&alarm, 0, sizeof(alarm));
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
        char hex[17];
        snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)alarm.hash);
        json_t *aj = alarm.node_id
                         ? json_pack("{s:s, s:I, s:I, s:s}", "alarm", "consistency_check_failed",
                                     "member", (json_int_t)alarm.node_id, "index",
                                     (json_int_t)alarm.index, "member_hash", hex)
                         : json_null();
        ec = print_json(
            json_pack("{s:o, s:I, s:o, s:o}", "leader",
                      st->leader_id ? json_integer((json_int_t)st->leader_id) : json_null(), "term",
                      (json_int_t)st->term, "members", members, "alarm", aj));
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
    if (alarm.node_id) {
        printf("ALARM consistency_check_failed: member %llu's state hash at index %llu differs "
               "from the leader's (run check; wipe and re-add that member)\n",
               (unsigned long long)alarm.node_id, (unsigned long long)alarm.index);
    }
out:
    free(st);
    free(rows);
    return ec;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Promote id; with wait, retry while the leader says the learner lags (or another change is
 * committing), printing its progress on stderr, until wait_ms passed.
 */
static int promote_wait(struct mc_cli *cli, struct mc_client *c, uint64_t id, bool wait,
                        uint64_t wait_ms)
{
    uint64_t deadline = now_ms() + wait_ms;
    uint64_t last_print = 0;
    for (;;) {
        int rc = mc_client_promote(c, id);
        if (rc == 0 || !wait || (rc != MC_ELAGGING && rc != MC_ECONFCHANGE) ||
            now_ms() >= deadline) {
            return rc;
        }
        if (!cli->json && now_ms() - last_print >= 2000) {
            const struct mc_client_error *e = mc_client_last_error(c);
            fprintf(stderr, "waiting for learner %llu to catch up: %s\n", (unsigned long long)id,
                    e && e->message[0] ? e->message : mc_error_name(rc));
            last_print = now_ms();
        }
        sleep_ms(PROMOTE_RETRY_MS);
    }
}

/* After a change: warn about voter counts that tolerate fewer failures than they suggest.
 * On stdout, after the result line: the command succeeded (stderr is for failures). */
static void warn_about_size(struct mc_cli *cli)
{
    struct mc_cluster_status *st = calloc(1, sizeof(*st));
    if (!st || leader_view(cli, st) != 0) {
        free(st);
        return;
    }
    uint32_t voters = 0, down = 0;
    for (uint32_t i = 0; i < st->n_members && i < MC_CLUSTER_MAX_MEMBERS; i++) {
        if (!st->members[i].learner) {
            voters++;
            down += st->node_id == st->leader_id && !st->members[i].reachable;
        }
    }
    if (voters == 2) {
        printf("warning: 2 voters tolerate no failure (a majority of 2 is 2): add a "
               "third voter\n");
    } else if (voters > 2 && voters % 2 == 0) {
        printf("warning: %u voters tolerate %u failed member(s), no more than %u voters do: "
               "use an odd number of voters\n",
               voters, (voters - 1) / 2, voters - 1);
    }
    if (down > 0) {
        printf("warning: %u of %u voters are unreachable\n", down, voters);
    }
    free(st);
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
    uint64_t wait_ms = PROMOTE_WAIT_DEFAULT_MS;
    const char *wv = mc_args_get(a, "wait-ms");
    if (wv && mc_args_parse_u64(wv, 0, UINT32_MAX, &wait_ms) != 0) {
        return mc_cli_usage(cli, "--wait-ms must be a number of milliseconds");
    }
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
    bool voters_changed = true;
    if (strcmp(what, "add") == 0) {
        /* Every voter goes through the learner stage: it gets the snapshot and the log first,
         * and is promoted only once within the leader's --ready-max-lag. */
        bool learner = mc_args_has(a, "learner");
        uint64_t deadline = now_ms() + CONF_RETRY_MS;
        while ((rc = mc_client_add_member(c, id, pos[1], client_addr ? client_addr : "", true)) ==
                   MC_ECONFCHANGE &&
               now_ms() < deadline) {
            sleep_ms(PROMOTE_RETRY_MS);
        }
        if (rc == MC_EEXIST && !learner) {
            rc = 0; /* already a learner (e.g. an earlier add that timed out): promote it */
        }
        if (rc == 0 && !learner) {
            if (!cli->json) {
                printf("added %llu as a learner; promoting it once it has caught up\n",
                       (unsigned long long)id);
            }
            rc = promote_wait(cli, c, id, true, wait_ms);
        }
        voters_changed = !learner;
    } else if (strcmp(what, "promote") == 0) {
        rc = promote_wait(cli, c, id, mc_args_has(a, "wait"), wait_ms);
    } else if (strcmp(what, "remove") == 0) {
        /* A leader that just took over (e.g. from a removed leader) must commit an entry of its
         * own term before the next change: ConfChangeInProgress for a moment. */
        uint64_t deadline = now_ms() + CONF_RETRY_MS;
        while ((rc = mc_client_remove_member(c, id)) == MC_ECONFCHANGE && now_ms() < deadline) {
            sleep_ms(PROMOTE_RETRY_MS);
        }
    } else {
        rc = mc_client_transfer_leader(c, id);
        voters_changed = false;
    }
    if (rc != 0) {
        return be_fail(mc_cli_client_error(cli, c, rc));
    }
    if (cli->json) {
        return print_json(
            json_pack("{s:s, s:I, s:b}", "action", what, "id", (json_int_t)id, "ok", 1));
    }
    printf("cluster %s %llu: done\n", what, (unsigned long long)id);
    if (voters_changed) {
        warn_about_size(cli);
    }
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
    int why[MC_CLUSTER_MAX_MEMBERS]; /* probe_hash's code: 0, or why there is no hash */
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
            if (round > 0 && !ok[i]) {
                continue; /* it failed (or stayed Busy) for a whole wait: not once per round */
            }
            memset(&res[i], 0, sizeof(res[i]));
            why[i] = probe_hash(cli, st->members[i].client_addr, &res[i]);
            ok[i] = why[i] == 0;
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
    uint32_t reachable = 0, busy = 0;
    bool consistent = same_index;
    for (uint32_t i = 0; i < n; i++) {
        busy += why[i] == MC_EBUSY;
        if (ok[i]) {
            reachable++;
            for (uint32_t j = 0; j < i; j++) {
                if (ok[j] && res[j].index == res[i].index && res[j].hash != res[i].hash) {
                    consistent = false;
                }
            }
        }
    }
    /* The odd ones out: members whose hash differs from the most common one at that index. */
    bool differs[MC_CLUSTER_MAX_MEMBERS] = {false};
    char odd[256] = "";
    if (!consistent && same_index) {
        uint32_t best = 0, best_votes = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t votes = 0;
            for (uint32_t j = 0; j < n; j++) {
                votes += ok[i] && ok[j] && res[j].hash == res[i].hash;
            }
            if (votes > best_votes) {
                best = i;
                best_votes = votes;
            }
        }
        size_t len = 0;
        for (uint32_t i = 0; i < n; i++) {
            differs[i] = ok[i] && res[i].hash != res[best].hash;
            if (differs[i] && len < sizeof(odd)) {
                len += (size_t)snprintf(odd + len, sizeof(odd) - len, "%s%llu", len ? ", " : "",
                                        (unsigned long long)st->members[i].id);
            }
        }
        if (best_votes * 2 <= reachable) {
            snprintf(odd, sizeof(odd), "(no hash has a majority: compare them with the leader)");
        }
    }
    int ec = MC_CLI_EXIT_OK;
    if (cli->json) {
        json_t *members = json_array();
        for (uint32_t i = 0; i < n && members; i++) {
            char hex[17];
            snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)res[i].hash);
            json_array_append_new(
                members, json_pack("{s:I, s:s, s:b, s:o, s:o, s:b, s:o}", "id",
                                   (json_int_t)st->members[i].id, "address",
                                   st->members[i].client_addr, "reachable", ok[i], "applied_index",
                                   ok[i] ? json_integer((json_int_t)res[i].index) : json_null(),
                                   "state_hash", ok[i] ? json_string(hex) : json_null(), "differs",
                                   differs[i], "error",
                                   ok[i] ? json_null() : json_string(mc_error_name(why[i]))));
        }
        ec = print_json(json_pack("{s:b, s:o}", "consistent", consistent && reachable == n,
                                  "members", members));
    } else {
        for (uint32_t i = 0; i < n; i++) {
            if (ok[i]) {
                printf("member %llu  %s  applied_index %llu  state_hash %016llx%s\n",
                       (unsigned long long)st->members[i].id, st->members[i].client_addr,
                       (unsigned long long)res[i].index, (unsigned long long)res[i].hash,
                       differs[i] ? "  DIFFERS" : "");
            } else if (why[i] == MC_EBUSY) {
                printf("member %llu  %s  busy (hashing for the automatic check or another "
                       "request)\n",
                       (unsigned long long)st->members[i].id, st->members[i].client_addr);
            } else {
                printf("member %llu  %s  unreachable (%s)\n", (unsigned long long)st->members[i].id,
                       st->members[i].client_addr, mc_error_name(why[i]));
            }
        }
    }
    if (ec == MC_CLI_EXIT_OK) {
        if (!consistent && same_index) {
            ec = mc_cli_fail(MC_ECORRUPT,
                             "replicas disagree at the same applied index; differing from the "
                             "majority: %s (stop it, wipe its data dir, re-add it)",
                             odd);
        } else if (!consistent) {
            ec = mc_cli_fail(MC_EBUSY, "replicas kept applying; no common applied index to "
                                       "compare (retry when writes pause)");
        } else if (reachable + busy < n) {
            ec = mc_cli_fail(MC_EUNAVAIL, "%u of %u members unreachable%s%s", n - reachable - busy,
                             n, busy ? " (and some busy)" : "",
                             reachable ? "; checked the others" : "");
        } else if (busy) {
            ec = mc_cli_fail(MC_EBUSY,
                             "%u of %u members stayed busy hashing until the deadline%s (retry, "
                             "or a longer --timeout-ms)",
                             busy, n, reachable ? "; checked the others" : "");
        } else if (!cli->json) {
            printf("consistent: %u members agree\n", n);
        }
    }
    free(st);
    return ec;
}

/* Offline: the stopped node's engine as a snapshot file (same format as a server's). */
static int save_offline(struct mc_cli *cli, const char *path)
{
    int rc = mc_cli_offline_open(cli, false);
    if (rc != 0) {
        return be_fail(rc);
    }
    /* The export stamps what it copies with a fresh checksum that restore then trusts, so copy
     * only an engine the node itself would trust: one a clean stop sealed (the dir is locked
     * now, nothing changes it). Without a seal the last stop was unclean, and an engine run
     * without fsync (NOSYNC|WRITEMAP) can hold stale but well-formed pages after a power loss;
     * the node rebuilds such an engine from its image and WAL at start (node.c open_storage). */
    rc = mc_seal_check(cli->data_dir);
    if (rc == MC_ENOTFOUND) {
        return mc_cli_fail(rc,
                           "%s/engine.seal is missing: the node did not stop cleanly, so its "
                           "engine file may hold stale pages; start the node once so it rebuilds "
                           "from image + WAL (then stop it), or save from a running member "
                           "with --endpoints",
                           cli->data_dir);
    }
    if (rc != 0) {
        return mc_cli_fail(rc,
                           "%s/engine/data.mdb does not match %s/engine.seal: it changed since "
                           "the node stopped; save from a running member with --endpoints, or "
                           "wipe this member and let it rejoin",
                           cli->data_dir, cli->data_dir);
    }
    struct mc_snap_info *info = calloc(1, sizeof(*info));
    rc = info ? mc_backup_export(cli->eng, path, info) : MC_ENOMEM;
    if (rc != 0) {
        free(info);
        return mc_cli_fail(rc, "cannot write snapshot %s: %s", path, mc_strerror(rc));
    }
    int ec = MC_CLI_EXIT_OK;
    if (cli->json) {
        char hex[17];
        snprintf(hex, sizeof(hex), "%016" PRIx64, info->data_checksum);
        ec = print_json(json_pack("{s:s, s:I, s:I, s:s, s:b}", "file", path, "index",
                                  (json_int_t)info->index, "size_bytes",
                                  (json_int_t)info->file_size, "checksum", hex, "verified", 1));
    } else {
        printf("snapshot at applied index %" PRIu64 " saved to %s (%" PRIu64
               " bytes, checksum %016" PRIx64 " verified)\n",
               info->index, path, info->file_size, info->data_checksum);
    }
    free(info);
    return ec;
}

/* Streaming a server's snapshot into a file, with progress on a terminal. */
struct save_ctx {
    FILE *f;
    struct mc_digest digest; /* of the bytes received: the server's checksum covers the file */
    bool done, progress;
    int status;
    int endpoint;       /* the member that answered (-1: none) */
    uint64_t min_index; /* a Busy answer's: the image index to ask that member for (0: none) */
    uint64_t next_offset, total, checksum, last_print_ms;
    char message[256];
};

static void save_cb(void *arg, const struct mc_client_result *r)
{
    struct save_ctx *s = arg;
    s->endpoint = r->endpoint;
    if (r->status != 0) {
        s->done = true;
        s->status = r->status;
        snprintf(s->message, sizeof(s->message), "%s", r->message);
        (void)mc_client_decode_save_busy(r, &s->min_index); /* none from an old server */
        return;
    }
    struct mc_snapshot_chunk ch;
    if (s->status == 0 && mc_client_decode_chunk(r, &ch) != 0) {
        s->status = MC_EPROTO;
    }
    if (s->status == 0 && ch.offset != s->next_offset) {
        s->status = MC_EPROTO;
    }
    if (s->status == 0 && ch.len && fwrite(ch.data, 1, ch.len, s->f) != ch.len) {
        s->status = MC_EIO;
    }
    if (s->status == 0) {
        mc_digest_update(&s->digest, ch.data, ch.len);
    }
    if (s->status == 0) {
        s->next_offset += ch.len;
        s->total = ch.total_bytes;
        if (!r->more) {
            s->checksum = ch.checksum;
        }
    }
    if (s->progress && (now_ms() - s->last_print_ms >= 200 || !r->more) && s->total) {
        fprintf(stderr, "\rsnapshot: %llu / %llu bytes (%.0f%%)",
                (unsigned long long)s->next_offset, (unsigned long long)s->total,
                100.0 * (double)s->next_offset / (double)s->total);
        s->last_print_ms = now_ms();
    }
    if (!r->more) {
        s->done = true;
    }
}

#define SAVE_BUSY_WAIT_MS 120000 /* a server answers Busy while it makes a fresh snapshot */

static int save_stream(struct mc_cli *cli, struct mc_client *c, const char *tmp, struct save_ctx *s)
{
    uint64_t deadline = now_ms() + SAVE_BUSY_WAIT_MS;
    /* The first try asks for an image as fresh as the member's applied index when it arrives
     * (min index 0); its Busy answer names that index, and every retry asks the same member
     * for an image at it or later, so the node keeps nothing per save (docs/protocol.md).
     * Another member has its own applied index: a save moved there starts again with 0. */
    int pin = -1;
    uint64_t min_index = 0;
    for (;;) {
        memset(s, 0, sizeof(*s));
        s->min_index = min_index;
        s->progress = !cli->json && isatty(2);
        s->f = fopen(tmp, "wb");
        if (!s->f) {
            return MC_EIO;
        }
        if (mc_digest_init(&s->digest) != 0) {
            fclose(s->f);
            return MC_ENOMEM;
        }
        s->endpoint = -1;
        int rc = mc_client_snapshot_from_async(c, pin, min_index, save_cb, s);
        while (rc == 0 && !s->done) {
            rc = mc_client_poll(c, 1000);
            rc = rc < 0 ? rc : 0;
        }
        if (rc == 0) {
            rc = s->status;
        }
        if (rc == 0 && (fflush(s->f) != 0 || fsync(fileno(s->f)) != 0)) {
            rc = MC_EIO;
        }
        fclose(s->f);
        uint64_t got = mc_digest_final(&s->digest);
        if (rc == 0 && (got != s->checksum || s->next_offset != s->total)) {
            rc = MC_ECORRUPT;
            snprintf(s->message, sizeof(s->message),
                     "the bytes received do not match the server's checksum");
        }
        if (s->progress) {
            fputc('\n', stderr);
        }
        if (pin >= 0 && (rc == MC_EIO || rc == MC_ETIMEOUT) && now_ms() < deadline) {
            pin = -1; /* that member went away: ask another, fresh as of then */
            min_index = 0;
            continue;
        }
        if (rc != MC_EBUSY || now_ms() >= deadline) {
            return rc;
        }
        if (s->endpoint >= 0) {
            pin = s->endpoint;
            min_index = s->min_index; /* kept when a Busy carries none (an old server) */
        }
        sleep_ms(200); /* the server is making a fresh snapshot */
    }
}

static int save_online(struct mc_cli *cli, const char *path)
{
    struct mc_client *c = NULL;
    int rc = server(cli, &c);
    if (rc != 0) {
        return be_fail(rc);
    }
    char tmp[4200];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        return mc_cli_usage(cli, "FILE path too long");
    }
    struct save_ctx s;
    rc = save_stream(cli, c, tmp, &s);
    if (rc != 0) {
        unlink(tmp);
        return mc_cli_fail(rc, "snapshot save failed: %s",
                           s.message[0] ? s.message : mc_strerror(rc));
    }
    /* The stream matched the server's checksum, which only says the bytes arrived as sent.
     * Every file is also checked on disk as a snapshot (magic, header checksum, data checksum)
     * before it takes the final name: a stream that is not one (no MCSNAP01 header) is refused,
     * never kept as a backup that restore would reject later. */
    struct mc_snap_info *info = calloc(1, sizeof(*info));
    rc = info ? mc_snap_read_info(tmp, true, info) : MC_ENOMEM;
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = MC_EIO;
    }
    if (rc != 0) {
        char magic[8] = {0};
        FILE *f = fopen(tmp, "rb");
        bool is_snap = f && fread(magic, 1, sizeof(magic), f) == sizeof(magic) &&
                       memcmp(magic, "MCSNAP01", sizeof(magic)) == 0;
        if (f) {
            fclose(f);
        }
        unlink(tmp);
        free(info);
        return mc_cli_fail(rc, "the snapshot received %s (%s); nothing written",
                           is_snap ? "does not verify"
                                   : "is not a snapshot file (no MCSNAP01 header)",
                           mc_strerror(rc));
    }
    int ec = MC_CLI_EXIT_OK;
    if (cli->json) {
        char hex[17];
        snprintf(hex, sizeof(hex), "%016" PRIx64, info->data_checksum);
        ec = print_json(json_pack("{s:s, s:I, s:I, s:s, s:b}", "file", path, "index",
                                  (json_int_t)info->index, "size_bytes",
                                  (json_int_t)info->file_size, "checksum", hex, "verified", 1));
    } else {
        printf("snapshot at index %" PRIu64 " saved to %s (%" PRIu64 " bytes, checksum %016" PRIx64
               " verified)\n",
               info->index, path, info->file_size, info->data_checksum);
    }
    free(info);
    return ec;
}

int mc_cli_cmd_snapshot_save(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                             size_t npos)
{
    (void)a;
    (void)npos;
    mc_log_set_level(MC_LOG_WARN); /* the storage module's info lines are for servers */
    return cli->offline ? save_offline(cli, pos[0]) : save_online(cli, pos[0]);
}

/*
 * Restores FILE (a snapshot from `snapshot save`) as a new single-node cluster in DIR, offline
 * like etcdutl: start it with `serve --data-dir DIR`, then grow it with `cluster add`.
 */
int mc_cli_cmd_snapshot_restore(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                                size_t npos)
{
    (void)npos;
    if (!cli->data_dir) {
        return mc_cli_usage(cli, "snapshot restore needs --data-dir DIR (the new data dir)");
    }
    mc_log_set_level(MC_LOG_WARN); /* the storage module's info lines are for servers */
    uint64_t node_id = 1;
    const char *v = mc_args_get(a, "node-id");
    if (v && mc_args_parse_u64(v, 1, UINT64_MAX, &node_id) != 0) {
        return mc_cli_usage(cli, "--node-id must be a positive integer");
    }
    const char *peer = mc_args_get(a, "listen-peer");
    if (peer && (strlen(peer) >= MC_ADDR_MAX || !strchr(peer, ':'))) {
        return mc_cli_usage(cli, "--listen-peer must be HOST:PORT");
    }
    struct mc_restore_info ri;
    char err[512] = "";
    int rc = mc_backup_restore(pos[0], cli->data_dir, node_id, peer, &ri, err, sizeof(err));
    if (rc != 0) {
        return mc_cli_fail(rc, "%s", err[0] ? err : mc_strerror(rc));
    }
    char hex[17];
    snprintf(hex, sizeof(hex), "%016" PRIx64, ri.state_hash);
    if (cli->json) {
        return print_json(json_pack("{s:s, s:I, s:I, s:I, s:s}", "data_dir", cli->data_dir,
                                    "node_id", (json_int_t)node_id, "applied_index",
                                    (json_int_t)ri.applied_index, "raft_index",
                                    (json_int_t)ri.raft_index, "state_hash", hex));
    }
    printf("restored %s into %s: node %" PRIu64 ", a new single-node cluster; data at applied "
           "index %" PRIu64 ", state_hash %s\n"
           "start it with: metacenter serve --data-dir %s --node-id %" PRIu64 " ...; then grow it "
           "with cluster add\n",
           pos[0], cli->data_dir, node_id, ri.applied_index, hex, cli->data_dir, node_id);
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
