/* compose/release.h - the compose member of a release, as build/composebuild.h writes it: the file's text and
 * what each service runs.
 *
 *   {"file": "compose.yaml", "text": "<the file>",
 *    "services": {"api": {"image": "sha256:...", "tag": "...", "built": true, "env_file": ["K=V"]}, ...}}
 *
 * Pure (no I/O). Thread-safe on distinct objects. */
#ifndef DMSD_COMPOSE_RELEASE_H
#define DMSD_COMPOSE_RELEASE_H

#include <stdbool.h>

#include <jansson.h>

#include <dms/error.h>

#include "compose.h"

typedef struct compose_release {
    json_t *doc;     /* the member, parsed */
    compose_file *f; /* its file, parsed again with the droid's env of now */
} compose_release;

/* Reads json (a release's compose member) and parses its file with env ("K=V", NULL-terminated, may be NULL).
 * INVALID naming the key path when the file no longer parses with this env. Clear with compose_release_clear
 * (also after a failure). */
int compose_release_load(const char *json, char *const *env, compose_release *out, dms_error *err);
void compose_release_clear(compose_release *r);

/* The service that is the droid's own container: the routed one, or for a droid without a route
 * (`x-dms: {route: false}`) the last in start order. Its port (0 without a route): compose_release_port. */
int compose_release_primary(const compose_release *r);
int compose_release_port(const compose_release *r);

/* What the release runs for service name: the image (an id), or NULL if the release has no such service. */
const char *compose_release_image(const compose_release *r, const char *name);
/* The service's env_file lines ("K=V"), a JSON array borrowed from r, or NULL when it has none. */
json_t *compose_release_env_file(const compose_release *r, const char *name);

/* The service's copies of repository paths it mounts (JSON array aligned with its volumes: a path, or null
 * for a named volume), borrowed from r, or NULL. */
json_t *compose_release_binds(const compose_release *r, const char *name);

/* The images a release built (not the `image:` ones, which are not the droid's), NULL-terminated; caller
 * frees with dmsu_strv_free. NULL on OOM or when json is NULL; an empty vector when it built none. */
char **compose_release_built(const char *json);

#endif
