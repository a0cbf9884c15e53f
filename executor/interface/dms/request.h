/* dms/request.h - what an execution is asked to do: the request, its JSON form and its validation.
 *
 * A request is plain data. It can be filled in C (pointers borrowed from the caller for the duration of the
 * call that takes it) or parsed from JSON with dms_exec_request_from_json() (then it owns everything and is
 * freed with dms_exec_request_free()). Validation is shared by every backend: dms_executor_start() validates
 * before the backend sees the request, so an invalid request creates nothing anywhere.
 *
 * String lists (entrypoint, cmd, env, labels, cap_drop, cap_add, network_aliases) are NULL-terminated arrays,
 * argv-style; NULL means "unset" (the image's default for entrypoint/cmd), an array holding only NULL means
 * "explicitly empty".
 */
#ifndef DMS_REQUEST_H
#define DMS_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dms/error.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* Identifiers (executor id, job id, execution id, volume names): [A-Za-z0-9][A-Za-z0-9_.-]*, at most this
 * long. They go into container names, label values and file names as they are, never escaped. */
#define DMS_ID_MAX 64

/* The smallest memory limit a container runtime accepts (runc refuses less than 6 MiB). */
#define DMS_MEMORY_MIN_BYTES (6LL * 1024 * 1024)

/* Defaults applied when the request leaves a limit at 0. */
#define DMS_DEFAULT_RESULT_OUTPUT_BYTES (64 * 1024)          /* excerpt of stdout/stderr kept in the result */
#define DMS_DEFAULT_LOG_FILE_BYTES      (32LL * 1024 * 1024) /* capture file size before rotation (2 kept) */
#define DMS_DEFAULT_STOP_GRACE_MS       10000                /* SIGTERM to SIGKILL */

typedef enum dms_mount_type {
    DMS_MOUNT_BIND = 1,   /* source: absolute host path that exists */
    DMS_MOUNT_VOLUME = 2, /* source: volume name; created (labelled) by the backend when absent */
    DMS_MOUNT_TMPFS = 3,  /* no source; size_bytes optional */
} dms_mount_type;

typedef struct dms_mount {
    dms_mount_type type;
    const char *source;
    const char *target; /* absolute path inside the workload */
    bool read_only;
    int64_t size_bytes; /* tmpfs only; 0 = backend default */
} dms_mount;

typedef enum dms_network_mode {
    DMS_NET_DEFAULT = 0, /* the backend's default (Docker: bridge) */
    DMS_NET_NONE = 1,    /* no network at all (fastest to start; batch jobs) */
    DMS_NET_HOST = 2,    /* the host's network namespace */
    DMS_NET_NAMED = 3,   /* attach to network `name`; created (labelled) by the backend when absent */
} dms_network_mode;

/* Network aliases: other members of a named network reach the workload by these names as well as by its
 * own (Docker: the engine's DNS on a user-defined network; compose's service names). Each is a DNS label,
 * [a-z0-9]([a-z0-9-]*[a-z0-9])?, at most DMS_NETWORK_ALIAS_MAX characters; at most DMS_NETWORK_ALIASES_MAX of
 * them, none twice. */
#define DMS_NETWORK_ALIAS_MAX   63
#define DMS_NETWORK_ALIASES_MAX 16

typedef struct dms_port {
    uint16_t container_port;
    uint16_t host_port;   /* 0 = any free port; the bound one is reported by status */
    const char *protocol; /* "tcp" (default, NULL) or "udp" */
    const char *host_ip;  /* NULL = 127.0.0.1 (never published to the world unless asked) */
} dms_port;

typedef struct dms_engine_spec {
    const char *image;       /* Docker: required; process: ignored */
    char *const *entrypoint; /* NULL = image default */
    char *const *cmd;        /* NULL = image default */
    char *const *env;        /* "KEY=VALUE"; KEY matches [A-Za-z_][A-Za-z0-9_]* */
    const char *working_dir; /* absolute, or NULL */
    const char *user;        /* "uid[:gid]" or name, or NULL */
} dms_engine_spec;

