/* build/recipe.h - the Dockerfile a droid's build uses, and the check it passes before the engine sees it.
 *
 * The repository's own Dockerfile (at the root of the checkout, read beneath it: a symlink is refused, never
 * followed), or, without one, the one generated from the stack's template (detect.h). Either way the text is
 * checked against the base-image and ADD policy (dfpolicy.h) for the droid's user, and that very text is what
 * the build gets (dms_build_request.dockerfile_text): nothing is written into the checkout, and nothing in
 * the checkout can change what was checked. Thread-safe.
 */
#ifndef DMSD_BUILD_RECIPE_H
#define DMSD_BUILD_RECIPE_H

#include <stddef.h>

#include <dms/error.h>

#include <dms/executor.h>

#include "../core/core.h"
#include "../droids/droid.h"

#define RECIPE_DOCKERFILE_MAX_BYTES (1024 * 1024)

/* One line for build.out (no newline). */
typedef void (*recipe_say_fn)(void *ud, const char *line, size_t len);

typedef struct recipe_in {
    core *core;                 /* whose droids' images the user may build FROM */
    dms_executor *ex;           /* whether a stack image is present */
    const char *allowed_images; /* DMS_BUILD_ALLOWED_IMAGES (dfpolicy.h) */
    const droid *d;
    const char *src; /* the checkout */
    recipe_say_fn say;
    void *ud;
} recipe_in;

/* The Dockerfile to build, checked: *text is the caller's (free). BUILD_FAILED (field "dockerfile") when the
 * policy refuses it (the reason names the line) or it cannot be read as a file of the repository;
 * BUILD_FAILED or INVALID when no stack fits; IMAGE when a stack image is missing (scripts/stack-images).
 * None is retryable. */
int recipe_dockerfile(const recipe_in *in, char **text, dms_error *err);

#endif
