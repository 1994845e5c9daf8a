/* test_node_seal.c: the engine seal's removal at start is durable before the engine is opened
 * for writing (src/node/seal.c). */
#include "storage_test_util.h"

#include "metacenter/error.h"
#include "node/seal.h"

#include <errno.h>

static void seal_dir(char *dir, size_t n)
{
    st_tmpdir(dir, n);
    char p[MC_DATADIR_PATH_MAX];
    snprintf(p, sizeof(p), "%s/engine", dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/engine/data.mdb", dir);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs("not really lmdb", f);
    fclose(f);
    cr_assert_eq(mc_seal_write(dir), 0);
}

Test(node_seal, removal_is_fsynced_before_the_engine_opens)
{
    char dir[64];
    seal_dir(dir, sizeof(dir));
    struct mc_fs_fault f;
    mc_fs_fault_init(&f, NULL);
    bool sealed = false;
    cr_assert_eq(mc_seal_verify_fs(&f.ops, dir, &sealed), 0);
    cr_assert(sealed);
    cr_assert_eq(f.calls[MC_FS_UNLINK], 1);
    cr_assert_geq(f.calls[MC_FS_FSYNC], 1, "the data dir is fsynced after the unlink");
    char p[MC_DATADIR_PATH_MAX];
    snprintf(p, sizeof(p), "%s/engine.seal", dir);
    cr_assert_neq(access(p, F_OK), 0);
    /* That fsync failing refuses the start (the removal may not be on disk). */
    cr_assert_eq(mc_seal_write(dir), 0);
    mc_fs_fault_arm(&f, MC_FS_FSYNC, 1, EIO, false);
    cr_assert_eq(mc_seal_verify_fs(&f.ops, dir, &sealed), MC_EIO);
    st_rmtree(dir);
}
