/* job.c - the job model: state machine, validation, JSON, step scripts (see job.h). */
#include "job.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../build/git.h"
#include "../common.h"
#include "../droids/droid.h"

#define CACHE_NAME_HEX 16 /* hex characters of the (user, project) digest in a cache volume's name */

/* ---- states ---- */

static const char *const status_names[] = {"queued", "running", "succeeded", "failed", "cancelled"};

const char *job_status_name(job_status s)
{
    return (unsigned)s < DMS_ARRAY_SIZE(status_names) ? status_names[s] : "unknown";
}

int job_status_parse(const char *s)
{
    for (size_t i = 0; s && i < DMS_ARRAY_SIZE(status_names); i++)
        if (strcmp(status_names[i], s) == 0)
            return (int)i;
    return -1;
}

bool job_status_final(job_status s)
{
    return s == JOB_SUCCEEDED || s == JOB_FAILED || s == JOB_CANCELLED;
}

bool job_can_transition(job_status from, job_status to)
{
    switch (from) {
    case JOB_QUEUED:
        return to == JOB_RUNNING || to == JOB_CANCELLED;
    case JOB_RUNNING:
        /* back to queued only when a restart interrupted it */
        return to == JOB_SUCCEEDED || to == JOB_FAILED || to == JOB_CANCELLED || to == JOB_QUEUED;
    default:
        return false;
    }
}

static const char *const pm_names[] = {"none", "npm", "yarn", "pnpm", "pip"};

const char *job_pm_name(job_pm pm)
{
    return (unsigned)pm < DMS_ARRAY_SIZE(pm_names) ? pm_names[pm] : "unknown";
}

int job_pm_parse(const char *s)
{
    if (!s)
        return -1;
    if (!*s)
        return JOB_PM_NONE;
    for (size_t i = 0; i < DMS_ARRAY_SIZE(pm_names); i++)
        if (strcmp(pm_names[i], s) == 0)
            return (int)i;
    return -1;
}

static const char *const step_names[] = {"clone", "install", "build", "package"};

const char *job_step_name(job_step s)
{
    return (unsigned)s < DMS_ARRAY_SIZE(step_names) ? step_names[s] : "unknown";
}

void job_init(job *j)
{
    memset(j, 0, sizeof(*j));
    j->artifact_bytes = -1;
    j->install_ms = -1;
    j->build_ms = -1;
    j->exit_code = -1;
}

void job_clear(job *j)
{
    free(j->user_id);
    free(j->project_id);
    free(j->deployment_id);
    free(j->branch);
    free(j->repo_url);
    free(j->build_command);
    free(j->dist_dir);
    free(j->step);
    free(j->reason);
    free(j->commit_sha);
    free(j->cache_volume);
    job_init(j);
}

/* ---- validation ---- */

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

int job_validate_ref_id(const char *v, const char *field, dms_error *err)
{
    size_t n = v ? strlen(v) : 0;
    if (n == 0)
        return dms_error_set(err, DMS_E_INVALID, field, "%s must not be empty", field);
    if (n > JOB_REF_ID_MAX)
        return dms_error_set(err, DMS_E_INVALID, field, "%s is longer than %d characters", field,
                             JOB_REF_ID_MAX);
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '.' && c != '-')))
            return dms_error_set(
                err, DMS_E_INVALID, field,
                "%s must be letters, digits, '_', '.' or '-', starting with a letter or digit", field);
    }
    return 0;
}

int job_validate_dist_dir(const char *v, dms_error *err)
{
    static const char *field = "project_dist_directory";
    size_t n = v ? strlen(v) : 0;
    if (n == 0)
        return dms_error_set(err, DMS_E_INVALID, field, "%s must not be empty (\".\" is the whole tree)",
                             field);
    if (n > JOB_DIST_DIR_MAX)
        return dms_error_set(err, DMS_E_INVALID, field, "%s is longer than %d characters", field,
                             JOB_DIST_DIR_MAX);
    if (has_control(v) || v[0] == '/' || v[0] == '-')
        return dms_error_set(err, DMS_E_INVALID, field,
                             "%s must be a relative path inside the repository (\"dist\", \"build/web\")",
                             field);
    /* No ".." component: the artifact is what the repository built, nothing above it. */
    for (const char *p = v; *p;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.')
            return dms_error_set(err, DMS_E_INVALID, field, "%s must not contain \"..\"", field);
        p += len;
        while (*p == '/')
            p++;
    }
    return 0;
}

