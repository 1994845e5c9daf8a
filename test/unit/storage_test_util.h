/* storage_test_util.h: temp dirs and file helpers shared by the storage unit tests. */
#ifndef STORAGE_TEST_UTIL_H
#define STORAGE_TEST_UTIL_H

#include "metacenter/storage.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline void st_tmpdir(char *out, size_t n)
{
    snprintf(out, n, "/tmp/mc_storage_test_XXXXXX");
    cr_assert_not_null(mkdtemp(out));
}

static inline void st_rmtree(const char *dir)
{
    mc_fs_remove_tree(NULL, dir);
}

/* Sorted list of wal-*.log paths in dir (not the .torn evidence files); returns count. */
static inline int st_list_segments(const char *dir, char out[][MC_DATADIR_PATH_MAX], int max)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "wal-", 4) == 0 && strcmp(e->d_name + len - 4, ".log") == 0) {
            snprintf(out[n++], MC_DATADIR_PATH_MAX, "%s/%s", dir, e->d_name);
        }
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++) {
            if (strcmp(out[i], out[j]) > 0) {
                char t[MC_DATADIR_PATH_MAX];
                strcpy(t, out[i]);
                strcpy(out[i], out[j]);
                strcpy(out[j], t);
            }
        }
    }
    return n;
}

static inline void st_flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    cr_assert(fd >= 0);
    unsigned char b;
    cr_assert_eq(pread(fd, &b, 1, off), 1);
    b ^= 0x10;
    cr_assert_eq(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

/* Overwrites [off, off + len) of the file at path with zeros (a lost or never-written range). */
static inline void st_zero_range(const char *path, off_t off, size_t len)
{
    static const uint8_t z[8192];
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0, "%s", path);
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof(z) ? len - done : sizeof(z);
        cr_assert_eq(pwrite(fd, z, n, off + (off_t)done), (ssize_t)n);
        done += n;
    }
    close(fd);
}

static inline off_t st_file_size(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return st.st_size;
}

static inline void st_copy_file(const char *from, const char *to)
{
    int a = open(from, O_RDONLY), b = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(a >= 0 && b >= 0);
    char buf[65536];
    ssize_t n;
    while ((n = read(a, buf, sizeof(buf))) > 0) {
        cr_assert_eq(write(b, buf, (size_t)n), n);
    }
    close(a);
    close(b);
}

/* Deterministic payload for (index, len). */
static inline void st_fill(uint8_t *p, uint64_t index, uint32_t len)
{
    uint64_t x = index * 0x9E3779B97F4A7C15ull + len;
    for (uint32_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

/* Send stderr (where the log goes) to path until st_stderr_restore; returns the saved fd. */
static inline int st_stderr_to(const char *path)
{
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert(saved >= 0 && fd >= 0);
    cr_assert_eq(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    close(fd);
    return saved;
}

static inline void st_stderr_restore(int saved)
{
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
}

/* The first cap - 1 bytes of the file at path, NUL-terminated, into out; the file is removed. */
static inline void st_slurp_and_unlink(const char *path, char *out, size_t cap)
{
    FILE *fp = fopen(path, "r");
    cr_assert_not_null(fp, "%s", path);
    size_t len = fread(out, 1, cap - 1, fp);
    fclose(fp);
    unlink(path);
    out[len] = '\0';
}

#endif
