/* config.h: load `metacenter serve --config FILE` (YAML, the seed's shape) into mc_node_options. */
#ifndef MC_NODE_CONFIG_H
#define MC_NODE_CONFIG_H

#include "node/options.h"

#include <stddef.h>

/* Limits: a config file is small; anything bigger is a mistake, not a config. */
#define MC_NODE_CONFIG_MAX_BYTES    (256 * 1024) /* whole file */
#define MC_NODE_CONFIG_MAX_NODES    4096         /* YAML nodes (scalars + maps + sequences) */
#define MC_NODE_CONFIG_MAX_DEPTH    8            /* nesting of maps/sequences */
#define MC_NODE_CONFIG_MAX_SCALAR   4096         /* bytes in one scalar value */
#define MC_NODE_CONFIG_MAX_WARNINGS 8
#define MC_NODE_CONFIG_WARNING_LEN  256

/* Settings that are accepted for compatibility with the seed's shape but have no effect (yet). */
struct mc_node_config_warnings {
    size_t count; /* ≤ MC_NODE_CONFIG_MAX_WARNINGS (later ones are dropped) */
    char msg[MC_NODE_CONFIG_MAX_WARNINGS][MC_NODE_CONFIG_WARNING_LEN];
};

/*
 * Load the YAML config at path into *o (which holds defaults, see mc_node_options_default).
 * Only keys present in the file change *o; on any error *o is left untouched.
 * Call BEFORE mc_node_options_parse so that flags override the file; cross-key rules
 * (heartbeat vs election timeout, advertise_client default) are checked by that parse.
 * Errors: MC_ENOTFOUND (no such file), MC_EIO (unreadable), MC_ETOOLARGE (file too big),
 * MC_EINVAL (syntax, unknown key, wrong type, out of range); err gets one line
 * "InvalidArgument: FILE:LINE: key metadata.x.y: ...". Warnings (no-op keys) are written with
 * MC_WARN; use mc_node_config_load_ex to collect them instead.
 */
int mc_node_config_load(const char *path, struct mc_node_options *o, char *err, size_t errlen);
int mc_node_config_load_ex(const char *path, struct mc_node_options *o,
                           struct mc_node_config_warnings *warn, char *err, size_t errlen);
/* The same from memory (name is used in messages). warn may be NULL (then MC_WARN). */
int mc_node_config_load_buf(const char *name, const char *buf, size_t len,
                            struct mc_node_options *o, struct mc_node_config_warnings *warn,
                            char *err, size_t errlen);

/*
 * The --config value in serve's argv (argv[0] is "serve"), scanning flags the way
 * mc_node_options_parse does; NULL when absent (or when its value is missing: the flag parse
 * reports that).
 */
const char *mc_node_config_find_arg(int argc, char **argv);

#endif
