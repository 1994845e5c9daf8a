/* textbuf.c: growable text buffer with a sticky error, so renderers check once at the end. */
#include "obs/textbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metacenter/error.h"

void mc_textbuf_init(struct mc_textbuf *b, size_t initial_cap)
{
    b->len = 0;
    b->err = 0;
    b->cap = initial_cap < 64 ? 64 : initial_cap;
    b->data = malloc(b->cap);
    if (!b->data) {
        b->cap = 0;
        b->err = MC_ENOMEM;
    }
}

/* Make room for need more bytes plus the NUL. */
static int reserve(struct mc_textbuf *b, size_t need)
{
    if (b->err)
        return b->err;
    if (b->len + need + 1 <= b->cap)
        return 0;
    if (b->len + need + 1 > MC_TEXTBUF_MAX_BYTES) {
        b->err = MC_ETOOLARGE;
        return b->err;
    }
    size_t cap = b->cap * 2;
    while (cap < b->len + need + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->err = MC_ENOMEM;
        return b->err;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void mc_textbuf_append(struct mc_textbuf *b, const char *s, size_t n)
{
    if (reserve(b, n) != 0)
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void mc_textbuf_printf(struct mc_textbuf *b, const char *fmt, ...)
{
    if (b->err)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->err = MC_EINTERNAL;
        return;
    }
    if ((size_t)n < b->cap - b->len) {
        b->len += (size_t)n;
        return;
    }
    if (reserve(b, (size_t)n) != 0)
        return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

int mc_textbuf_finish(struct mc_textbuf *b, char **out, size_t *len)
{
    if (b->err) {
        int rc = b->err;
        mc_textbuf_free(b);
        return rc;
    }
    *out = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return 0;
}

void mc_textbuf_free(struct mc_textbuf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
