/* handlers.h: endpoint handlers of the HTTP API and the helpers they share. */
#ifndef MC_HTTP_HANDLERS_H
#define MC_HTTP_HANDLERS_H

#include <jansson.h>

#include "http/internal.h"

/* Decimal in [min, UINT32_MAX]; values above max are clamped to max. 0 or MC_EINVAL. */
int mc_http_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
/* The body as a JSON object; on error fills r (400) and returns NULL. An empty body is {}
 * unless required. */
json_t *mc_http_parse_body(const struct mc_http_request *q, struct mc_http_response *r,
                           bool required);
/* Error response for a failed loopback call (NotLeader + leader hint, delete markers...). */
void mc_http_fail_call(const struct mc_http_request *q, struct mc_http_response *r,
                       const struct mc_http_call *k);

/* admin.c */
void mc_http_healthz(struct mc_http_request *q, struct mc_http_response *r);
void mc_http_readyz(struct mc_http_request *q, struct mc_http_response *r);
void mc_http_metrics(struct mc_http_request *q, struct mc_http_response *r);
void mc_http_admin(struct mc_http_request *q, struct mc_http_response *r);

#endif
