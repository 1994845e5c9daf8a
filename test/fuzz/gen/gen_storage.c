/* gen_storage.c: seed corpora for the storage targets (wal, snap) from real WAL/snapshot files. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gen.h"
#include "metacenter/storage.h"
#include "util/checksum.h"
#include "util/codec.h"
#include "util/log.h"

/* Read a whole file; trailing zeros (preallocation) are trimmed to a multiple of 8 bytes. */
static uint8_t *slurp(const char *path, size_t *len, int trim)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "gen_corpus: %s: cannot open\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)n + 1);
    if (!p || fread(p, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "gen_corpus: %s: short read\n", path);
        exit(1);
    }
    fclose(f);
    size_t l = (size_t)n;
    if (trim) {
        while (l > 0 && p[l - 1] == 0) {
            l--;
        }
        l = (l + 7) & ~(size_t)7;
        l = l > (size_t)n ? (size_t)n : l;
    }
    *len = l;
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* flags byte + every wal-*.log of dir in order (trailing zeros trimmed), minus cut bytes. */
static void emit_wal_dir(const char *dir, const char *name, uint8_t flags, size_t cut)
{
    DIR *d = opendir(dir);
    char *names[64];
    size_t n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && n < 64) {
        if (strncmp(e->d_name, "wal-", 4) == 0) {
            names[n++] = strdup(e->d_name);
        }
    }
    if (d) {
        closedir(d);
    }
    qsort(names, n, sizeof(char *), cmp_str);
    size_t cap = 1, len = 1;
    uint8_t *buf = malloc(cap);
    buf[0] = flags;
    for (size_t i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        size_t l;
        uint8_t *p = slurp(path, &l, 1);
        buf = realloc(buf, len + l);
        memcpy(buf + len, p, l);
        len += l;
        free(p);
        free(names[i]);
    }
    gen_emit("wal", name, -1, buf, len > cut + 1 ? len - cut : len);
    free(buf);
}

static void make_wal(const char *dir, int nrec, size_t payload_bytes)
{
    GEN_CHECK(mc_fs_remove_tree(NULL, dir));
    struct mc_wal_options o = {0};
    o.wal_dir = dir;
    o.segment_size_bytes = MC_WAL_SEGMENT_MIN_BYTES;
    struct mc_wal *w;
    GEN_CHECK(mc_wal_open(&o, &w));
    uint8_t *payload = malloc(payload_bytes + 1);
    for (int i = 0; i < nrec; i++) {
        memset(payload, 'a' + i % 26, payload_bytes);
        struct mc_wal_record r = {.index = (uint64_t)i + 1,
                                  .term = 1 + (uint64_t)i / 2,
                                  .type = (uint8_t)(i == 1),
                                  .len = (uint32_t)(i == 0 ? 0 : payload_bytes),
                                  .data = payload};
        GEN_CHECK(mc_wal_append(w, &r, 1, NULL, NULL));
    }
    GEN_CHECK(mc_wal_sync(w));
    mc_wal_close(w);
    free(payload);
}

static int snap_data(void *ctx, int fd)
{
    const char *s = ctx;
    return write(fd, s, strlen(s)) == (ssize_t)strlen(s) ? 0 : -3;
}

/* The header records its creation time (offset 56): pin it and re-seal the header checksum
 * (offset 4088, XXH3-64 of bytes [0, 4088)) so the seeds are the same on every run. */
static void pin_created(uint8_t *p, size_t len)
{
    if (len >= MC_SNAP_HEADER_BYTES) {
        mc_put_u64le(p + 56, 1700000000000000000ull);
        mc_put_u64le(p + MC_SNAP_HEADER_BYTES - 8, mc_checksum64(p, MC_SNAP_HEADER_BYTES - 8));
    }
}

static void gen_snap(const char *tmp)
{
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/snap", tmp);
    GEN_CHECK(mc_fs_remove_tree(NULL, dir));
    GEN_CHECK(mkdir(dir, 0755));
    static const char membership[] = "{\"voters\":[1,2,3],\"learners\":[4]}";
    struct mc_snap_info info;
    GEN_CHECK(mc_snap_create(dir, NULL, 100, 4, membership, sizeof(membership) - 1, snap_data,
                             (void *)"pretend this is an LMDB data.mdb image", &info));
    size_t l;
    uint8_t *p = slurp(info.path, &l, 0);
    pin_created(p, l);
    /* flags byte: bit 0 fix header checksum, bit 1 fix data checksum, bits 2-7 chunking. */
    gen_emit("snap", "snap_small", 0x00, p, l);
    gen_emit("snap", "snap_small_fix", 0x03, p, l);
    free(p);
    GEN_CHECK(mc_snap_create(dir, NULL, 200, 5, NULL, 0, snap_data, (void *)"x", &info));
    p = slurp(info.path, &l, 0);
    pin_created(p, l);
    gen_emit("snap", "snap_no_membership", 0x40, p, l);
    free(p);
}

void gen_storage(const char *tmp)
{
    mc_log_set_level(MC_LOG_OFF);
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s/wal", tmp);
    make_wal(dir, 0, 0);
    emit_wal_dir(dir, "wal_empty", 1, 0);
    make_wal(dir, 3, 40);
    emit_wal_dir(dir, "wal_3rec", 0, 0);
    emit_wal_dir(dir, "wal_3rec_fix", 1, 0);
    emit_wal_dir(dir, "wal_torn_tail", 1, 20);
    make_wal(dir, 6, 1500);
    emit_wal_dir(dir, "wal_3seg", 1, 0);
    gen_snap(tmp);
    GEN_CHECK(mc_fs_remove_tree(NULL, dir));
    snprintf(dir, sizeof(dir), "%s/snap", tmp);
    GEN_CHECK(mc_fs_remove_tree(NULL, dir));
}
