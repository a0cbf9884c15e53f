/* build/localrepo.h - local repositories (an absolute path or a file:// URL): off unless the operator lists
 * the directories they may come from (DMS_LOCAL_REPO_ROOTS).
 *
 * libgit2 clones anything dmsd can read when given a path, so a user could have any host repository built
 * and served back. A local repository is allowed only when its real path - every symlink and ".." resolved -
 * lies beneath one of the roots, and not inside dmsd's own data directory (where other users' checkouts
 * live). The path is resolved with openat2(RESOLVE_BENEATH) from the root, so a resolution never looks
 * outside a root: a symlink that leaves it (or any absolute symlink) is refused, and the answer for a path
 * outside every root does not depend on what exists there. Resolution happens at every use (create, check,
 * clone), and libgit2 is given the resolved real path, not what the user wrote.
 *
 * What libgit2 then reads inside that repository (its .git file, commondir, objects/info/alternates) is
 * followed as git does: the roots must hold only repositories the operator trusts.
 * Thread-safe once parsed (read-only).
 */
#ifndef DMSD_BUILD_LOCALREPO_H
#define DMSD_BUILD_LOCALREPO_H

#include <stdbool.h>
#include <stddef.h>

#include <dms/executor.h>

#define LOCALREPO_ROOTS_SETTING "DMS_LOCAL_REPO_ROOTS"

typedef struct localrepo_root {
    char *spelling; /* as configured, without trailing slashes */
    char *real;     /* its real path */
} localrepo_root;

typedef struct localrepo_policy {
    localrepo_root *roots;
    size_t n_roots;
    char *data_dir; /* real path of dmsd's data directory (NULL: none): never a source */
} localrepo_policy;

/* Parses a colon-separated list of absolute directories (empty or NULL: no local repository at all).
 * INVALID (field DMS_LOCAL_REPO_ROOTS) naming an entry that is relative, holds "." or "..", or is not an
 * existing directory. data_dir may be NULL. Clear p with localrepo_policy_clear. */
int localrepo_policy_parse(localrepo_policy *p, const char *roots, const char *data_dir, dms_error *err);
void localrepo_policy_clear(localrepo_policy *p);

/* True for what libgit2 would open on this host: a leading '/' or a file:// URL (any case). */
bool localrepo_is_local(const char *repo);

/* The real path of the local repository repo into path (size bytes). Errors name field (the request's name
 * for the repository): FORBIDDEN when local repositories are off, when the path is not beneath a root once
 * resolved, or lies in the data directory (the message names DMS_LOCAL_REPO_ROOTS); NOT_FOUND when it does
 * not exist beneath a root (or is not a directory); INVALID for a file:// URL that names no local path. */
int localrepo_resolve(const localrepo_policy *p, const char *repo, const char *field, char *path, size_t size,
                      dms_error *err);

/* path as a file:// URL, every byte but [A-Za-z0-9/._~-] percent-encoded (what libgit2 decodes), into url.
 * INVALID when it does not fit. */
int localrepo_file_url(const char *path, char *url, size_t size, dms_error *err);

#endif
