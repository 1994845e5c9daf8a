/* error.c: names, texts and HTTP statuses of the MC_E* codes. */
#include "metacenter/error.h"

#include <string.h>

struct error_info {
    int code;
    const char *name;
    int http;
    const char *text;
};

static const struct error_info errors[] = {
#define MC_ERROR_ROW(sym, val, name, http, text) {val, name, http, text},
    MC_ERROR_LIST(MC_ERROR_ROW)
#undef MC_ERROR_ROW
};

static const struct error_info *find(int code)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        if (errors[i].code == code) {
            return &errors[i];
        }
    }
    return NULL;
}

const char *mc_strerror(int code)
{
    const struct error_info *e = find(code);
    return e ? e->text : "unknown error";
}

const char *mc_error_name(int code)
{
    const struct error_info *e = find(code);
    return e ? e->name : "UnknownError";
}

int mc_error_http_status(int code)
{
    const struct error_info *e = find(code);
    return e ? e->http : 500;
}

int mc_error_from_name(const char *name)
{
    for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
        if (strcmp(errors[i].name, name) == 0) {
            return errors[i].code;
        }
    }
    return MC_EINTERNAL;
}
