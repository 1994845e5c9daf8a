/* output.c: prints CLI results: engine JSON with --json (identical on every interface), else
 * aligned human-readable columns. */
#include "cli/output.h"
#include "metacenter/error.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

char *mc_cli_escape(const char *s)
{
    if (!s) {
        s = "";
    }
    size_t len = strlen(s);
    char *out = malloc(len * 4 + 1); /* worst case: every byte as \xNN */
    if (!out) {
        return NULL;
    }
    char *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else if (*p == '\t') {
            *o++ = '\\';
            *o++ = 't';
        } else if (*p == '\\') {
            *o++ = '\\';
            *o++ = '\\';
        } else if (*p < 0x20 || *p == 0x7f) {
            o += sprintf(o, "\\x%02x", *p);
        } else {
            *o++ = (char)*p;
        }
    }
    *o = '\0';
    return out;
}

void mc_table_init(struct mc_table *t, size_t ncols, const char *const *header)
{
    assert(ncols > 0 && ncols <= MC_TABLE_MAX_COLS);
    memset(t, 0, sizeof(*t));
    t->ncols = ncols;
    for (size_t i = 0; i < ncols; i++) {
        t->header[i] = header[i];
    }
}

int mc_table_row(struct mc_table *t, const char *const *cells)
{
    if (t->nrows == t->cap_rows) {
        size_t cap = t->cap_rows ? t->cap_rows * 2 : 64;
        char **c = realloc(t->cells, cap * t->ncols * sizeof(*c));
        if (!c) {
            return MC_ENOMEM;
        }
        t->cells = c;
        t->cap_rows = cap;
    }
    char **row = t->cells + t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        row[i] = mc_cli_escape(cells[i]);
        if (!row[i]) {
            for (size_t j = 0; j < i; j++) {
                free(row[j]);
            }
            return MC_ENOMEM;
        }
    }
    t->nrows++;
    return 0;
}

/* Display width of a UTF-8 string: counts code points (good enough for aligned columns). */
static size_t width(const char *s)
{
    size_t w = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        w += (*p & 0xC0) != 0x80;
    }
    return w;
}

static void cell(FILE *out, const char *s, size_t w, bool right, bool last)
{
    size_t pad = w - width(s);
    if (right) {
        fprintf(out, "%*s%s", (int)pad, "", s);
    } else if (last) {
        fputs(s, out);
    } else {
        fprintf(out, "%s%*s", s, (int)pad, "");
    }
}

void mc_table_print(struct mc_table *t, FILE *out)
{
    size_t w[MC_TABLE_MAX_COLS];
    for (size_t c = 0; c < t->ncols; c++) {
        w[c] = width(t->header[c]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t cw = width(t->cells[r * t->ncols + c]);
            w[c] = cw > w[c] ? cw : w[c];
        }
    }
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = r == 0 ? t->header[c] : t->cells[(r - 1) * t->ncols + c];
            cell(out, s, w[c], t->right[c], c + 1 == t->ncols);
            fputs(c + 1 == t->ncols ? "\n" : "  ", out);
        }
    }
    mc_table_free(t);
}

void mc_table_free(struct mc_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    t->cells = NULL;
    t->nrows = t->cap_rows = 0;
}

void mc_cli_fmt_time(int64_t ns, char *buf, size_t len)
{
    time_t sec = (time_t)(ns / 1000000000);
    long frac = (long)(ns % 1000000000);
    if (frac < 0) {
        frac += 1000000000;
        sec -= 1;
    }
    struct tm tm;
    if (!gmtime_r(&sec, &tm)) {
        snprintf(buf, len, "%" PRId64 "ns", ns);
        return;
    }
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03ldZ", base, frac / 1000000);
}

int mc_cli_print_json(char *json)
{
    if (!json) {
        fprintf(stderr, "%s: cannot render JSON\n", mc_error_name(MC_ENOMEM));
        return MC_CLI_EXIT_ERROR;
    }
    puts(json);
    free(json);
    return MC_CLI_EXIT_OK;
}

/* "key: value" lines with the values aligned. */
static void field(const char *name, const char *value)
{
    char *v = mc_cli_escape(value);
    printf("%-16s %s\n", name, v ? v : "?");
    free(v);
}

static void field_u64(const char *name, uint64_t v)
{
    char buf[32];
    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    field(name, buf);
}

int mc_cli_print_version(const struct mc_cli *cli, const struct mc_version *v)
{
    if (cli->json) {
        return mc_cli_print_json(mc_version_json(v, MC_JSON_COMPACT));
    }
    const struct mc_object_meta *m = &v->meta;
    char t[64], buf[160];
    mc_cli_fmt_time(v->mod_time_ns, t, sizeof(t));
    snprintf(buf, sizeof(buf), "%s (%" PRId64 ")", t, v->mod_time_ns);
    field("bucket:", v->bucket);
    field("key:", v->key);
    field("version_id:", v->version_id);
    field("delete_marker:", v->is_delete_marker ? "true" : "false");
    field("modified:", buf);
    if (!v->is_delete_marker) {
        field_u64("size:", m->size);
        field("etag:", m->etag);
        field("content_type:", m->content_type);
        field("storage_class:", m->storage_class);
        for (uint32_t i = 0; i < m->n_user_meta; i++) {
            char name[64];
            char *k = mc_cli_escape(m->user_meta[i].key);
            snprintf(name, sizeof(name), "meta[%s]:", k ? k : "?");
            free(k);
            field(name, m->user_meta[i].value);
        }
        if (m->data_dir && *m->data_dir) {
            field("data_dir:", m->data_dir);
        }
        if (m->erasure.data_blocks || m->erasure.parity_blocks) {
            snprintf(buf, sizeof(buf), "%u data + %u parity, block %u bytes",
                     m->erasure.data_blocks, m->erasure.parity_blocks, m->erasure.block_size);
            field("erasure:", buf);
        }
        if (m->n_parts) {
            field_u64("parts:", m->n_parts);
        }
        if (m->checksum_algorithm && *m->checksum_algorithm) {
            snprintf(buf, sizeof(buf), "%.40s:%.100s", m->checksum_algorithm,
                     m->checksum_value ? m->checksum_value : "");
            field("checksum:", buf);
        }
        if (m->inline_len) {
            field_u64("inline_bytes:", m->inline_len);
        }
    }
    return MC_CLI_EXIT_OK;
}

