/* dms/plugin.h - the ABI between the registry and a backend plugin.
 *
 * A backend is a shared object named libdms-executor-<name>.so that exports exactly one symbol,
 * DMS_PLUGIN_ENTRY_SYMBOL, a function returning a pointer to a static, const dms_executor_ops table.
 * Build it with -fvisibility=hidden and mark only the entry with DMS_PLUGIN_EXPORT.
 *
 * ABI rule: the table begins with abi_version and size. The registry refuses a plugin whose abi_version
 * differs from DMS_EXECUTOR_ABI_VERSION, or whose size is smaller than the registry's
 * sizeof(dms_executor_ops), naming the file. Any change to the layout of this table or of the structs it
 * passes (request, result, status, options, config) bumps DMS_EXECUTOR_ABI_VERSION. Adding an optional op at
 * the end of the table also bumps it.
 *
 * Ownership across the boundary: the registry passes borrowed pointers valid for the duration of a call (the
 * request, ids, options). Waiters and log streams a plugin returns are built with the helpers of
 * dms/backend.h and freed through them. What a plugin allocates, the plugin frees (destroy frees the cookie).
 *
 * The framework validates a request before start() sees it, resolves run() as start()+wait, and serialises
 * nothing: ops are called concurrently from any thread, so a plugin guards its state itself.
 */
#ifndef DMS_PLUGIN_H
#define DMS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include <dms/executor.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* 7: the request's healthcheck, the status's health, a build's target */
#define DMS_EXECUTOR_ABI_VERSION 7u
#define DMS_PLUGIN_ENTRY_SYMBOL  "dms_executor_plugin_entry"
#define DMS_PLUGIN_EXPORT        __attribute__((visibility("default")))

/* Services of the host, handed to create(); valid until destroy(). */
typedef struct dms_host_services {
    uint32_t abi_version;
    uint32_t size;
    dms_log_fn log;
    void *log_ctx;
    const char *state_dir; /* <state>/<backend>/<executor id>, created by the registry */
    char *const *options;  /* "key=value", NULL-terminated, never NULL */
} dms_host_services;

typedef enum dms_cancel_reason {
    DMS_CANCEL_USER = 1,    /* outcome CANCELLED */
    DMS_CANCEL_TIMEOUT = 2, /* outcome TIMED_OUT */
} dms_cancel_reason;

/* What list() calls once per execution, with a status valid for the call only (the registry copies it).
 * Returns 0 to go on; a negative DMS_E_* code stops the listing, and list() returns that code. */
typedef int (*dms_exec_status_fn)(void *userdata, const dms_exec_status *status);

typedef struct dms_executor_ops {
    uint32_t abi_version;    /* DMS_EXECUTOR_ABI_VERSION */
    uint32_t size;           /* sizeof(dms_executor_ops) as the plugin was built */
    const char *name;        /* "docker"; must match the file name */
    const char *description; /* one line */

    /* Required. */
    int (*create)(void **cookie, const char *executor_id, const dms_host_services *host, dms_error *err);
    void (*destroy)(void *cookie);
    bool (*is_installed)(void *cookie, dms_error *why);
    int (*start)(void *cookie, const dms_exec_request *req, dms_error *err);
    /* A waiter for the execution's result (dms_waiter_new_from_cell / _file in dms/backend.h). */
    int (*subscribe)(void *cookie, const char *execution_id, dms_waiter **out, dms_error *err);
    /* grace_ms: SIGTERM to SIGKILL; 0 = SIGKILL at once; < 0 = the execution's own stop_grace_ms. */
    int (*cancel)(void *cookie, const char *execution_id, dms_cancel_reason reason, int64_t grace_ms,
                  dms_error *err);
    int (*log_stream)(void *cookie, const char *execution_id, const dms_log_options *opts,
                      dms_log_stream **out, dms_error *err);
    int (*cleanup)(void *cookie, dms_cleanup_report *report, dms_error *err);

    /* Optional: NULL when not supported. */
    int (*status)(void *cookie, const char *execution_id, dms_exec_status *out, dms_error *err);
    /* Reports every execution through each (in no particular order); the registry owns the array its caller
     * gets, so nothing the plugin allocates crosses the boundary. */
    int (*list)(void *cookie, dms_exec_status_fn each, void *userdata, dms_error *err);
    int (*remove)(void *cookie, const char *execution_id, dms_error *err);
    int (*recover)(void *cookie, size_t *adopted, dms_error *err);
    int (*build)(void *cookie, const dms_build_request *req, dms_build_output_fn out, void *userdata,
                 dms_cancel_token *cancel, dms_build_result *result, dms_error *err);
    int (*remove_image)(void *cookie, const char *image, dms_error *err);
    int (*image_info)(void *cookie, const char *image, dms_image_info *out, dms_error *err);
    int (*remove_volume)(void *cookie, const char *name, dms_error *err);
    int (*remove_network)(void *cookie, const char *name, dms_error *err); /* ABI 4 */
} dms_executor_ops;

typedef const dms_executor_ops *(*dms_plugin_entry_fn)(void);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
