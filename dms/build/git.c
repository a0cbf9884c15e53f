/* git.c - remote listing and cloning through libgit2 (see git.h). */
#include "git.h"

#include <git2.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"
#include "../fdlimit.h"
#include "gitstream.h"
#include "localrepo.h"

#define HEADS_PREFIX "refs/heads/"
#define URL_MAX      (3 * PATH_MAX + 16) /* a percent-encoded real path as a file:// URL */

/* Set once by gitx_init, read-only afterwards. */
static localrepo_policy local_policy;

int gitx_init(const gitx_config *cfg, dms_error *err)
{
    egress_net *nets = NULL;
    size_t n = 0;
    int timeout_s = cfg->timeout_s > 0 ? cfg->timeout_s : GITX_DEFAULT_TIMEOUT_S;
    int r = egress_parse_nets(cfg->allow_nets, &nets, &n, err);
    if (r == 0)
        r = localrepo_policy_parse(&local_policy, cfg->local_roots, cfg->data_dir, err);
    if (r == 0 && (r = gitstream_install(nets, n, timeout_s, err)) < 0)
        localrepo_policy_clear(&local_policy);
    free(nets);
    return r;
}

void gitx_shutdown(void)
{
    gitstream_uninstall();
    localrepo_policy_clear(&local_policy);
}

int gitx_check_access(const char *repo, const char *field, dms_error *err)
{
    if (!localrepo_is_local(repo))
        return 0;
    char real[PATH_MAX];
    int r = localrepo_resolve(&local_policy, repo, field, real, sizeof(real), err);
    if (r == -DMS_E_NOT_FOUND) { /* not there yet: like an unreachable remote, its build will say so */
        dms_error_clear(err);
        return 0;
    }
    return r;
}

/* What libgit2 is given for repo, checked now: a local repository's real path as a file:// URL (so libgit2
 * never reads what the user wrote), or the remote URL as it is. Caller frees *url. */
static int target_url(const char *repo, char **url, dms_error *err)
{
    *url = NULL;
    if (!gitstream_installed())
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "git is not set up: gitx_init was not called");
    if (!localrepo_is_local(repo))
        return (*url = strdup(repo)) ? 0 : dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    char real[PATH_MAX];
    _cleanup_free_ char *u = malloc(URL_MAX);
    int r = u ? localrepo_resolve(&local_policy, repo, "repo", real, sizeof(real), err)
              : dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    if (r < 0 || (r = localrepo_file_url(real, u, URL_MAX, err)) < 0)
        return r;
    *url = u;
    u = NULL;
    return 0;
}

void gitx_remote_info_clear(gitx_remote_info *info)
{
    free(info->default_branch);
    dmsu_strv_free(info->branches);
    memset(info, 0, sizeof(*info));
}

/* What the guarded stream saw decides first: a refused address is the operator's policy, a stall is
 * transport trouble, a cancel is a cancel. Then libgit2's last error: transport trouble is retryable, the
 * rest is the user's input. */
