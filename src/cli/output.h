/* output.h: how CLI results are printed: engine JSON with --json, aligned columns otherwise. */
#ifndef MC_CLI_OUTPUT_H
#define MC_CLI_OUTPUT_H

#include "cli/cli.h"
#include "metacenter/engine.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Limits of the column printer: tables wider or longer are printed in several flushes. */
#define MC_TABLE_MAX_COLS 8

struct mc_table {
    size_t ncols;
    const char *header[MC_TABLE_MAX_COLS];
    bool right[MC_TABLE_MAX_COLS]; /* right-align (numbers) */
    char **cells;                  /* nrows * ncols owned strings */
    size_t nrows, cap_rows;
};

void mc_table_init(struct mc_table *t, size_t ncols, const char *const *header);
/* Adds one row of ncols cells (copied; control characters escaped); 0 or MC_ENOMEM. */
int mc_table_row(struct mc_table *t, const char *const *cells);
/* Prints header + rows with two spaces between columns (last column unpadded), then frees. */
void mc_table_print(struct mc_table *t, FILE *out);
void mc_table_free(struct mc_table *t);

/* Copy of s with control characters and backslash escaped (\n, \xNN) for one-line output. */
char *mc_cli_escape(const char *s);
/* "2024-05-01T12:00:00.123456789Z" (UTC) into buf. */
void mc_cli_fmt_time(int64_t ns, char *buf, size_t len);

/* Printers: each returns an exit code (0, or 1 on an output failure). */
int mc_cli_print_version(const struct mc_cli *cli, const struct mc_version *v);
int mc_cli_print_list(const struct mc_cli *cli, const struct mc_list_result *r);
int mc_cli_print_buckets(const struct mc_cli *cli, const struct mc_bucket_info *b, size_t n);
int mc_cli_print_bucket(const struct mc_cli *cli, const struct mc_bucket_info *b);
/* A mutation's result: JSON from the engine, or the sentence `human` (may be NULL). */
int mc_cli_print_result(const struct mc_cli *cli, const struct mc_op_result *r, const char *human);
/* Prints a malloc'd JSON string (frees it); NULL means out of memory. */
int mc_cli_print_json(char *json);

#endif
