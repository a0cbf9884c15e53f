/* compose/compose.h - a compose file (compose.yaml) read into a typed model: the subset of the Compose
 * Specification that dms runs (dms/compose/README.md has the table), everything else refused naming its key
 * path. Pure: no I/O, no engine. The builder and runner turn the model into builds and executions.
 *
 * What dms does differently from `docker compose`, by design:
 * - Ports are never published on the host: dms routes one service through Caddy, so the model keeps only the
 *   container port and protocol of `ports` and `expose` (a host part "8080:80" is read and dropped).
 * - Paths (build context, dockerfile, env_file, bind sources) are relative to the repository's root and stay
 *   inside it; binds are always read-only; host paths are refused.
 * - Interpolation uses the droid's env, not the host's. The droid's env also reaches every service (the
 *   runner's job): a service's `environment` overrides it key by key.
 *
 * Ownership: compose_parse allocates the whole model; compose_file_free releases it (NULL is fine). Every
 * string and vector in the model belongs to it. Thread-safe on distinct objects. */
#ifndef DMSD_COMPOSE_COMPOSE_H
#define DMSD_COMPOSE_COMPOSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <dms/error.h>

#define COMPOSE_FILE_MAX_BYTES  (256 * 1024) /* larger files are refused before parsing */
#define COMPOSE_SERVICES_MAX    64
#define COMPOSE_NAME_MAX        63   /* a service name is a DNS label on the droid's network */
#define COMPOSE_STRING_MAX      8192 /* bytes of any scalar, before and after interpolation */
#define COMPOSE_LIST_MAX        256  /* items of any list or map (environment, ports, command, ...) */
#define COMPOSE_DURATION_MAX_MS (24LL * 3600 * 1000)
#define COMPOSE_RETRIES_MAX     1000
#define COMPOSE_CPUS_MAX        1024

typedef enum compose_proto {
    COMPOSE_PROTO_TCP = 0,
    COMPOSE_PROTO_UDP,
} compose_proto;

/* A container port, from `ports` or `expose`. */
typedef struct compose_port {
    int port; /* 1..65535 */
    compose_proto proto;
} compose_port;

typedef enum compose_condition {
    COMPOSE_COND_STARTED = 0, /* service_started (the default, and the list form's) */
    COMPOSE_COND_HEALTHY,     /* service_healthy */
    COMPOSE_COND_COMPLETED,   /* service_completed_successfully */
} compose_condition;

typedef struct compose_dep {
    char *service; /* a service of the same file */
    compose_condition condition;
    bool required; /* default true */
    bool restart;  /* default false: restart this service when the dependency is restarted */
} compose_dep;

typedef enum compose_restart {
    COMPOSE_RESTART_NO = 0, /* the default */
    COMPOSE_RESTART_ALWAYS,
    COMPOSE_RESTART_ON_FAILURE,
    COMPOSE_RESTART_UNLESS_STOPPED,
} compose_restart;

typedef enum compose_health {
    COMPOSE_HEALTH_IMAGE = 0, /* no healthcheck key (or no test): the image's HEALTHCHECK, if any */
    COMPOSE_HEALTH_CMD,       /* test: ["CMD", argv...]: test holds argv */
    COMPOSE_HEALTH_SHELL,     /* test: "cmd" or ["CMD-SHELL", "cmd"]: test holds the one command line */
    COMPOSE_HEALTH_DISABLED,  /* test: ["NONE"] or disable: true: no check, even the image's */
} compose_health;

/* Durations are 0 when unset (the engine's default applies). */
typedef struct compose_healthcheck {
    compose_health kind;
    char **test; /* NULL-terminated; NULL unless CMD or SHELL */
    int64_t interval_ms, timeout_ms, start_period_ms, start_interval_ms;
    int retries; /* 0 = unset */
} compose_healthcheck;

typedef enum compose_mount_type {
    COMPOSE_MOUNT_VOLUME = 0, /* source names a volume of compose_file.volumes */
    COMPOSE_MOUNT_BIND,       /* source is a path relative to the repository's root; always read-only */
} compose_mount_type;

typedef struct compose_mount {
    compose_mount_type type;
    char *source;
    char *target; /* absolute path in the container */
    bool read_only;
} compose_mount;

typedef struct compose_env_file {
    char *path;    /* relative to the repository's root; reading it is the builder's job */
    bool required; /* default true: a missing file fails the release */
} compose_env_file;

typedef struct compose_build {
    char *context;    /* relative to the repository's root, "." for the root */
    char *dockerfile; /* relative to the context; NULL = the engine's default (Dockerfile) */
    char **args;      /* "K=V", NULL-terminated, may be NULL; a bare K took its value from the droid's env */
    char *target;     /* a build stage, or NULL */
} compose_build;

typedef struct compose_service {
    char *name;           /* the key under services: also its DNS name on the droid's network */
    char *image;          /* NULL when only built; with build too, the tag of the built image */
    compose_build *build; /* NULL when only pulled/run from image */
    char **command;       /* NULL = the image's CMD; else NULL-terminated argv (may be empty) */
    char **entrypoint;    /* NULL = the image's ENTRYPOINT; likewise */
    char **environment;   /* "K=V" in file order, NULL-terminated, may be NULL (see the file comment) */
    compose_env_file *env_files;
    size_t n_env_files;
    compose_port *ports; /* `ports` then `expose`, container side only, without duplicates */
    size_t n_ports;
    compose_dep *depends_on; /* sorted by service name */
    size_t n_depends_on;
    compose_healthcheck healthcheck;
    compose_restart restart;
    int restart_max;        /* on-failure:N; 0 = no limit */
    compose_mount *volumes; /* in file order */
    size_t n_volumes;
    char *working_dir;    /* absolute, or NULL */
    char *user;           /* or NULL */
    char **labels;        /* "K=V", NULL-terminated, may be NULL; never io.dms.* */
    int64_t memory_bytes; /* deploy.resources.limits.memory; 0 = unset */
    int cpu_millis;       /* deploy.resources.limits.cpus * 1000; 0 = unset */
    bool singleton;       /* x-dms.singleton: never two copies at once (stop-then-start on redeploy) */
} compose_service;

typedef struct compose_volume {
    char *name;    /* the key under volumes */
    char **labels; /* "K=V", NULL-terminated, may be NULL */
} compose_volume;

typedef struct compose_file {
    compose_service *services; /* in start order: each after what it depends on; ties by name */
    size_t n_services;
    compose_volume *volumes; /* sorted by name */
    size_t n_volumes;
    /* The routed service (index into services) and its container port; route_service is -1 only when the
     * file says `x-dms: {route: false}` (a droid of workers only). */
    int route_service;
    int route_port;
} compose_file;

/* Parses a compose file: text (len bytes, need not be NUL-terminated), env the droid's "K=V" vector for
 * interpolation (NULL-terminated, may be NULL). On success *out is the caller's (compose_file_free). On
 * failure returns -DMS_E_INVALID (-DMS_E_NOMEM) with err's field the key path at fault
 * ("services.web.network_mode"; empty for a YAML syntax error, whose message has the line and column), and
 * *out NULL. No message holds a value of env. */
int compose_parse(const char *text, size_t len, char *const *env, compose_file **out, dms_error *err);

void compose_file_free(compose_file *f);

/* The service called name, or NULL. Borrowed from f. */
const compose_service *compose_find(const compose_file *f, const char *name);

#endif
