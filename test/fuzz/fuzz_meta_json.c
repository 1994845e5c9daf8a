/* fuzz_meta_json.c: libFuzzer target for the HTTP put-body parser mc_object_meta_from_json. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "metacenter/engine.h"
#include "metacenter/error.h"

/*
 * Input: a JSON object body as PUT /v1/buckets/{b}/objects/{key} receives it. Checked: the
 * parser never crashes or leaks; what it accepts passes mc_validate_object_meta; and an accepted
 * meta can travel through the replicated log: a PUT op carrying it encodes (or is refused as
 * MC_ETOOLARGE) and decodes back to the same bytes. A body the HTTP layer accepts but the op
 * codec rejects would be acknowledged by the leader's HTTP validation and then fail on apply.
 */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mc_object_meta m;
    int rc = mc_object_meta_from_json((const char *)data, size, &m);
    if (rc != 0) {
        FUZZ_ASSERT(rc == MC_EINVAL || rc == MC_EMETATOOLARGE || rc == MC_ETOOLARGE ||
                        rc == MC_ENOMEM,
                    "mc_object_meta_from_json rc %d", rc);
        return 0;
    }
    rc = mc_validate_object_meta(&m);
    FUZZ_ASSERT(rc == 0, "accepted meta fails mc_validate_object_meta: %d", rc);

    struct mc_op op = {0};
    rc = mc_op_put(&op, "bucket", "key", "0000018bcfe56800", 1, &m);
    FUZZ_ASSERT(rc == 0, "mc_op_put: %d", rc);
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    rc = mc_op_encode(&op, &w);
    FUZZ_ASSERT(rc == 0 || rc == MC_ETOOLARGE, "encode of a PUT with accepted meta: %d", rc);
    if (rc == 0) {
        struct mc_op back;
        rc = mc_op_decode(w.data, w.len, &back);
        FUZZ_ASSERT(rc == 0,
                    "a PUT whose JSON meta was accepted does not decode from its own encoding "
                    "(rc %d): the log would carry an op no replica can read",
                    rc);
        struct mc_wbuf w2;
        mc_wbuf_init(&w2, 0);
        FUZZ_ASSERT(mc_op_encode(&back, &w2) == 0, "re-encode");
        FUZZ_ASSERT_SAME_BYTES("PUT op", &w2, w.data, w.len);
        mc_wbuf_free(&w2);
        mc_op_clear(&back);
    }
    mc_wbuf_free(&w);
    mc_op_clear(&op);
    mc_object_meta_clear(&m);
    return 0;
}
