/* raft.c: public entry points of the Raft core (stub until the implementation lands). */
#include "metacenter/raft.h"
#include "metacenter/error.h"

#include <string.h>

void mc_raft_config_defaults(struct mc_raft_config *cfg)
{
    (void)cfg;
}
int mc_raft_create(const struct mc_raft_config *cfg, struct mc_raft **out)
{
    (void)cfg;
    *out = NULL;
    return MC_EINTERNAL;
}
void mc_raft_destroy(struct mc_raft *r)
{
    (void)r;
}
