/* error.h: error codes shared by every metacenter module, with S3 names and HTTP statuses. */
#ifndef METACENTER_ERROR_H
#define METACENTER_ERROR_H

/*
 * Every function returns int: 0 on success, a negative MC_E* code on failure.
 * Codes are stable: they travel on the wire (client protocol) and in the log
 * as op results, so never renumber; only append.
 */
#define MC_ERROR_LIST(X)                                                                           \
    X(MC_OK, 0, "OK", 200, "success")                                                              \
    X(MC_EINVAL, -1, "InvalidArgument", 400, "invalid argument")                                   \
    X(MC_ENOMEM, -2, "OutOfMemory", 500, "out of memory")                                          \
    X(MC_EIO, -3, "IOError", 500, "input/output error")                                            \
    X(MC_ENOSPC, -4, "NoSpace", 507, "no space left (disk or map size)")                           \
    X(MC_ECORRUPT, -5, "Corruption", 500, "data corruption detected")                              \
    X(MC_ENOBUCKET, -6, "NoSuchBucket", 404, "the bucket does not exist")                          \
    X(MC_EBUCKETEXISTS, -7, "BucketAlreadyExists", 409, "the bucket already exists")               \
    X(MC_EBUCKETNOTEMPTY, -8, "BucketNotEmpty", 409, "the bucket still holds versions")            \
    X(MC_ENOKEY, -9, "NoSuchKey", 404, "the key does not exist")                                   \
    X(MC_ENOVERSION, -10, "NoSuchVersion", 404, "the version does not exist")                      \
    X(MC_EPRECOND, -11, "PreconditionFailed", 412, "a precondition did not hold")                  \
    X(MC_EBUCKETNAME, -12, "InvalidBucketName", 400, "the bucket name breaks S3 naming rules")     \
    X(MC_EKEYTOOLONG, -13, "KeyTooLongError", 400, "the key is longer than 1024 bytes")            \
    X(MC_EMETATOOLARGE, -14, "MetadataTooLarge", 400, "user metadata exceeds 2 KiB")               \
    X(MC_EBADKEY, -15, "InvalidKey", 400, "the key is empty, not UTF-8 or holds NUL")              \
    X(MC_EBADTOKEN, -16, "InvalidContinuationToken", 400, "malformed continuation token")          \
    X(MC_ETOOLARGE, -17, "EntityTooLarge", 413, "the request or value is too large")               \
    X(MC_ENOTLEADER, -18, "NotLeader", 503, "this node is not the leader")                         \
    X(MC_ESTALE, -19, "StaleRead", 503, "no leader heard from within max_staleness_ms")            \
    X(MC_ETIMEOUT, -20, "Timeout", 504, "the operation timed out")                                 \
    X(MC_EUNAVAIL, -21, "ServiceUnavailable", 503, "no quorum or no leader")                       \
    X(MC_ELOCKED, -22, "DataDirLocked", 409, "the data directory is in use by another process")    \
    X(MC_ENOTOURS, -23, "NotMetacenterDir", 400, "the directory is not a metacenter data dir")     \
    X(MC_EPROTO, -24, "ProtocolError", 400, "malformed message")                                   \
    X(MC_EVERSION, -25, "UnsupportedVersion", 400, "unsupported format or protocol version")       \
    X(MC_EBADSTATE, -26, "InvalidBucketState", 409, "operation not allowed in this state")         \
    X(MC_ESHUTDOWN, -27, "ShuttingDown", 503, "the node is shutting down")                         \
    X(MC_EBUSY, -28, "Busy", 503, "a conflicting operation is in progress")                        \
    X(MC_ELIMIT, -29, "SlowDown", 503, "a limit was reached")                                      \
    X(MC_EUNAUTH, -30, "Unauthorized", 401, "missing or invalid token")                            \
    X(MC_EDENIED, -31, "AccessDenied", 403, "the token's role does not allow this")                \
    X(MC_ENOTFOUND, -32, "NotFound", 404, "not found")                                             \
    X(MC_EEXIST, -33, "AlreadyExists", 409, "already exists")                                      \
    X(MC_EFATAL, -34, "FatalStorageError", 500, "fsync or write failed: node must stop")           \
    X(MC_EINTERNAL, -35, "InternalError", 500, "internal error")                                   \
    X(MC_ENOMEMBER, -36, "NoSuchMember", 404, "no such cluster member")                            \
    X(MC_ELAGGING, -37, "LearnerLagging", 409, "the learner's log is too far behind")              \
    X(MC_ECONFCHANGE, -38, "ConfChangeInProgress", 409, "a membership change is in progress")      \
    X(MC_ELOWDISK, -39, "InsufficientStorage", 507,                                                \
      "free disk space is below the node's reserve: writes rejected, reads served")                \
    X(MC_ETOOMANYBUCKETS, -40, "TooManyBuckets", 400, "the cluster's bucket limit is reached")

enum mc_error {
#define MC_ERROR_ENUM(sym, val, name, http, text) sym = val,
    MC_ERROR_LIST(MC_ERROR_ENUM)
#undef MC_ERROR_ENUM
};

/* Human text for a code ("the key does not exist"); never NULL. */
const char *mc_strerror(int code);
/* S3-style name ("NoSuchKey"); "UnknownError" for codes outside the list. */
const char *mc_error_name(int code);
/* HTTP status for a code (404, 409, ...). */
int mc_error_http_status(int code);
/* Code for a name, or MC_EINTERNAL when unknown. */
int mc_error_from_name(const char *name);

#endif
