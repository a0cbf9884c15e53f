/* dms/error.h - error codes and the caller-owned error value of the executor API.
 *
 * Every fallible function returns int: 0 on success, -DMS_E_<CODE> on failure, and fills the caller-owned
 * dms_error passed last (may be NULL). The error is a plain value with fixed buffers, like jansson's
 * json_error_t: nothing is allocated to report an error and nothing crosses the plugin boundary to be freed.
 */
#ifndef DMS_ERROR_H
#define DMS_ERROR_H

#include <stdarg.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* Numbered, stable: the numbers are part of the ABI and of dms-exec's exit codes. */
typedef enum dms_error_code {
    DMS_OK = 0,
    DMS_E_INVALID = 1,          /* bad argument or request (user fault); field names what */
    DMS_E_NOT_FOUND = 2,        /* unknown execution id (or other named object) */
    DMS_E_ALREADY_STARTED = 3,  /* start of an execution id that is live */
    DMS_E_ALREADY_COMPLETE = 4, /* start/cancel of an execution id that has finished */
    DMS_E_IMAGE = 5,            /* image not present locally and not pullable */
    DMS_E_ENGINE = 6,           /* the engine (daemon) failed a request; its message is passed through */
    DMS_E_UNAVAILABLE = 7,      /* the backend cannot be reached (no daemon, no socket, permission) */
    DMS_E_TIMEOUT = 8,          /* a wait or a call ran out of time; the job itself is untouched */
    DMS_E_CANCELLED = 9,        /* the operation was cancelled before it completed */
    DMS_E_BUILD_FAILED = 10,    /* a build failed through the user's input (a Dockerfile step) */
    DMS_E_NOT_SUPPORTED = 11,   /* the backend does not implement this operation or option */
    DMS_E_PLUGIN = 12,          /* a backend plugin could not be loaded (file, symbol, ABI) */
    DMS_E_NOMEM = 13,           /* out of memory */
    DMS_E_IO = 14,              /* local file or socket I/O failed (errno in sys_errno) */
    DMS_E_START_FAILED = 15,    /* the workload could not be started (bad entrypoint, ...) */
    DMS_E_CONFLICT = 16,        /* a resource exists that is not ours (name in use) */
    DMS_E_PROTOCOL = 17,        /* the engine answered something we cannot parse */
    DMS_E_INTERNAL = 18,        /* a bug in dms; please report */
    DMS_E_NOT_OURS = 19,        /* it exists but does not carry this executor's labels: not touched */
    DMS_E_QUOTA = 20,           /* a per-user quota is reached; retry once some of the user's work ended */
    DMS_E_FORBIDDEN = 21,       /* refused by the operator's policy or a quota that needs the user to remove
                                 * something (field names what; the message, which setting) */
    DMS_E__COUNT
} dms_error_code;

#define DMS_ERROR_MSG_MAX   512
#define DMS_ERROR_FIELD_MAX 64

typedef struct dms_error {
    int code;                        /* a dms_error_code, positive; DMS_OK when no error */
    bool retryable;                  /* true when the fault is ours or transient: retrying may succeed */
    int sys_errno;                   /* errno behind DMS_E_IO / DMS_E_UNAVAILABLE, else 0 */
    char field[DMS_ERROR_FIELD_MAX]; /* request field at fault ("engine.env[2]"), or "" */
    char message[DMS_ERROR_MSG_MAX]; /* human message: what failed and with what */
} dms_error;

/* Short stable name of a code ("INVALID", "NOT_FOUND", ...); never NULL. Thread-safe. */
const char *dms_error_code_name(int code);

/* Whether a code is retryable by default (ENGINE, UNAVAILABLE, IO, ...). Setters use it. */
bool dms_error_code_retryable(int code);

/* Fills err (if not NULL) and returns -code, so that a failure is one line:
 *     return dms_error_set(err, DMS_E_INVALID, "engine.image", "image is required");
 * field may be NULL. The message is truncated to DMS_ERROR_MSG_MAX. */
int dms_error_set(dms_error *err, int code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int dms_error_setv(dms_error *err, int code, const char *field, const char *fmt, va_list ap);

/* Like dms_error_set, with errno text appended (": <strerror(errnum)>") and sys_errno recorded. */
int dms_error_set_errno(dms_error *err, int code, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefixes context to an existing message ("start e1: " + message). Returns -err->code. */
int dms_error_prefix(dms_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Resets to DMS_OK with empty strings. */
void dms_error_clear(dms_error *err);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