static int git_fail(dms_error *err, int rc, const char *what, const char *repo, const gitstream_call *call)
{
    if (call->refused)
        return dms_error_set(err, DMS_E_FORBIDDEN, "repo", "%s %s: %s", what, repo, call->message);
    if (call->cancelled)
        return dms_error_set(err, DMS_E_CANCELLED, NULL, "%s: %s", what, call->message);
    if (call->timed_out) {
        dms_error_set(err, DMS_E_UNAVAILABLE, NULL, "%s %s: %s", what, repo, call->message);
        if (err)
            err->retryable = true;
        return -DMS_E_UNAVAILABLE;
    }
    const git_error *e = git_error_last();
    const char *msg = e && e->message ? e->message : "unknown error";
    int klass = e ? e->klass : 0;
    /* A local repository never has transport trouble: libgit2 reports a missing path as a NET error
     * ("unsupported URL protocol"), but it is the user's input. A remote URL whose OS-level connect failed
     * (connection refused) is transport trouble. */
    bool local = localrepo_is_local(repo);
    /* libgit2 keeps only the message of an OS error: out of descriptors is ours (fdlimit.h), never the
     * user's repository, local or not. */
    bool transport = fdlimit_exhausted_msg(msg) ||
                     (!local && (klass == GIT_ERROR_NET || klass == GIT_ERROR_SSL || klass == GIT_ERROR_SSH ||
                                 klass == GIT_ERROR_HTTP || klass == GIT_ERROR_OS));
    if (local && !transport && klass == GIT_ERROR_NET)
        msg = "not a git repository (or it does not exist)";
    if (rc == GIT_EUSER)
        return dms_error_set(err, DMS_E_CANCELLED, NULL, "%s: cancelled", what);
    int code = transport ? DMS_E_UNAVAILABLE : rc == GIT_ENOTFOUND ? DMS_E_NOT_FOUND : DMS_E_INVALID;
    dms_error_set(err, code, transport ? NULL : "repo", "%s %s: %s", what, repo ? repo : "", msg);
    if (err)
        err->retryable = transport;
    return -code;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A detached remote for url (repo as the user wrote it, for messages), connected for fetching (what
 * ls-remote does): free it with git_remote_free. */
static int connect_remote(const char *repo, const char *url, const gitstream_call *call, git_remote **out,
                          dms_error *err)
{
    int rc = git_remote_create_detached(out, url);
    if (rc < 0)
        return git_fail(err, rc, "open remote", repo, call);
    git_remote_callbacks cbs;
    git_remote_init_callbacks(&cbs, GIT_REMOTE_CALLBACKS_VERSION);
    if ((rc = git_remote_connect(*out, GIT_DIRECTION_FETCH, &cbs, NULL, NULL)) < 0) {
        int r = git_fail(err, rc, "connect to", repo, call);
        git_remote_free(*out);
        *out = NULL;
        return r;
    }
    return 0;
}

static int ls_remote(const char *repo, const char *url, const gitstream_call *call, gitx_remote_info *out,
                     dms_error *err)
{
    git_remote *remote = NULL;
    int rc = connect_remote(repo, url, call, &remote, err);
    if (rc < 0)
        return rc;
    const git_remote_head **heads = NULL;
    size_t n = 0;
    if ((rc = git_remote_ls(&heads, &n, remote)) < 0) {
        int r = git_fail(err, rc, "list", repo, call);
        git_remote_free(remote);
        return r;
    }
    out->branches = calloc(n + 1, sizeof(char *));
    for (size_t i = 0; out->branches && i < n; i++)
        if (strncmp(heads[i]->name, HEADS_PREFIX, strlen(HEADS_PREFIX)) == 0)
            out->branches[out->n_branches++] = strdup(heads[i]->name + strlen(HEADS_PREFIX));
    git_buf def = GIT_BUF_INIT;
    if (git_remote_default_branch(&def, remote) == 0 && def.ptr &&
        strncmp(def.ptr, HEADS_PREFIX, strlen(HEADS_PREFIX)) == 0)
        out->default_branch = strdup(def.ptr + strlen(HEADS_PREFIX));
    git_buf_dispose(&def);
    git_remote_disconnect(remote);
    git_remote_free(remote);
    if (!out->branches) {
        gitx_remote_info_clear(out);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    qsort(out->branches, out->n_branches, sizeof(char *), cmp_str);
    return 0;
}

int gitx_ls_remote(const char *repo, gitx_remote_info *out, dms_error *err)
{
    memset(out, 0, sizeof(*out));
    _cleanup_free_ char *url = NULL;
    int r = target_url(repo, &url, err);
    if (r < 0)
        return r;
    gitstream_call call;
    gitstream_call_begin(&call, NULL);
    r = ls_remote(repo, url, &call, out, err);
    gitstream_call_end(&call);
    return r;
}

static int branch_head(const char *repo, const char *url, const gitstream_call *call, const char *branch,
                       char *sha, char *resolved, dms_error *err)
{
    git_remote *remote = NULL;
    int rc = connect_remote(repo, url, call, &remote, err);
    if (rc < 0)
        return rc;
    char want[GITX_BRANCH_MAX + 16] = "";
    if (branch) {
        snprintf(want, sizeof(want), HEADS_PREFIX "%s", branch);
    } else {
        git_buf def = GIT_BUF_INIT;
        if (git_remote_default_branch(&def, remote) == 0 && def.ptr)
            snprintf(want, sizeof(want), "%s", def.ptr);
        git_buf_dispose(&def);
    }
    const git_remote_head **heads = NULL;
    size_t n = 0;
    if ((rc = git_remote_ls(&heads, &n, remote)) < 0) {
        int r = git_fail(err, rc, "list", repo, call);
        git_remote_free(remote);
        return r;
    }
    int r = dms_error_set(err, DMS_E_NOT_FOUND, "branch", "%s has no branch %s", repo,
                          branch ? branch : "(no default branch: is it empty?)");
    for (size_t i = 0; want[0] && i < n; i++)
        if (strcmp(heads[i]->name, want) == 0) {
            git_oid_tostr(sha, GIT_SHA_HEX + 1, &heads[i]->oid);
            if (resolved)
                snprintf(resolved, GITX_BRANCH_MAX, "%s", want + strlen(HEADS_PREFIX));
            r = 0;
            break;
        }
    if (r == 0 && err)
        dms_error_clear(err);
    git_remote_disconnect(remote);
    git_remote_free(remote);
    return r;
}

int gitx_branch_head(const char *repo, const char *branch, char *sha, char *resolved, dms_error *err)
{
    _cleanup_free_ char *url = NULL;
    int r = target_url(repo, &url, err);
    if (r < 0)
        return r;
    gitstream_call call;
    gitstream_call_begin(&call, NULL);
    r = branch_head(repo, url, &call, branch, sha, resolved, err);
    gitstream_call_end(&call);
    return r;
}

json_t *gitx_check_json(const char *repo, const char *branch)
{
    gitx_remote_info info;
    dms_error err = {0};
    json_t *o = json_pack("{s:s}", "repo", repo);
    if (gitx_ls_remote(repo, &info, &err) < 0) {
        json_object_set_new(o, "reachable", json_false());
        json_object_set_new(o, "error", json_string(err.message));
        json_object_set_new(o, "retryable", json_boolean(err.retryable));
        json_object_set_new(o, "default_branch", json_null());
        json_object_set_new(o, "branches", json_array());
        if (branch) {
            json_object_set_new(o, "branch", json_string(branch));
            json_object_set_new(o, "branch_exists", json_false());
        }
        return o;
    }
    json_t *list = json_array();
    bool exists = false;
    for (size_t i = 0; i < info.n_branches; i++) {
        json_array_append_new(list, json_string(info.branches[i]));
        if (branch && strcmp(branch, info.branches[i]) == 0)
            exists = true;
    }
    json_object_set_new(o, "reachable", json_true());
    json_object_set_new(o, "default_branch",
                        info.default_branch ? json_string(info.default_branch) : json_null());
    json_object_set_new(o, "branches", list);
    if (branch) {
        json_object_set_new(o, "branch", json_string(branch));
        json_object_set_new(o, "branch_exists", json_boolean(exists));
    }
    gitx_remote_info_clear(&info);
    return o;
}

/* Transfer progress: returning non-zero aborts the fetch with GIT_EUSER. */
static int on_progress(const git_indexer_progress *stats, void *payload)
{
    (void)stats;
    return payload && dms_cancel_token_cancelled(payload) ? -1 : 0;
}

static int on_sideband(const char *str, int len, void *payload)
{
    (void)str;
    (void)len;
    return payload && dms_cancel_token_cancelled(payload) ? -1 : 0;
}

/* git_clone of url (repo as the user wrote it, for messages) into dir. */
static int clone_into(const char *repo, const char *url, const char *branch, const char *dir,
                      dms_cancel_token *cancel, const gitstream_call *call, git_repository **out,
                      dms_error *err)
{
    git_clone_options opts;
    git_clone_options_init(&opts, GIT_CLONE_OPTIONS_VERSION);
    opts.checkout_branch = branch;
    /* Always through a transport: a remote URL that happens to name a directory here is never opened as
     * one, and a local repository (a file:// URL of its real path by now) is fetched, not hard-linked. */
    opts.local = GIT_CLONE_NO_LOCAL;
    opts.fetch_opts.callbacks.transfer_progress = on_progress;
    opts.fetch_opts.callbacks.sideband_progress = on_sideband;
    opts.fetch_opts.callbacks.payload = cancel;
    int rc = git_clone(out, url, dir, &opts);
    if (rc == 0)
        return 0;
    if ((cancel && dms_cancel_token_cancelled(cancel)) || call->cancelled)
        return dms_error_set(err, DMS_E_CANCELLED, NULL, "clone %s: cancelled", repo);
    const git_error *e = git_error_last();
    /* "Remote branch 'x' not found": the branch is the user's fault, name it. */
    if (!call->refused && !call->timed_out && branch && e && e->message && strstr(e->message, "not found") &&
        strstr(e->message, branch))
        return dms_error_set(err, DMS_E_NOT_FOUND, "branch", "branch \"%s\" does not exist in %s", branch,
                             repo);
    return git_fail(err, rc, "clone", repo, call);
}

static int checkout_commit(git_repository *r, const char *repo, const char *branch, const char *commit,
                           const gitstream_call *call, dms_error *err)
{
    git_object *obj = NULL, *peeled = NULL;
    git_checkout_options co;
    git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
    co.checkout_strategy = GIT_CHECKOUT_FORCE;
    int rc, ret = 0;
    if (git_revparse_single(&obj, r, commit) < 0 || git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) < 0)
        ret = dms_error_set(err, DMS_E_NOT_FOUND, "commit", "commit %s is not in branch %s of %s", commit,
                            branch ? branch : "(default)", repo);
    else if ((rc = git_checkout_tree(r, peeled, &co)) < 0 ||
             (rc = git_repository_set_head_detached(r, git_object_id(peeled))) < 0)
        ret = git_fail(err, rc, "check out commit in", repo, call);
    git_object_free(peeled);
    git_object_free(obj);
    return ret;
}

int gitx_clone(const char *repo, const char *branch, const char *commit, const char *dir,
               dms_cancel_token *cancel, char *sha, dms_error *err)
{
    _cleanup_free_ char *url = NULL;
    int ret = target_url(repo, &url, err);
    if (ret < 0)
        return ret;
    gitstream_call call;
    gitstream_call_begin(&call, cancel);
    git_repository *r = NULL;
    ret = clone_into(repo, url, branch, dir, cancel, &call, &r, err);
    if (ret == 0 && commit)
        ret = checkout_commit(r, repo, branch, commit, &call, err);
    git_oid oid;
    int rc;
    if (ret == 0 && (rc = git_reference_name_to_id(&oid, r, "HEAD")) < 0)
        ret = git_fail(err, rc, "read HEAD of", repo, &call);
    else if (ret == 0)
        git_oid_tostr(sha, GIT_SHA_HEX + 1, &oid);
    git_repository_free(r);
    gitstream_call_end(&call);
    return ret;
}