/* droid_validate_* name the droid's fields; a job's payload names them differently. */
static int rename_field(int r, dms_error *err, const char *field)
{
    if (r < 0 && err)
        snprintf(err->field, sizeof(err->field), "%s", field);
    return r;
}

int job_parse_create(json_t *body, job *j, dms_error *err)
{
    static const char *const keys[] = {"project_id",
                                       "deployment_id",
                                       "project_branch",
                                       "project_repo_url",
                                       "project_build_command",
                                       "project_package_manager",
                                       "project_dist_directory",
                                       NULL};
    if (!json_is_object(body))
        return dms_error_set(err, DMS_E_INVALID, "body", "the body must be a JSON object");
    const char *project, *deployment, *branch, *repo, *command, *pm, *dist;
    int r;
    if ((r = dmsd_json_known_keys(body, keys, err)) < 0 ||
        (r = dmsd_json_string(body, "project_id", true, &project, err)) < 0 ||
        (r = dmsd_json_string(body, "deployment_id", true, &deployment, err)) < 0 ||
        (r = dmsd_json_string(body, "project_branch", true, &branch, err)) < 0 ||
        (r = dmsd_json_string(body, "project_repo_url", true, &repo, err)) < 0 ||
        (r = dmsd_json_string(body, "project_build_command", true, &command, err)) < 0 ||
        (r = dmsd_json_string(body, "project_package_manager", true, &pm, err)) < 0 ||
        (r = dmsd_json_string(body, "project_dist_directory", true, &dist, err)) < 0)
        return r;
    if ((r = job_validate_ref_id(project, "project_id", err)) < 0 ||
        (r = job_validate_ref_id(deployment, "deployment_id", err)) < 0 ||
        (r = rename_field(droid_validate_branch(branch, err), err, "project_branch")) < 0 ||
        (r = rename_field(droid_validate_repo(repo, err), err, "project_repo_url")) < 0 ||
        (r = job_validate_dist_dir(dist, err)) < 0)
        return r;
    /* koalaCI's own examples quote the whole command ("'npm run build && npm run export'"): its shell wrapper
     * strips that one pair of quotes. So do we, when they are the only single quotes in it; anything else is
     * run as written. */
    size_t cl = strlen(command);
    _cleanup_free_ char *unquoted = NULL;
    if (cl >= 2 && command[0] == '\'' && command[cl - 1] == '\'' && !memchr(command + 1, '\'', cl - 2)) {
        if (!(unquoted = strndup(command + 1, cl - 2)))
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        command = unquoted;
        cl -= 2;
    }
    if (cl == 0)
        return dms_error_set(err, DMS_E_INVALID, "project_build_command",
                             "project_build_command must not be empty (\"true\" builds nothing)");
    if (cl > JOB_BUILD_COMMAND_MAX)
        return dms_error_set(err, DMS_E_INVALID, "project_build_command",
                             "project_build_command is longer than %d bytes", JOB_BUILD_COMMAND_MAX);
    int p = job_pm_parse(pm);
    if (p < 0)
        return dms_error_set(err, DMS_E_INVALID, "project_package_manager",
                             "project_package_manager must be one of npm, yarn, pnpm, pip, none (or \"\"), "
                             "not \"%.32s\"",
                             pm);
    /* The operator's policy last: a malformed request is a 400 whatever its repository. */
    if ((r = gitx_check_access(repo, "project_repo_url", err)) < 0)
        return r;
    if (dmsd_set_str(&j->project_id, project) < 0 || dmsd_set_str(&j->deployment_id, deployment) < 0 ||
        dmsd_set_str(&j->branch, branch) < 0 || dmsd_set_str(&j->repo_url, repo) < 0 ||
        dmsd_set_str(&j->build_command, command) < 0 || dmsd_set_str(&j->dist_dir, dist) < 0)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    j->pm = (job_pm)p;
    return 0;
}

