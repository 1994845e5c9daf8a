/* stub.c: temporary stubs so the storage API links while the implementation lands. */
#include "metacenter/storage.h"
#include "metacenter/error.h"

#include <stdlib.h>
#include <string.h>

int mc_wal_open(const struct mc_wal_options *opt, struct mc_wal **out)
{
    (void)opt;
    *out = NULL;
    return MC_EINTERNAL;
}
void mc_wal_close(struct mc_wal *w)
{
    (void)w;
}
uint64_t mc_wal_first_index(struct mc_wal *w)
{
    (void)w;
    return 1;
}
uint64_t mc_wal_last_index(struct mc_wal *w)
{
    (void)w;
    return 0;
}
uint64_t mc_wal_last_term(struct mc_wal *w)
{
    (void)w;
    return 0;
}
void mc_wal_hard_state(struct mc_wal *w, struct mc_hard_state *out)
{
    (void)w;
    memset(out, 0, sizeof(*out));
}
uint64_t mc_wal_durable_index(struct mc_wal *w)
{
    (void)w;
    return 0;
}
uint64_t mc_wal_done_ticket(struct mc_wal *w)
{
    (void)w;
    return 0;
}
int mc_wal_error(struct mc_wal *w)
{
    (void)w;
    return MC_EINTERNAL;
}
int mc_wal_append(struct mc_wal *w, const struct mc_wal_record *recs, size_t n,
                  const struct mc_hard_state *hs, uint64_t *ticket)
{
    (void)w, (void)recs, (void)n, (void)hs, (void)ticket;
    return MC_EINTERNAL;
}
