/* build/git.h - what dmsd asks of git, through libgit2 1.5: look at a remote without cloning (reachable?
 * branches? default branch?) and clone one branch, optionally pinned to a commit.
 *
 * Every call checks the repository against the operator's policy first, at the time of use: a local one
 * must resolve beneath DMS_LOCAL_REPO_ROOTS (localrepo.h) and libgit2 is given its real path; a remote one's
 * connections go through the guarded stream (gitstream.h: permitted addresses only, a timeout without
 * progress). A refusal is FORBIDDEN (field "repo"), never retried.
 *
 * Errors are sorted by whose fault they are, because that decides retries: a network/transport failure is
 * UNAVAILABLE and retryable; a repository, branch or commit that does not exist is NOT_FOUND/INVALID and is
 * not. The process calls git_libgit2_init() once (dmsd's main) before any of these. Thread-safe (each call
 * uses its own libgit2 objects).
 */
#ifndef DMSD_BUILD_GIT_H
#define DMSD_BUILD_GIT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include <dms/executor.h>

#define GIT_SHA_HEX 40

#define GITX_DEFAULT_TIMEOUT_S 60
#define GITX_MAX_TIMEOUT_S     86400

/* The operator's policy for every repository dmsd reads (see localrepo.h and gitstream.h). */
typedef struct gitx_config {
    const char
        *local_roots;       /* DMS_LOCAL_REPO_ROOTS: where local repositories may come from (NULL/"": none) */
    const char *allow_nets; /* DMS_GIT_ALLOW_NETS: networks git may connect to beyond the public ones */
    int timeout_s;          /* DMS_GIT_TIMEOUT_S: longest a connection may make no progress (0: default) */
    const char *data_dir;   /* dmsd's data directory: never a local repository (may be NULL) */
} gitx_config;

/* Sets the policy and installs the guarded socket stream; after git_libgit2_init, before any other call
 * here, and once (not thread-safe). INVALID naming the setting that is wrong. Until it succeeds every call
 * below fails (INTERNAL): git never runs unguarded. gitx_shutdown undoes it, before git_libgit2_shutdown. */
int gitx_init(const gitx_config *cfg, dms_error *err);
void gitx_shutdown(void);

/* What the API checks before it accepts repo: a local repository must resolve beneath a root
 * (FORBIDDEN naming field otherwise, or INVALID for a malformed file:// URL; one that does not exist yet is
 * accepted, its build fails). A remote URL passes: its host is checked when git connects. */
int gitx_check_access(const char *repo, const char *field, dms_error *err);

typedef struct gitx_remote_info {
    char *default_branch; /* NULL when the remote has no HEAD (empty repository) */
    char **branches;      /* NULL-terminated, sorted */
    size_t n_branches;
} gitx_remote_info;
void gitx_remote_info_clear(gitx_remote_info *info);

/* Lists the remote's branches and default branch (git ls-remote). */
int gitx_ls_remote(const char *repo, gitx_remote_info *out, dms_error *err);

/* The commit the remote's branch points at (branch NULL: the default branch, whose name goes into
 * resolved, which may be NULL; RESOLVED_MAX bytes), as GIT_SHA_HEX + 1 bytes into sha. NOT_FOUND (field
 * "branch") when the branch does not exist; transport trouble is UNAVAILABLE (retryable). */
#define GITX_BRANCH_MAX 256
int gitx_branch_head(const char *repo, const char *branch, char *sha, char *resolved, dms_error *err);

/* GET /git/check's answer:
 * {"repo","reachable","error"?,"default_branch","branches","branch"?,"branch_exists"?}. */
json_t *gitx_check_json(const char *repo, const char *branch);

/* Clones branch (NULL: the default branch) of repo into dir (which must not exist), checks out commit if
 * given, and writes the checked-out commit's sha into sha (GIT_SHA_HEX + 1 bytes). cancel (may be NULL)
 * aborts the transfer (CANCELLED), also while a remote is silent. */
int gitx_clone(const char *repo, const char *branch, const char *commit, const char *dir,
               dms_cancel_token *cancel, char *sha, dms_error *err);

#endif
