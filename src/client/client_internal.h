/* client_internal.h: the client library's shared internals (core in client.c, wrappers in calls.c).
 */
#ifndef MC_CLIENT_INTERNAL_H
#define MC_CLIENT_INTERNAL_H

#include "metacenter/client.h"
#include "net/proto.h"
#include "util/codec.h"

#define MC_CLIENT_MAX_ENDPOINTS 16
#define MC_CLIENT_MAX_SESSIONS  256

/*
 * Submit a non-write request described by q (request_id is assigned here).
 * pin: -1 = route by op (reads round-robin, the rest to the leader), ≥ 0 = that endpoint.
 */
int mc_client_submit(struct mc_client *c, const struct mc_proto_request *q, int pin,
                     mc_client_cb cb, void *arg);

/* Complete every pending request of the caller's whose callback argument is arg with status
 * (callbacks run): a blocking call that cannot poll any more must not leave a request
 * behind that would call back into its returned stack frame. */
void mc_client_cancel_arg(struct mc_client *c, void *arg, int status);

/* Copy a result's error details into c's last_error. */
void mc_client_note_error(struct mc_client *c, const struct mc_client_result *r);

/* Default read options of c. */
const struct mc_read_opts *mc_client_default_read(const struct mc_client *c);

#endif