/* ---- JSON ---- */

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *time_or_null(int64_t ns)
{
    if (!ns)
        return json_null();
    char when[32];
    dmsd_format_time(ns, when, sizeof(when));
    return json_string(when);
}

static json_t *ms_or_null(int64_t ms)
{
    return ms < 0 ? json_null() : json_integer(ms);
}

json_t *job_to_json(const job *j)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_t *artifact = json_null();
    if (j->artifact_bytes >= 0) {
        char url[64];
        snprintf(url, sizeof(url), "/job/%s/artifact", j->id);
        artifact = json_pack("{s:I, s:s}", "bytes", (json_int_t)j->artifact_bytes, "url", url);
    }
    json_object_set_new(o, "id", json_string(j->id));
    json_object_set_new(o, "project_id", str_or_null(j->project_id));
    json_object_set_new(o, "deployment_id", str_or_null(j->deployment_id));
    json_object_set_new(o, "project_branch", str_or_null(j->branch));
    json_object_set_new(o, "project_repo_url", str_or_null(j->repo_url));
    json_object_set_new(o, "project_build_command", str_or_null(j->build_command));
    json_object_set_new(o, "project_package_manager", json_string(job_pm_name(j->pm)));
    json_object_set_new(o, "project_dist_directory", str_or_null(j->dist_dir));
    json_object_set_new(o, "status", json_string(job_status_name(j->status)));
    json_object_set_new(o, "step", str_or_null(j->step));
    json_object_set_new(o, "reason", str_or_null(j->reason));
    json_object_set_new(o, "cancel_requested", json_boolean(j->cancel_requested));
    json_object_set_new(o, "attempt", json_integer(j->attempt));
    json_object_set_new(o, "commit_sha", str_or_null(j->commit_sha));
    json_object_set_new(
        o, "cache", json_pack("{s:o, s:b}", "volume", str_or_null(j->cache_volume), "warm", j->cache_warm));
    json_object_set_new(o, "artifact", artifact ? artifact : json_null());
    json_object_set_new(o, "install_ms", ms_or_null(j->install_ms));
    json_object_set_new(o, "build_ms", ms_or_null(j->build_ms));
    json_object_set_new(o, "exit_code", j->exit_code < 0 ? json_null() : json_integer(j->exit_code));
    json_object_set_new(o, "created_at", time_or_null(j->created_ns));
    json_object_set_new(o, "started_at", time_or_null(j->started_ns));
    json_object_set_new(o, "finished_at", time_or_null(j->finished_ns));
    return o;
}

int job_cache_volume_name(const char *executor_id, const char *user_id, const char *project_id, char *buf,
                          size_t size, dms_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    size_t ul = strlen(user_id), pl = strlen(project_id);
    _cleanup_free_ char *in = malloc(ul + 1 + pl);
    if (!in)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    memcpy(in, user_id, ul);
    in[ul] = '\0'; /* the separator: ("ab","c") and ("a","bc") differ */
    memcpy(in + ul + 1, project_id, pl);
    if (EVP_Digest(in, ul + 1 + pl, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen * 2 < CACHE_NAME_HEX)
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "sha256 failed");
    char hex[CACHE_NAME_HEX + 1];
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < CACHE_NAME_HEX / 2; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[CACHE_NAME_HEX] = '\0';
    if (dmsu_snprintf_ok(buf, size, "%s-cache-%s", executor_id, hex) < 0 || !dms_id_valid(buf))
        return dms_error_set(err, DMS_E_INVALID, NULL,
                             "executor id \"%.64s\" is too long for a cache volume name", executor_id);
    return 0;
}

/* ---- step scripts ----
 * Each starts with `set -e` so that the first failing command ends the step with its code. The cache marker
 * is written only after a successful install, so "warm" means a whole install filled the cache before. */

#define CACHE_REPORT                                                                                         \
    "if [ -f " JOB_CACHE_MARK " ]; then echo \"[dms] dependency cache: warm ($(cat " JOB_CACHE_MARK "))\";"  \
    " else echo '[dms] dependency cache: cold (first install of this project)'; fi\n"
#define CACHE_MARK                                                                                           \
    "printf 'filled by job %s at %s\\n' \"$DMS_JOB_ID\" \"$(date -u +%Y-%m-%dT%H:%M:%SZ)\" "                 \
    "> " JOB_CACHE_MARK "\n"
