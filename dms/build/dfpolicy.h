/* build/dfpolicy.h - what a repository's Dockerfile may reach: the images it starts from or copies out of,
 * and what ADD may fetch. Checked before the engine sees the file; a refusal is a failed build whose reason
 * names the line.
 *
 * Why: the engine resolves FROM and COPY --from against every tag on the host and against image-id prefixes
 * of any length (`FROM 3528` is an image here), so one user's Dockerfile could start from another user's
 * image and read its files; and dockerd fetches an ADD URL itself, from the host's network. So every FROM,
 * COPY --from and ONBUILD trigger is resolved as the engine would resolve it (parser directives,
 * continuations, ARG before and after FROM, build args, ${VAR}, ${VAR:-x}, ${VAR:+x}, quotes, stage names in
 * any case, numeric stages,
 * --platform) and each image it names must be one of:
 *   - a stack image dms provides:               dms-stack/<anything>
 *   - an image of one of the user's own droids: dms-droid/<droid id>:<tag>
 *   - what the operator allows (allowed):       exact references, or prefixes ending in '*' (dms-test/...)
 * written in the familiar form (docker.io/library/busybox is busybox:latest). An image id (hex of any length,
 * or sha256:...) or a digest reference (name@sha256:...) passes only an exact entry of the operator's list.
 * An ADD source that is a URL of any scheme or a git remote is refused, and so is one whose value we cannot
 * know (a variable a base image's environment may set) unless what we know of it is already a path. Whatever
 * cannot be resolved, or is not understood, is refused: the check fails closed.
 *
 * No I/O; thread-safe.
 */
#ifndef DMSD_BUILD_DFPOLICY_H
#define DMSD_BUILD_DFPOLICY_H

#include <stdbool.h>
#include <stddef.h>

#include <dms/error.h>

#define DFP_STACK_PREFIX "dms-stack/"
#define DFP_DROID_PREFIX "dms-droid/"

/* Whether droid_id is one of the building user's droids. */
typedef bool (*dfp_own_fn)(void *ud, const char *droid_id);

typedef struct dfp_policy {
    const char *allowed;  /* DMS_BUILD_ALLOWED_IMAGES (comma-separated), or NULL */
    dfp_own_fn own_droid; /* NULL: no droid image is the user's */
    void *ud;
    char *const *build_args; /* "KEY=VALUE" the build passes to the engine, or NULL */
} dfp_policy;

/* 0 when everything the Dockerfile names is allowed. BUILD_FAILED (field "dockerfile") otherwise, the message
 * beginning "Dockerfile line N: " and naming the instruction and what it names. */
int dfp_check(const char *text, size_t len, const dfp_policy *p, dms_error *err);

/* Whether the policy allows the image reference ref (as the Dockerfile names it, variables already
 * substituted). On false, why (if not NULL) says which rule refused it. */
bool dfp_image_allowed(const dfp_policy *p, const char *ref, char *why, size_t why_size);

/* INVALID (field "DMS_BUILD_ALLOWED_IMAGES") naming the first entry that is neither an image reference nor a
 * prefix ending in '*'. Empty entries are ignored. */
int dfp_allowlist_validate(const char *list, dms_error *err);

#endif
