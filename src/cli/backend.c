/* backend.c: the explanation slot shared by the CLI backends (one per process: the CLI is
 * single-threaded and runs one command). */
#include "cli/backend.h"

#include <stdarg.h>
#include <stdio.h>

static char errmsg[1024];

const char *mc_cli_be_errmsg(void)
{
    return errmsg;
}

int mc_cli_be_seterr(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
    va_end(ap);
    return code;
}

void mc_cli_be_clearerr(void)
{
    errmsg[0] = '\0';
}