#define NEED_FILE(f, pm)                                                                                     \
    "[ -f " f " ] || { echo '[dms] package manager " pm ": there is no " f " at the root of the repository'" \
    " >&2; exit 64; }\n"

static const char npm_script[] = "set -e\n" NEED_FILE("package.json", "npm") CACHE_REPORT
    "if [ -f package-lock.json ] || [ -f npm-shrinkwrap.json ]; then\n"
    "  echo '[dms] npm ci'; npm ci --loglevel=http\n"
    "else\n"
    "  echo '[dms] npm install'; npm install --loglevel=http\n"
    "fi\n" CACHE_MARK;

static const char yarn_script[] = "set -e\n" NEED_FILE("package.json", "yarn") CACHE_REPORT
    "if [ -f yarn.lock ]; then\n"
    "  echo '[dms] yarn install --frozen-lockfile'; yarn install --frozen-lockfile --prefer-offline "
    "--non-interactive\n"
    "else\n"
    "  echo '[dms] yarn install'; yarn install --prefer-offline --non-interactive\n"
    "fi\n" CACHE_MARK;

static const char pnpm_script[] = "set -e\n" NEED_FILE("package.json", "pnpm") CACHE_REPORT
    "if [ ! -x " JOB_CACHE_DIR "/tools/node_modules/.bin/pnpm ]; then\n"
    "  echo '[dms] installing " JOB_PNPM_SPEC " into the cache'; npm install --prefix " JOB_CACHE_DIR
    "/tools --no-save " JOB_PNPM_SPEC "\n"
    "fi\n"
    "if [ -f pnpm-lock.yaml ]; then\n"
    "  echo '[dms] pnpm install --frozen-lockfile'; pnpm install --frozen-lockfile --prefer-offline "
    "--store-dir " JOB_CACHE_DIR "/pnpm-store\n"
    "else\n"
    "  echo '[dms] pnpm install'; pnpm install --prefer-offline --store-dir " JOB_CACHE_DIR "/pnpm-store\n"
    "fi\n" CACHE_MARK;

static const char pip_script[] = "set -e\n" NEED_FILE("requirements.txt", "pip") CACHE_REPORT
    "echo '[dms] python3 -m venv " JOB_WORKSPACE "/.venv'; python3 -m venv " JOB_WORKSPACE "/.venv\n"
    "echo '[dms] pip install -r requirements.txt'\n" JOB_WORKSPACE
    "/.venv/bin/pip install --disable-pip-version-check -r requirements.txt\n" CACHE_MARK;

const char *job_install_script(job_pm pm)
{
    switch (pm) {
    case JOB_PM_NPM:
        return npm_script;
    case JOB_PM_YARN:
        return yarn_script;
    case JOB_PM_PNPM:
        return pnpm_script;
    case JOB_PM_PIP:
        return pip_script;
    default:
        return NULL;
    }
}

/* Packs the dist directory with the image's tar, never a tar of the build's (the PATH is fixed and every
 * tool is named by its path). The dist directory must resolve inside the workspace: a link to / or /proc
 * would otherwise have the step archive the container's whole root. --one-file-system keeps tar off any
 * other mount below it, and ulimit -f (512-byte blocks in dash) stops a huge or sparse file at the limit. */
const char *job_package_script(void)
{
    return "set -e\n"
           "[ -d \"$DMS_DIST_DIR\" ] || { echo \"[dms] the dist directory \\\"$DMS_DIST_DIR\\\" does not "
           "exist after the build\" >&2; exit 65; }\n"
           "dist=$(/bin/realpath -e -- \"$DMS_DIST_DIR\")\n"
           "case \"$dist\" in\n"
           "  " JOB_WORKSPACE "|" JOB_WORKSPACE "/*) ;;\n"
           "  *) echo \"[dms] the dist directory \\\"$DMS_DIST_DIR\\\" leads out of the repository (to "
           "$dist)\" >&2; exit 66 ;;\n"
           "esac\n"
           "ulimit -f $((DMS_ARTIFACT_MAX_MB * 2048))\n"
           "/bin/tar --one-file-system -C \"$dist\" -cf " JOB_OUT_DIR "/artifact.tar . || { rc=$?\n"
           "  if [ $rc -eq 153 ]; then echo \"[dms] the artifact is larger than $DMS_ARTIFACT_MAX_MB MB "
           "(DMS_JOB_ARTIFACT_MAX_MB)\" >&2; exit 67; fi\n"
           "  exit $rc; }\n"
           "echo \"[dms] artifact: $DMS_DIST_DIR, $(/bin/tar -tf " JOB_OUT_DIR "/artifact.tar | /bin/wc -l) "
           "entries, $(/bin/wc -c < " JOB_OUT_DIR "/artifact.tar) bytes\"\n";
}

