/* spec.c - the process backend's start, first half: a request turned into the spec.json its shim executes
 * (argv, environment, user, capabilities, cgroups or rlimits), after refusing what this backend cannot do.
 * Creates nothing, so a refused request leaves no trace. shim_spec.c is the shim's side: it reads this file
 * back. */
#include "proc.h"

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "security.h"
#include "util.h"

#define PW_BUF_BYTES  16384
#define USER_NAME_MAX 64 /* engine.user is at most 64 characters (request validation) */
#define GROUPS_MAX    256

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* "uid[:gid]" or "name[:group]" -> ids and supplementary groups, as Docker resolves it against the image's
 * passwd (here: the host's). A uid without a passwd entry gets gid 0, as in Docker. */
static int resolve_user(const char *user, json_t *spec, dms_error *err)
{
    const char *colon = strchr(user, ':');
    size_t ul = colon ? (size_t)(colon - user) : strlen(user);
    char uname[USER_NAME_MAX + 1], buf[PW_BUF_BYTES];
    if (ul > USER_NAME_MAX)
        return dms_error_set(err, DMS_E_INVALID, "engine.user", "engine.user: \"%.64s\" is too long", user);
    memcpy(uname, user, ul);
    uname[ul] = '\0';
    struct passwd pw, *pwp = NULL;
    uid_t uid;
    gid_t gid = 0;
    if (all_digits(uname, ul)) {
        int64_t v = dmsu_parse_i64(uname);
        if (v < 0 || v > (int64_t)UINT32_MAX - 1)
            return dms_error_set(err, DMS_E_INVALID, "engine.user", "engine.user: uid %s is out of range",
                                 uname);
        uid = (uid_t)v;
        getpwuid_r(uid, &pw, buf, sizeof(buf), &pwp);
    } else {
        getpwnam_r(uname, &pw, buf, sizeof(buf), &pwp);
        if (!pwp)
            return dms_error_set(err, DMS_E_INVALID, "engine.user",
                                 "engine.user: no user \"%s\" on this host", uname);
        uid = pwp->pw_uid;
    }
    if (pwp)
        gid = pwp->pw_gid;
    if (colon) {
        const char *g = colon + 1;
        if (all_digits(g, strlen(g))) {
            int64_t v = dmsu_parse_i64(g);
            if (v < 0 || v > (int64_t)UINT32_MAX - 1)
                return dms_error_set(err, DMS_E_INVALID, "engine.user", "engine.user: gid %s is out of range",
                                     g);
            gid = (gid_t)v;
        } else {
            struct group gr, *grp = NULL;
            char gbuf[PW_BUF_BYTES];
            getgrnam_r(g, &gr, gbuf, sizeof(gbuf), &grp);
            if (!grp)
                return dms_error_set(err, DMS_E_INVALID, "engine.user",
                                     "engine.user: no group \"%s\" on this host", g);
            gid = grp->gr_gid;
        }
    }
    if (geteuid() != 0) {
        if (uid != geteuid())
            return dms_error_set(err, DMS_E_NOT_SUPPORTED, "engine.user",
                                 "engine.user: running as uid %u needs root; this host runs as uid %u",
                                 (unsigned)uid, (unsigned)geteuid());
        return 0; /* already that user: nothing to switch */
    }
    gid_t groups[GROUPS_MAX];
    int ng = 1;
    groups[0] = gid;
    if (pwp && !colon) {
        ng = GROUPS_MAX;
        if (getgrouplist(pwp->pw_name, gid, groups, &ng) < 0)
            ng = 1;
    }
    json_t *ga = json_array();
    for (int i = 0; ga && i < ng; i++)
        json_array_append_new(ga, json_integer(groups[i]));
    json_object_set_new(spec, "uid", json_integer(uid));
    json_object_set_new(spec, "gid", json_integer(gid));
    json_object_set_new(spec, "groups", ga ? ga : json_array());
    return 0;
}

/* The security part: no_new_privs for the shim's child, and the capability set it keeps (cap_keep, a mask;
 * -1 = leave the host's). Dropping from the bounding set needs CAP_SETPCAP, i.e. root here; a host that is
 * not root gives its workloads no capabilities at all, which only no_new_privileges keeps true across a
 * setuid binary, so without root cap_drop is honoured only together with it, and cap_add never. */
static int security_spec(const dms_exec_request *req, json_t *spec, dms_error *err)
{
    const dms_security *sec = &req->security;
    json_int_t keep = -1;
    if (dmsu_security_has_caps(sec) && geteuid() == 0)
        keep = (json_int_t)dmsu_security_cap_mask(sec, ~UINT64_C(0));
    else if (sec->cap_add && sec->cap_add[0])
        return dms_error_set(
            err, DMS_E_NOT_SUPPORTED, "security.cap_add",
            "security.cap_add: this host runs as uid %u, whose workloads get no capabilities "
            "to add (run it as root)",
            (unsigned)geteuid());
    else if (sec->cap_drop && sec->cap_drop[0] && !sec->no_new_privileges)
        return dms_error_set(
            err, DMS_E_NOT_SUPPORTED, "security.cap_drop",
            "security.cap_drop: dropping capabilities needs root here (PR_CAPBSET_DROP); as uid "
            "%u the workload has none, but a setuid binary could gain them unless "
            "security.no_new_privileges is set",
            (unsigned)geteuid());
    json_object_set_new(spec, "no_new_privs", json_boolean(sec->no_new_privileges));
    json_object_set_new(spec, "cap_keep", json_integer(keep));
    return 0;
}

static int add_cgroup(json_t *list, const proc_executor *p, proc_cg_ctrl c, const char *exec_id,
                      int64_t value, dms_error *err)
{
    const proc_cg_base *b = &p->cg.base[c];
    char dir[PATH_MAX];
    if (dmsu_snprintf_ok(dir, sizeof(dir), "%s/" PROC_CGROUP_PREFIX "%s@%s", b->dir, p->id, exec_id) < 0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "cgroup path too long under %s", b->dir);
    json_array_append_new(list, json_pack("{s:s,s:i,s:s,s:I}", "dir", dir, "version", b->version,
                                          "controller", proc_cg_name(c), "value", (json_int_t)value));
    return 0;
}

/* What this backend cannot do at all: refused, naming the field, before anything exists. */
static int refuse_unsupported(const dms_exec_request *req, dms_error *err)
{
    if (req->n_mounts)
        return dms_error_set(err, DMS_E_NOT_SUPPORTED, "mounts",
                             "mounts: the process backend runs on the host's filesystem and cannot mount");
    if (req->n_ports)
        return dms_error_set(
            err, DMS_E_NOT_SUPPORTED, "network.ports",
            "network.ports: the process backend shares the host's network and cannot publish ports");
    /* Before the mode: a request with aliases is named, and the alias is what it cannot have. */
    if (req->network_aliases && req->network_aliases[0])
        return dms_error_set(err, DMS_E_NOT_SUPPORTED, "network.aliases",
                             "network.aliases: the process backend has no named networks, so no aliases "
                             "on them");
    if (req->network_mode == DMS_NET_NAMED)
        return dms_error_set(err, DMS_E_NOT_SUPPORTED, "network.mode",
                             "network.mode: the process backend cannot attach to a named network");
    if (req->network_mode == DMS_NET_NONE && geteuid() != 0)
        return dms_error_set(err, DMS_E_NOT_SUPPORTED, "network.mode",
                             "network.mode none needs a network namespace, which needs root");
    if (req->resources.disk_bytes > 0)
        return dms_error_set(err, DMS_E_NOT_SUPPORTED, "resources.disk_bytes",
                             "resources.disk_bytes: the process backend cannot limit disk use");
    if (req->resources.gpus != 0)
        return dms_error_set(err, DMS_E_NOT_SUPPORTED, "resources.gpus",
                             "resources.gpus: the process backend does not assign GPUs");
    /* Nothing here would run a check or judge it, so a status could only ever say "none": a caller waiting
     * for "healthy" must learn that now, not wait forever. A disabled check asks for nothing. */
    if (req->healthcheck && !req->healthcheck->disable)
        return dms_error_set(err, DMS_E_NOT_SUPPORTED, "healthcheck",
                             "healthcheck: the process backend does not run health checks");
    return 0;
}

/* argv, env, working_dir and program_field. */
static int command_spec(const dms_exec_request *req, const char *dir, json_t *spec, json_t *argv, json_t *env,
                        dms_error *err)
{
    const dms_engine_spec *e = &req->engine;
    /* Like Docker: the command line is entrypoint followed by cmd. There is no image to default them from. */
    for (size_t i = 0; e->entrypoint && e->entrypoint[i]; i++)
        json_array_append_new(argv, json_string(e->entrypoint[i]));
    for (size_t i = 0; e->cmd && e->cmd[i]; i++)
        json_array_append_new(argv, json_string(e->cmd[i]));
    if (json_array_size(argv) == 0 || !*json_string_value(json_array_get(argv, 0)))
        return dms_error_set(err, DMS_E_INVALID, "engine.cmd",
                             "engine.cmd: the process backend has no image to take a command from; give "
                             "engine.entrypoint or engine.cmd");
    /* A clean environment: the request's variables only, plus a PATH when it brings none. */
    for (size_t i = 0; e->env && e->env[i]; i++)
        json_array_append_new(env, json_string(e->env[i]));
    if (!dmsu_kv_get(e->env, "PATH"))
        json_array_append_new(env, json_string(PROC_DEFAULT_PATH));
    char work[PATH_MAX];
    if (dmsu_snprintf_ok(work, sizeof(work), "%s/" PROC_WORK_DIR, dir) < 0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "state dir path too long");
    json_object_set_new(spec, "working_dir", json_string(e->working_dir ? e->working_dir : work));
    json_object_set_new(spec, "program_field",
                        json_string(e->entrypoint && e->entrypoint[0] ? "engine.entrypoint" : "engine.cmd"));
    return 0;
}

/* Limits: a cgroup where we can write one; otherwise the nearest rlimit, or a refusal naming the field. */
static int limits_spec(const proc_executor *p, const dms_exec_request *req, json_t *spec, json_t *cgroups,
                       dms_error *err)
{
    const dms_resources *rs = &req->resources;
    int64_t rlimit_as = 0, rlimit_nproc = 0;
    int r;
    if (rs->memory_bytes > 0) {
        if (p->cg.base[PROC_CG_MEMORY].version) {
            if ((r = add_cgroup(cgroups, p, PROC_CG_MEMORY, req->execution_id, rs->memory_bytes, err)) < 0)
                return r;
        } else {
            rlimit_as = rs->memory_bytes;
            dms_logf(
                p->host, DMS_LOG_WARN,
                "exec=%s op=start memory limit through RLIMIT_AS (address space, not resident memory): no "
                "writable memory cgroup",
                req->execution_id);
        }
    }
    if (rs->pids_limit > 0) {
        int64_t uid = json_integer_value(json_object_get(spec, "uid"));
        uid_t target = uid >= 0 ? (uid_t)uid : geteuid();
        if (p->cg.base[PROC_CG_PIDS].version) {
            if ((r = add_cgroup(cgroups, p, PROC_CG_PIDS, req->execution_id, rs->pids_limit, err)) < 0)
                return r;
        } else if (target != 0) {
            rlimit_nproc = rs->pids_limit;
            dms_logf(
                p->host, DMS_LOG_WARN,
                "exec=%s op=start pids limit through RLIMIT_NPROC, which counts every process of uid %u: no "
                "writable pids cgroup",
                req->execution_id, (unsigned)target);
        } else {
            return dms_error_set(
                err, DMS_E_NOT_SUPPORTED, "resources.pids_limit",
                "resources.pids_limit: no writable pids cgroup here, and RLIMIT_NPROC does not "
                "bind root (set engine.user to run it as another user)");
        }
    }
    if (rs->cpu_millis > 0) {
        if (!p->cg.base[PROC_CG_CPU].version)
            return dms_error_set(err, DMS_E_NOT_SUPPORTED, "resources.cpu_millis",
                                 "resources.cpu_millis: no writable cpu cgroup here to enforce it");
        if ((r = add_cgroup(cgroups, p, PROC_CG_CPU, req->execution_id, rs->cpu_millis, err)) < 0)
            return r;
    }
    json_object_set_new(spec, "rlimit_as", json_integer(rlimit_as));
    json_object_set_new(spec, "rlimit_nproc", json_integer(rlimit_nproc));
    return 0;
}

int proc_build_spec(const proc_executor *p, const dms_exec_request *req, const char *dir, json_t **out,
                    dms_error *err)
{
    int r = refuse_unsupported(req, err);
    if (r < 0)
        return r;
    _cleanup_json_ json_t *spec = json_object();
    json_t *argv = json_array(), *env = json_array(), *cgroups = json_array();
    if (!spec || !argv || !env || !cgroups) {
        json_decref(argv);
        json_decref(env);
        json_decref(cgroups);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    json_object_set_new(spec, "argv", argv);
    json_object_set_new(spec, "env", env);
    json_object_set_new(spec, "cgroups", cgroups);
    if ((r = command_spec(req, dir, spec, argv, env, err)) < 0)
        return r;
    json_object_set_new(spec, "uid", json_integer(-1));
    json_object_set_new(spec, "gid", json_integer(-1));
    json_object_set_new(spec, "groups", json_array());
    const dms_engine_spec *e = &req->engine;
    if ((e->user && (r = resolve_user(e->user, spec, err)) < 0) || (r = security_spec(req, spec, err)) < 0)
        return r;
    if ((r = limits_spec(p, req, spec, cgroups, err)) < 0)
        return r;
    json_object_set_new(spec, "netns", json_boolean(req->network_mode == DMS_NET_NONE));
    json_object_set_new(spec, "executor_id", json_string(p->id));
    json_object_set_new(spec, "execution_id", json_string(req->execution_id));
    json_object_set_new(spec, "job_id", json_string(req->job_id));
    json_object_set_new(spec, "timeout_ms", json_integer(req->timeout_ms));
    json_object_set_new(spec, "stop_grace_ms", json_integer(req->stop_grace_ms));
    json_object_set_new(spec, "result_output_bytes", json_integer(req->limits.result_output_bytes));
    json_object_set_new(spec, "log_file_bytes", json_integer(req->limits.log_file_bytes));
    *out = steal_pointer(&spec);
    return 0;
}
