/* build/buildopts.h - what bounds a droid's build: the operator's settings (time, logs, memory, CPU) and the
 * one a user may choose within them, a droid's build_timeout_s.
 *
 * The settings are environment variables parsed in settings.c into dmsd_config, and handed to the builder as
 * a build_config (main.c); their defaults and ranges are here so that settings.c, the API and the builder
 * agree. Functions are pure and thread-safe.
 */
#ifndef DMSD_BUILD_BUILDOPTS_H
#define DMSD_BUILD_BUILDOPTS_H

#include <stdbool.h>

#include <jansson.h>

#include <dms/error.h>

#define BUILD_TIMEOUT_DEFAULT_S     1800            /* DMS_BUILD_TIMEOUT_S: clone + build of one attempt */
#define BUILD_TIMEOUT_MAX_DEFAULT_S 3600            /* DMS_BUILD_TIMEOUT_MAX_S: the most a droid may ask */
#define BUILD_TIMEOUT_CEILING_S     (7 * 24 * 3600) /* the largest value either setting takes */
#define BUILD_LOG_MAX_MB_DEFAULT    8 /* DMS_BUILD_LOG_MAX_MB: per file (build.out, build.err) */
#define BUILD_LOG_MAX_MB_CEILING    1024
#define BUILD_MEMORY_MB_DEFAULT     2048 /* DMS_BUILD_MEMORY_MB: each build step's container; 0: no limit */
#define BUILD_MEMORY_MB_MIN         16   /* the engine refuses less than 6 MB; a build needs more anyway */
#define BUILD_MEMORY_MB_CEILING     (1024 * 1024)
#define BUILD_CPU_MILLIS_DEFAULT    1000 /* DMS_BUILD_CPU_MILLIS: one core per build; 0: no limit */
#define BUILD_CPU_MILLIS_MIN        10   /* a quota of 1 ms per 100 ms period, the kernel's least */
#define BUILD_CPU_MILLIS_CEILING    (1024 * 1000)

#define BUILD_TIMEOUT_FIELD "build_timeout_s"

/* The operator's build settings: dmsd_config holds them (settings.c fills them), the builder gets a copy. */
typedef struct build_config {
    int workers;       /* DMS_BUILD_WORKERS: builds that run at once */
    int user_max;      /* DMS_BUILD_USER_MAX: of those, at most this many of one user */
    int timeout_s;     /* DMS_BUILD_TIMEOUT_S: time limit of a build (clone + build) */
    int timeout_max_s; /* DMS_BUILD_TIMEOUT_MAX_S: the most a droid's build_timeout_s may ask */
    int log_max_mb;    /* DMS_BUILD_LOG_MAX_MB: cap of build.out and of build.err */
    int memory_mb;     /* DMS_BUILD_MEMORY_MB: memory of each build step (0: no limit) */
    int cpu_millis;    /* DMS_BUILD_CPU_MILLIS: CPU of each build step, 1000 = a core (0: no limit) */
    char
        *allowed_images; /* DMS_BUILD_ALLOWED_IMAGES: FROM images beyond the stacks' (dmsd_config frees it) */
    int keep_releases;   /* DMS_KEEP_RELEASES: images kept per droid (older ones are removed) */
} build_config;

/* A request body's build options (POST /droids, PATCH /droids/:id). */
typedef struct build_opts {
    bool has_timeout;
    int timeout_s; /* 0: the operator's default (given as null) */
} build_opts;

/* Takes "build_timeout_s" out of body (so the droid's own parser does not see it): an integer from 1 to
 * max_s, or null for the operator's default. INVALID naming the field otherwise, saying which setting
 * allows more. */
int build_opts_take(json_t *body, int max_s, build_opts *out, dms_error *err);

/* The time limit of a build of a droid whose own build_timeout_s is droid_s (0: none): the droid's, never
 * more than the operator's maximum (which may have been lowered since), else the operator's default. */
int build_timeout_effective(const build_config *cfg, int droid_s);

#endif