char **job_step_env(const job *j, job_step step, int artifact_max_mb)
{
    char **env = NULL;
    const char *path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    if (step == JOB_STEP_PACKAGE)
        path = "PATH=" JOB_FIXED_PATH;
    else if (j->pm == JOB_PM_PIP)
        path =
            "PATH=" JOB_WORKSPACE "/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    else if (j->pm == JOB_PM_PNPM)
        path = "PATH=" JOB_CACHE_DIR
               "/tools/node_modules/.bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
               "/sbin:/bin";
    _cleanup_free_ char *id = dmsu_strdup_printf("DMS_JOB_ID=%s", j->id);
    _cleanup_free_ char *proj = dmsu_strdup_printf("DMS_PROJECT_ID=%s", j->project_id);
    _cleanup_free_ char *dep = dmsu_strdup_printf("DMS_DEPLOYMENT_ID=%s", j->deployment_id);
    _cleanup_free_ char *dist = dmsu_strdup_printf("DMS_DIST_DIR=%s", j->dist_dir);
    static const char *const fixed[] = {
        "CI=true",
        "HOME=/root",
        "LANG=C.UTF-8",
        /* npm: its cache in the project's volume, used before the network; no audit or funding calls */
        "npm_config_cache=" JOB_CACHE_DIR "/npm",
        "npm_config_prefer_offline=true",
        "npm_config_audit=false",
        "npm_config_fund=false",
        "npm_config_update_notifier=false",
        "YARN_CACHE_FOLDER=" JOB_CACHE_DIR "/yarn",
        "PIP_CACHE_DIR=" JOB_CACHE_DIR "/pip",
        "PIP_NO_INPUT=1",
        NULL,
    };
    if (!id || !proj || !dep || !dist || dmsu_strv_push(&env, path) < 0 || dmsu_strv_push(&env, id) < 0 ||
        dmsu_strv_push(&env, proj) < 0 || dmsu_strv_push(&env, dep) < 0 || dmsu_strv_push(&env, dist) < 0) {
        dmsu_strv_free(env);
        return NULL;
    }
    for (size_t i = 0; fixed[i]; i++)
        if (dmsu_strv_push(&env, fixed[i]) < 0) {
            dmsu_strv_free(env);
            return NULL;
        }
    if (step == JOB_STEP_PACKAGE) {
        _cleanup_free_ char *max = dmsu_strdup_printf("DMS_ARTIFACT_MAX_MB=%d", artifact_max_mb);
        if (!max || dmsu_strv_push(&env, max) < 0) {
            dmsu_strv_free(env);
            return NULL;
        }
    }
    return env;
}

/* ---- the fair queue ---- */

/* Whether a should run before b (both below the cap). */
static bool runs_before(const job_queue_user *a, const job_queue_user *b)
{
    if (a->running != b->running)
        return a->running < b->running;
    if (a->last_started_ns != b->last_started_ns)
        return a->last_started_ns < b->last_started_ns;
    if (a->waiting_since_ns != b->waiting_since_ns)
        return a->waiting_since_ns < b->waiting_since_ns;
    return strcmp(a->user_id, b->user_id) < 0;
}

int job_fair_pick(const job_queue_user *users, size_t n, int max_running)
{
    int best = -1;
    for (size_t i = 0; i < n; i++) {
        if (users[i].running >= max_running)
            continue;
        if (best < 0 || runs_before(&users[i], &users[best]))
            best = (int)i;
    }
    return best;
}
