/* textbuf.h: a growable text buffer (printf-append) for rendered responses; bounded in size. */
#ifndef MC_OBS_TEXTBUF_H
#define MC_OBS_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>

/* A rendered text never exceeds this; past it appends fail and finish returns MC_ETOOLARGE. */
#define MC_TEXTBUF_MAX_BYTES (16u << 20)

struct mc_textbuf {
    char *data;
    size_t len;
    size_t cap;
    int err; /* first error (MC_ENOMEM / MC_ETOOLARGE); later appends are no-ops */
};

void mc_textbuf_init(struct mc_textbuf *b, size_t initial_cap);
void mc_textbuf_printf(struct mc_textbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void mc_textbuf_append(struct mc_textbuf *b, const char *s, size_t n);
/* Hand over the NUL-terminated text (*out, free() it) or free it and return b->err. */
int mc_textbuf_finish(struct mc_textbuf *b, char **out, size_t *len);
void mc_textbuf_free(struct mc_textbuf *b);

#endif