typedef struct dms_resources {
    int64_t cpu_millis;   /* 1000 = one core; 0 = unlimited */
    int64_t memory_bytes; /* 0 = unlimited; else >= DMS_MEMORY_MIN_BYTES */
    int64_t disk_bytes;   /* 0 = unlimited; backends that cannot enforce it refuse it (NOT_SUPPORTED) */
    int64_t pids_limit;   /* 0 = unlimited */
    int32_t gpus;         /* 0 = none, -1 = all */
} dms_resources;

/* Capabilities are named as capabilities(7) spells them without the "CAP_" prefix ("NET_RAW",
 * "NET_BIND_SERVICE"); DMS_CAP_ALL in a list stands for every capability. */
#define DMS_CAP_ALL  "ALL"
#define DMS_CAP_LAST 40 /* CAP_CHECKPOINT_RESTORE (Linux 5.9): the highest capability number known here */

/* What the workload may do as a process: the privileges it starts with and whether it can gain more.
 * The capability set is the backend's default set (Docker: its 14 default capabilities; process backend: what
 * the host gives a process of its user), minus cap_drop, plus cap_add, as Docker applies CapDrop and CapAdd:
 * {"ALL"} in cap_drop with a few names in cap_add is an allow-list. A name may not be in both lists. Owned
 * like every other string list of the request (borrowed, or the request's own after from_json/copy). */
typedef struct dms_security {
    bool no_new_privileges; /* execve never grants privileges: setuid/setgid bits and file capabilities are
                             * ignored (Linux PR_SET_NO_NEW_PRIVS; Docker: SecurityOpt no-new-privileges) */
    char *const *cap_drop;  /* capability names or "ALL"; NULL = nothing dropped */
    char *const *cap_add;   /* capability names (or "ALL") added after the drop; NULL = nothing added */
} dms_security;

typedef struct dms_output_limits {
    int64_t result_output_bytes; /* cap of each stdout/stderr excerpt in the result (0 = default) */
    int64_t log_file_bytes;      /* cap of one capture file before rotation (0 = default) */
} dms_output_limits;

/* A health check run inside the workload (appended in ABI 7). The backend reports its verdict in
 * dms_exec_status.health. */
typedef struct dms_healthcheck {
    char *const *test;   /* the command: an argv, or with shell one command line for the workload's /bin/sh
                          * -c (Docker: ["CMD", ...] / ["CMD-SHELL", line]); NULL with disable */
    bool shell;          /* test[0] is a shell command line (test holds exactly one string) */
    bool disable;        /* no check at all, not even the image's own (Docker: ["NONE"]) */
    int64_t interval_ms; /* between checks; 0 = backend default (Docker: 30 s); else >= 1 ms */
    int64_t timeout_ms;  /* one check's limit; 0 = default (30 s) */
    int64_t start_period_ms; /* failures in this first period do not count; 0 = default (0) */
    int retries;             /* consecutive failures that make it unhealthy; 0 = default (3) */
} dms_healthcheck;