static int print_objects(const struct mc_list_result *r)
{
    static const char *const hdr[] = {"MODIFIED", "SIZE", "ETAG", "KEY"};
    struct mc_table t;
    mc_table_init(&t, 4, hdr);
    t.right[1] = true;
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < r->n_prefixes; i++) {
        const char *row[] = {"", "PRE", "", r->common_prefixes[i]};
        rc = mc_table_row(&t, row);
    }
    for (uint32_t i = 0; rc == 0 && i < r->n_entries; i++) {
        const struct mc_version *v = &r->entries[i];
        char tm[64], size[32];
        mc_cli_fmt_time(v->mod_time_ns, tm, sizeof(tm));
        snprintf(size, sizeof(size), "%" PRIu64, v->meta.size);
        const char *row[] = {tm, size, v->meta.etag ? v->meta.etag : "", v->key};
        rc = mc_table_row(&t, row);
    }
    if (rc != 0) {
        mc_table_free(&t);
        return rc;
    }
    mc_table_print(&t, stdout);
    if (r->is_truncated && r->next_continuation_token) {
        printf("(truncated: more with --continuation-token %s)\n", r->next_continuation_token);
    }
    return 0;
}

static int print_versions(const struct mc_list_result *r)
{
    static const char *const hdr[] = {"MODIFIED", "SIZE", "LATEST", "MARKER", "VERSION_ID", "KEY"};
    struct mc_table t;
    mc_table_init(&t, 6, hdr);
    t.right[1] = true;
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < r->n_prefixes; i++) {
        const char *row[] = {"", "PRE", "", "", "", r->common_prefixes[i]};
        rc = mc_table_row(&t, row);
    }
    for (uint32_t i = 0; rc == 0 && i < r->n_entries; i++) {
        const struct mc_version *v = &r->entries[i];
        char tm[64], size[32];
        mc_cli_fmt_time(v->mod_time_ns, tm, sizeof(tm));
        snprintf(size, sizeof(size), "%" PRIu64, v->meta.size);
        const char *row[] = {tm,
                             v->is_delete_marker ? "-" : size,
                             v->is_latest ? "yes" : "no",
                             v->is_delete_marker ? "yes" : "no",
                             v->version_id ? v->version_id : "",
                             v->key};
        rc = mc_table_row(&t, row);
    }
    if (rc != 0) {
        mc_table_free(&t);
        return rc;
    }
    mc_table_print(&t, stdout);
    if (r->is_truncated) {
        char *k = mc_cli_escape(r->next_key_marker);
        printf("(truncated: more with --key-marker '%s' --version-id-marker '%s')\n", k ? k : "",
               r->next_version_id_marker ? r->next_version_id_marker : "");
        free(k);
    }
    return 0;
}

int mc_cli_print_list(const struct mc_cli *cli, const struct mc_list_result *r)
{
    if (cli->json) {
        return mc_cli_print_json(mc_list_result_json(r, MC_JSON_COMPACT));
    }
    int rc = r->is_versions ? print_versions(r) : print_objects(r);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", mc_error_name(rc), mc_strerror(rc));
        return MC_CLI_EXIT_ERROR;
    }
    return MC_CLI_EXIT_OK;
}

int mc_cli_print_buckets(const struct mc_cli *cli, const struct mc_bucket_info *b, size_t n)
{
    if (cli->json) {
        return mc_cli_print_json(mc_bucket_list_json(b, n, MC_JSON_COMPACT));
    }
    static const char *const hdr[] = {"CREATED", "VERSIONING", "NAME"};
    struct mc_table t;
    mc_table_init(&t, 3, hdr);
    for (size_t i = 0; i < n; i++) {
        char tm[64];
        mc_cli_fmt_time(b[i].created_ns, tm, sizeof(tm));
        const char *row[] = {tm, mc_versioning_name(b[i].versioning), b[i].name};
        if (mc_table_row(&t, row) != 0) {
            mc_table_free(&t);
            fprintf(stderr, "%s: %s\n", mc_error_name(MC_ENOMEM), mc_strerror(MC_ENOMEM));
            return MC_CLI_EXIT_ERROR;
        }
    }
    mc_table_print(&t, stdout);
    return MC_CLI_EXIT_OK;
}

int mc_cli_print_bucket(const struct mc_cli *cli, const struct mc_bucket_info *b)
{
    if (cli->json) {
        return mc_cli_print_json(mc_bucket_json(b, MC_JSON_COMPACT));
    }
    char tm[64], buf[128];
    mc_cli_fmt_time(b->created_ns, tm, sizeof(tm));
    snprintf(buf, sizeof(buf), "%s (%" PRId64 ")", tm, b->created_ns);
    field("name:", b->name);
    field("versioning:", mc_versioning_name(b->versioning));
    field("created:", buf);
    return MC_CLI_EXIT_OK;
}

int mc_cli_print_result(const struct mc_cli *cli, const struct mc_op_result *r, const char *human)
{
    if (cli->json) {
        return mc_cli_print_json(mc_op_result_json(r, MC_JSON_COMPACT));
    }
    if (human) {
        puts(human);
    }
    return MC_CLI_EXIT_OK;
}
