/* build/composebuild.h - the build of a compose droid: every service with `build` built into an image of its
 * own, every `image:` service checked against the tenant rules and pinned to its image id, every env_file
 * read beneath the checkout; one release holds them all (all or none).
 *
 * A droid is a compose droid when its checkout holds the compose file it named at create (compose_file), or,
 * without one, compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml at its root. The file is
 * read beneath the checkout (no symlink followed), parsed (compose/compose.h) with the droid's env, and kept
 * in the release with what was built, so the runner starts exactly what was built and checked:
 *
 *   {"file": "compose.yaml", "text": "<the file>",
 *    "services": {"api": {"image": "sha256:...", "tag": "dms-droid/<id>:b<build>-api", "built": true,
 *                         "env_file": ["K=V", ...], "binds": [null | "/abs/copy", ...]}, ...}}
 *
 * Images a service builds are tagged dms-droid/<droid>:b<build>-<service> (the build's labels as any droid
 * build's); an `image:` service may name what a droid's Dockerfile may start FROM (dfpolicy.h) and must be on
 * this host already (nothing is pulled). Build output goes to the droid's build log, each line tagged
 * "[service] ". A refusal names the key path ("services.web.image") in the build's reason.
 *
 * Thread-safe (one call per build).
 */
#ifndef DMSD_BUILD_COMPOSEBUILD_H
#define DMSD_BUILD_COMPOSEBUILD_H

#include <stdbool.h>
#include <stdint.h>

#include <dms/error.h>
#include <dms/executor.h>

#include "../core/core.h"
#include "../droids/droid.h"
#include "buildopts.h"

#define COMPOSEBUILD_ENV_FILE_MAX_BYTES (64 * 1024)

/* The compose file of the checkout at src for d: 1 with name (d->compose_file or one of the four default
 * names, static or borrowed from d), 0 when there is none, or BUILD_FAILED (field compose_file) when d names
 * one that is not a regular file of the repository. */
int composebuild_find(const char *src, const droid *d, const char **name, dms_error *err);

typedef void (*composebuild_out_fn)(void *ud, dms_stream_type stream, const char *line, size_t len);

typedef struct composebuild_in {
    dms_executor *ex;
    core *core; /* whose droids' images the user may name */
    const build_config *cfg;
    const droid *d;
    int64_t build_id;
    const char *src;       /* the checkout */
    const char *file;      /* composebuild_find's name */
    const char *binds_dir; /* where repository paths a service mounts are copied (bindcopy.h) */
    const char *prev_json; /* the compose member of the droid's newest release, or NULL: a service whose build
                            * inputs did not change reuses its image (srchash.h) */
    dms_cancel_token *token;
    composebuild_out_fn out; /* build.out / build.err */
    void *ud;
} composebuild_in;

typedef struct composebuild_result {
    char *compose_json;  /* the release's compose member (caller frees) */
    char *image_id;      /* the routed service's image (caller frees) */
    char *tag;           /* and its tag (caller frees) */
    int64_t image_bytes; /* the sizes of the images it built */
    char **built;        /* tags of the images it built, NULL-terminated (caller frees with dmsu_strv_free):
                          * on failure, what must be removed */
} composebuild_result;

/* Builds the compose droid. 0 with *res filled; else the error (BUILD_FAILED or INVALID with the key path for
 * the user's faults, not retryable; ENGINE/UNAVAILABLE retryable; CANCELLED) and res->built lists what was
 * built before it failed. */
int composebuild_run(const composebuild_in *in, composebuild_result *res, dms_error *err);
void composebuild_result_clear(composebuild_result *res);

#endif
