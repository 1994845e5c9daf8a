/* authz.h: which role each client-protocol request needs, and the per-request check. */
#ifndef MC_SECURITY_AUTHZ_H
#define MC_SECURITY_AUTHZ_H

#include <stdint.h>

#include "net/proto.h"
#include "security/auth.h"

/* Role an op needs: PING and AUTH none; reads read; WRITE/REGISTER_SESSION write; cluster,
 * snapshot and check admin. Unknown ops: admin. */
enum mc_role mc_authz_op_role(uint8_t op);

/*
 * May p (NULL = not authenticated) run req? 0, MC_EUNAUTH or MC_EDENIED. Bucket grants are
 * checked against every bucket the request names, including each op record of a WRITE
 * (decoded here; an undecodable record is left for the node to refuse).
 */
int mc_authz_check_request(const struct mc_principal *p, const struct mc_proto_request *req);

#endif