typedef struct dms_exec_request {
    const char *job_id;
    const char *execution_id;
    dms_engine_spec engine;
    dms_resources resources;
    const dms_mount *mounts;
    size_t n_mounts;
    dms_network_mode network_mode;
    const char *network_name; /* DMS_NET_NAMED only */
    const dms_port *ports;
    size_t n_ports;
    char *const *labels; /* extra "key=value" labels; keys must not start with "io.dms." */
    dms_output_limits limits;
    int64_t timeout_ms;    /* run timeout, counted from the moment the workload runs; 0 = none */
    int64_t stop_grace_ms; /* SIGTERM to SIGKILL on cancel/timeout; 0 = default */
    bool keep_container;   /* keep the finished container (debugging); default: removed after the result */
    const char *role;      /* the io.dms.role label: "job" (NULL) or "build" */
    bool init; /* a minimal init runs as PID 1 (Docker: HostConfig.Init): the workload gets default
                * signal handling (a server that never installed a SIGTERM handler still stops at
                * once) and zombies are reaped */
    dms_security security;        /* privileges (appended in ABI 4): all zero = the backend's defaults */
    char *const *network_aliases; /* appended in ABI 6: names the workload is also reached by on its named
                                   * network (see DMS_NETWORK_ALIAS_MAX); DMS_NET_NAMED only; NULL = none.
                                   * Backends without named networks refuse it (NOT_SUPPORTED). */
    const dms_healthcheck *healthcheck; /* appended in ABI 7: NULL = the image's own check, if any. Backends
                                         * that cannot run one refuse it (NOT_SUPPORTED, "healthcheck") */
} dms_exec_request;

/* Parses the JSON form of a request:
 *   {"job_id": "j1", "execution_id": "e1",
 *    "engine": {"image": "...", "entrypoint": ["sh","-c"], "cmd": ["echo hi"],
 *               "env": {"K": "V"} or ["K=V"], "working_dir": "/", "user": "1000"},
 *    "resources": {"cpu_millis": 500, "memory_bytes": 67108864, "pids_limit": 64, "disk_bytes": 0, "gpus":
 * 0}, "mounts": [{"type": "bind|volume|tmpfs", "source": "...", "target": "/data", "read_only": false,
 *                "size_bytes": 0}],
 *    "network": {"mode": "default|none|host|named", "name": "...", "aliases": ["web"],
 *                "ports": [{"container": 8080, "host": 0, "protocol": "tcp", "host_ip": "127.0.0.1"}]},
 *    "labels": {"k": "v"}, "limits": {"result_output_bytes": 65536, "log_file_bytes": 33554432},
 *    "timeout_ms": 0, "stop_grace_ms": 10000, "keep_container": false, "role": "job", "init": false,
 *    "security": {"no_new_privileges": true, "cap_drop": ["ALL"], "cap_add": ["NET_BIND_SERVICE"]},
 *    "healthcheck": {"test": ["curl", "-f", "http://localhost/"], "shell": false, "disable": false,
 *                    "interval_ms": 0, "timeout_ms": 0, "start_period_ms": 0, "retries": 0}}
 * Unknown keys are refused (a typo must not be silently ignored); err->field names the offending key.
 * The result is validated. Caller owns *out; free with dms_exec_request_free(). */
int dms_exec_request_from_json(const char *json, size_t len, dms_exec_request **out, dms_error *err);

/* The JSON form of a request (as accepted by dms_exec_request_from_json). Caller owns; free() it. NULL on
 * OOM. */
char *dms_exec_request_to_json(const dms_exec_request *req);

/* Deep copy; caller owns *out, free with dms_exec_request_free(). */
int dms_exec_request_copy(const dms_exec_request *req, dms_exec_request **out, dms_error *err);

/* Frees a request made by from_json or copy. Accepts NULL. Never call it on a caller-built request. */
void dms_exec_request_free(dms_exec_request *req);

/* Validates a request; on failure err->field names the field ("engine.env[1]") and the message says why. */
int dms_exec_request_validate(const dms_exec_request *req, dms_error *err);

/* True if s is a valid identifier (see DMS_ID_MAX). */
bool dms_id_valid(const char *s);

/* The Linux number of a capability name ("NET_RAW" -> 13; see DMS_CAP_ALL for the spelling), or -1 for a name
 * this library does not know ("ALL" included). Thread-safe. */
int dms_capability_number(const char *name);
/* The name of capability number n (13 -> "NET_RAW"), or NULL beyond DMS_CAP_LAST. Static string. */
const char *dms_capability_name(int n);

/* True if s is a plausible image reference: [registry[:port]/]name[:tag][@digest], lower-case name parts. */
bool dms_image_ref_valid(const char *s);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
