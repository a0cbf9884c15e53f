/* build.c - image builds.
 *
 * Build (like pull, image.c) answers 200 and then report failure in-band as NDJSON (docs/engine-notes.md §2):
 * every line is parsed and an `error` key is a failure. For a build, errorDetail.code is the exit code of the
 * user's RUN step: the user's fault (BUILD_FAILED, not retryable), as is a Dockerfile the engine cannot find
 * or parse, or a base image that is neither local nor pullable. The engine failing or going away is ours
 * (ENGINE/UNAVAILABLE, retryable). Cancelling a build closes the connection, which stops it at the engine. */
#include "docker.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tar.h"

/* A line of build output longer than this is passed on in pieces. */
#define BUILD_LINE_MAX_BYTES      (64 * 1024)
#define BUILD_CPU_PERIOD_US       100000 /* the kernel's default CFS period; the quota is cpu_millis of it */
#define SIGKILL_EXIT_CODE         137    /* 128 + SIGKILL: how a shell reports a step the kernel killed */
#define BYTES_PER_MIB             (1024 * 1024)
#define BUILD_DIR                 "builds"
#define DOCKERFILE_MAX_BYTES      (1024 * 1024)
#define STEP_IMAGE_REMOVE_TRIES   20
#define STEP_IMAGE_RETRY_MS       250
#define CANCELLED_STEP_RECHECK_MS 500
/* The Dockerfile the engine builds, added to the context under this name by us (a file of the tree with this
 * name is left out): our labelled copy, or the host's own text. */
#define LABELLED_DOCKERFILE ".dms-labelled.Dockerfile"

/* ---- build ---- */

typedef struct build_ctx {
    docker_executor *ex;
    dms_build_output_fn out;
    void *userdata;
    char image_id[80];
    char last_step[80]; /* the image the last finished step made (" ---> <id>"), for cleaning up a failed
                           build */
    char error[DMS_ERROR_MSG_MAX];
    bool user_fault;
    long long step_exit; /* errorDetail.code: the failed RUN step's exit code */
    dmsu_buf text;       /* partial "stream" line, at most BUILD_LINE_MAX_BYTES */
    bool split_said;
    int fd;
} build_ctx;

/* The legacy builder says " ---> 1a2b3c4d5e6f" when a step has committed its image. */
static void note_step_image(build_ctx *bc, const char *line, size_t len)
{
    static const char arrow[] = " ---> ";
    size_t al = sizeof(arrow) - 1, n = 0;
    if (len < al + 12 || memcmp(line, arrow, al) != 0)
        return;
    while (al + n < len && isxdigit((unsigned char)line[al + n]))
        n++;
    if (n < 12 || al + n != len || n >= sizeof(bc->last_step))
        return;
    memcpy(bc->last_step, line + al, n);
    bc->last_step[n] = '\0';
}

/* Whether id is a step image of one of our builds: it carries our executor label and no tag. The step a build
 * was at may be its FROM, whose " ---> <id>" is the base image (a stack image, or the user's own release):
 * never that one. */
static bool is_our_step_image(docker_executor *ex, const char *id)
{
    char p[160];
    snprintf(p, sizeof(p), "/images/%s/json", id);
    docker_response resp;
    dms_error e;
    if (docker_call(&ex->client, "GET", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, &e) < 0)
        return false;
    json_t *j = resp.status == 200 ? docker_response_json(&resp, "inspect image", &e) : NULL;
    dmsu_buf_free(&resp.body);
    const char *owner = json_string_value(
        json_object_get(json_object_get(json_object_get(j, "Config"), "Labels"), DMS_LABEL_EXECUTOR));
    bool ours = owner && strcmp(owner, ex->id) == 0 && json_array_size(json_object_get(j, "RepoTags")) == 0;
    json_decref(j);
    return ours;
}

/* A build that failed or was cancelled leaves the image of its last finished step behind, untagged. Removing
 * it (without force) takes its untagged ancestors with it and leaves anything another image uses. false when
 * the engine still refused it after the tries (a busy engine): the caller hands it to the host. */
static bool remove_step_image(docker_executor *ex, const char *id)
{
    if (!id[0] || !is_our_step_image(ex, id))
        return true;
    char p[160];
    snprintf(p, sizeof(p), "/images/%s", id);
    /* Right after a cancel the engine is still removing the interrupted step's container, and refuses (409
     * "being used by stopped container") until it is gone: a few tries, bounded. */
    for (int attempt = 0; attempt < STEP_IMAGE_REMOVE_TRIES; attempt++) {
        docker_response resp;
        dms_error e;
        int r = docker_call(&ex->client, "DELETE", p, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, &e);
        long st = resp.status;
        dmsu_buf_free(&resp.body);
        if (r < 0 || st != 409)
            return true;
        usleep(STEP_IMAGE_RETRY_MS * 1000);
    }
    dms_logf(ex->host, DMS_LOG_WARN,
             "op=build msg=\"left image %s behind: still in use; handed to the host\"", id);
    return false;
}

/* The untagged images one job's builds left: a step the engine committed after our cancel reached it has an
 * id we never read ("dangling", labelled by our LABEL after its FROM). Removed without force, so an image
 * another image or a container uses stays. Only with a job id: the host builds one of a job's images at a
 * time. */
static void remove_job_leftovers(docker_executor *ex, const char *job_id)
{
    if (!job_id)
        return;
    char filter[384];
    snprintf(filter, sizeof(filter), "{\"dangling\":[\"true\"],\"label\":[\"%s=%s\",\"%s=%s\"]}",
             DMS_LABEL_EXECUTOR, ex->id, DMS_LABEL_JOB, job_id);
    _cleanup_free_ char *ef = docker_escape(filter);
    char path[768];
    snprintf(path, sizeof(path), "/images/json?filters=%s", ef ? ef : "");
    docker_response resp;
    dms_error e;
    if (!ef || docker_call(&ex->client, "GET", path, NULL, DOCKER_SHORT_CALL_TIMEOUT_MS, &resp, &e) < 0)
        return;
    json_t *a = resp.status == 200 ? docker_response_json(&resp, "list images", &e) : NULL;
    dmsu_buf_free(&resp.body);
    size_t i;
    json_t *img;
    json_array_foreach(a, i, img)
    {
        const char *id = json_string_value(json_object_get(img, "Id"));
        if (id)
            remove_step_image(ex, id); /* checks it is ours and untagged, as the filter asked */
    }
    json_decref(a);
}

/* A failed or cancelled build's step image the engine would not remove yet goes to result->image_id, for the
 * host to remove later (dms_build_result). */
static void drop_step_image(docker_executor *ex, const char *id, const char *job_id, dms_build_result *result)
{
    if (!remove_step_image(ex, id))
        snprintf(result->image_id, sizeof(result->image_id), "%s", id);
    remove_job_leftovers(ex, job_id);
}

/* After a cancel the engine may still commit the step it was at (a LABEL or COPY takes milliseconds): looked
 * for once more a moment later. */
static void drop_cancelled_steps(docker_executor *ex, const char *id, const char *job_id,
                                 dms_build_result *result)
{
    drop_step_image(ex, id, job_id, result);
    usleep(CANCELLED_STEP_RECHECK_MS * 1000);
    remove_job_leftovers(ex, job_id);
}

static void emit_complete_lines(build_ctx *bc, dms_stream_type stream)
{
    for (;;) {
        char *nl = bc->text.data ? memchr(bc->text.data, '\n', bc->text.len) : NULL;
        if (!nl)
            break;
        size_t l = (size_t)(nl - bc->text.data);
        note_step_image(bc, bc->text.data, l);
        if (bc->out)
            bc->out(bc->userdata, stream, bc->text.data, l);
        dmsu_buf_consume(&bc->text, l + 1);
    }
}

/* Output that never ends a line must not grow the buffer without end (a build printing 300 MB without a
 * newline grew dmsd by as much): a line that reaches BUILD_LINE_MAX_BYTES goes out as it is, said once. */
static void split_long_line(build_ctx *bc, dms_stream_type stream)
{
    if (bc->text.len < BUILD_LINE_MAX_BYTES)
        return;
    if (!bc->split_said && bc->out) {
        char note[128];
        snprintf(note, sizeof(note), "[dms] build output has lines longer than %d bytes: they are split",
                 BUILD_LINE_MAX_BYTES);
        bc->out(bc->userdata, DMS_STREAM_STDOUT, note, strlen(note));
    }
    bc->split_said = true;
    if (bc->out)
        bc->out(bc->userdata, stream, bc->text.data, bc->text.len);
    dmsu_buf_reset(&bc->text);
}

static void emit_lines(build_ctx *bc, dms_stream_type stream, const char *s, size_t len, bool flush)
{
    do {
        size_t take = BUILD_LINE_MAX_BYTES - bc->text.len; /* > 0: the buffer is below the max here */
        if (take > len)
            take = len;
        if (dmsu_buf_append(&bc->text, s, take) < 0)
            return; /* no memory: this output is lost, the build goes on */
        s += take;
        len -= take;
        emit_complete_lines(bc, stream);
        split_long_line(bc, stream);
    } while (len > 0);
    if (flush && bc->text.len) {
        if (bc->out)
            bc->out(bc->userdata, stream, bc->text.data, bc->text.len);
        dmsu_buf_reset(&bc->text);
    }
}

static bool is_base_image_failure(const char *msg)
{
    return strstr(msg, "pull access denied") || strstr(msg, "failed to resolve") ||
           strstr(msg, "no such host") || strstr(msg, "manifest unknown") ||
           strstr(msg, "repository does not exist") || strstr(msg, "not found");
}

static int build_line(void *ud, json_t *j)
{
    build_ctx *bc = ud;
    const char *s = json_string_value(json_object_get(j, "stream"));
    if (s)
        emit_lines(bc, DMS_STREAM_STDOUT, s, strlen(s), false);
    const char *status = json_string_value(json_object_get(j, "status"));
    if (status && bc->out) {
        emit_lines(bc, DMS_STREAM_STDOUT, "", 0, true);
        bc->out(bc->userdata, DMS_STREAM_STDOUT, status, strlen(status));
    }
    const char *id = json_string_value(json_object_get(json_object_get(j, "aux"), "ID"));
    if (id)
        snprintf(bc->image_id, sizeof(bc->image_id), "%s", id);
    const char *e = json_string_value(json_object_get(j, "error"));
    if (e && !bc->error[0]) {
        json_t *detail = json_object_get(j, "errorDetail");
        snprintf(bc->error, sizeof(bc->error), "%s", e);
        /* errorDetail.code is the exit code of a RUN step: the user's Dockerfile failed. */
        bc->step_exit = json_integer_value(json_object_get(detail, "code"));
        bc->user_fault = bc->step_exit != 0 || is_base_image_failure(e) || strstr(e, "dockerfile") ||
                         strstr(e, "Dockerfile") || strstr(e, "COPY failed") || strstr(e, "ADD failed") ||
                         strstr(e, "returned a non-zero code");
        emit_lines(bc, DMS_STREAM_STDOUT, "", 0, true);
        if (bc->out)
            bc->out(bc->userdata, DMS_STREAM_STDERR, e, strlen(e));
    }
    return 0;
}

/* A step killed by SIGKILL (exit 137) under a memory limit most likely ran out of it: say what the limit was.
 */
static const char *killed_hint(const build_ctx *bc, const dms_build_request *req, char *buf, size_t n)
{
    if (bc->step_exit != SIGKILL_EXIT_CODE || req->memory_bytes <= 0)
        return "";
    snprintf(buf, n, " (killed: each build step's memory limit is %lld MiB)",
             (long long)(req->memory_bytes / BYTES_PER_MIB));
    return buf;
}

/* Engine messages longer than NDJSON_LINE_MAX are skipped (memory stays bounded); the log says so. */
static void note_dropped_messages(build_ctx *bc, size_t dropped)
{
    if (!dropped || !bc->out)
        return;
    char note[160];
    snprintf(note, sizeof(note), "[dms] %zu engine messages longer than %d bytes were dropped", dropped,
             NDJSON_LINE_MAX);
    bc->out(bc->userdata, DMS_STREAM_STDERR, note, strlen(note));
}

/* The build's resource limits as /build query parameters (v1.41 ImageBuild): memory and memswap (equal: no
 * swap beyond the memory), and a CFS quota of cpu_millis per period. They apply to every step's container. */
static void build_limits_query(const dms_build_request *req, char *buf, size_t n)
{
    int len = 0;
    buf[0] = '\0';
    if (req->memory_bytes > 0)
        len = snprintf(buf, n, "&memory=%lld&memswap=%lld", (long long)req->memory_bytes,
                       (long long)req->memory_bytes);
    if (req->cpu_millis > 0 && len >= 0 && (size_t)len < n)
        snprintf(buf + len, n - (size_t)len, "&cpuperiod=%d&cpuquota=%lld", BUILD_CPU_PERIOD_US,
                 (long long)req->cpu_millis * (BUILD_CPU_PERIOD_US / 1000));
}

static long tar_source(void *ud, char *buf, size_t len)
{
    build_ctx *bc = ud;
    ssize_t n;
    do
        n = read(bc->fd, buf, len);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -1 : (long)n;
}

static json_t *kv_object(char *const *kv)
{
    json_t *o = json_object();
    for (size_t i = 0; o && kv && kv[i]; i++) {
        const char *eq = strchr(kv[i], '=');
        if (!eq)
            continue;
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - kv[i]), kv[i]);
        json_object_set_new(o, key, json_string(eq + 1));
    }
    return o;
}

/* The Dockerfile to build: the host's text, or the context's own file, read beneath context_dir with no
 * symlink on the way (a link to a host file would otherwise be read, and the engine's parse error would print
 * its first line into the build log). Caller frees *text. */
static int read_dockerfile(const dms_build_request *req, char **text, size_t *len, dms_error *err)
{
    if (req->dockerfile_text) {
        *len = strlen(req->dockerfile_text);
        *text = strdup(req->dockerfile_text);
        return *text ? 0 : dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    const char *name = req->dockerfile ? req->dockerfile : "Dockerfile";
    _cleanup_close_ int dir = open(req->context_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return dms_error_set_errno(err, DMS_E_INVALID, errno, "build context %s", req->context_dir);
    dms_error e;
    int r = dmsu_read_file_beneath(dir, name, DOCKERFILE_MAX_BYTES, text, len, &e);
    if (r == -DMS_E_NOT_FOUND)
        return dms_error_set(err, DMS_E_BUILD_FAILED, "dockerfile", "no %s in the build context (%s)", name,
                             req->context_dir);
    if (r < 0)
        return dms_error_set(err, r == -DMS_E_INVALID ? DMS_E_BUILD_FAILED : -r, "dockerfile",
                             "Dockerfile: %s", e.message);
    return 0;
}

/* The context as a tar in an anonymous file (written once, streamed to the engine): the tree, whose symlinks
 * stay symlinks, plus the Dockerfile under LABELLED_DOCKERFILE, which no file of the tree can take. *fd is
 * rewound. */
static int write_context(docker_executor *ex, const dms_build_request *req, const char *dockerfile, int *fd,
                         int64_t *bytes, dms_error *err)
{
    char dir[PATH_MAX], tar_path[PATH_MAX];
    int r;
    snprintf(dir, sizeof(dir), "%s/../" BUILD_DIR, ex->host->state_dir);
    if ((r = dms_mkdir_p(dir, false, err)) < 0)
        return r;
    snprintf(tar_path, sizeof(tar_path), "%s/%s-%s.tar", dir, ex->id, req->build_id);
    *fd = open(tar_path, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (*fd < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "create %s", tar_path);
    unlink(tar_path); /* anonymous from here on: nothing to clean up if we crash */
    if ((r = docker_tar_dir(req->context_dir, LABELLED_DOCKERFILE, dockerfile, strlen(dockerfile), *fd, bytes,
                            err)) < 0)
        return r;
    if (lseek(*fd, 0, SEEK_SET) != 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "rewind build context");
    return 0;
}

/* The image labels of the query: the caller's extras, then ours over them. The engine applies them after the
 * Dockerfile's own steps, one step per label. With our labelled copy of the Dockerfile (which re-asserts the
 * stable labels at the end of every stage) only the per-build execution label goes here; without one, every
 * io.dms.* label does, so a Dockerfile's `LABEL io.dms.executor=...` never reaches the image the build tags.
 */
static json_t *query_labels(docker_executor *ex, const dms_build_request *req, bool labelled)
{
    json_t *labels = kv_object(req->labels);
    json_t *ours = labelled ? json_pack("{s:s}", DMS_LABEL_EXECUTION, req->build_id)
                            : docker_labels(ex->id, req->job_id, req->build_id, "build");
    if (!labels || !ours || json_object_update(labels, ours) < 0) {
        json_decref(labels);
        labels = NULL;
    }
    json_decref(ours);
    return labels;
}

int docker_build(void *cookie, const dms_build_request *req, dms_build_output_fn out, void *userdata,
                 dms_cancel_token *cancel, dms_build_result *result, dms_error *err)
{
    docker_executor *ex = cookie;
    int r;
    build_ctx bc = {
        .ex = ex, .out = out, .userdata = userdata, .text = {.max = BUILD_LINE_MAX_BYTES}, .fd = -1};
    int64_t bytes = 0;
    _cleanup_free_ char *df_text = NULL, *df_labelled = NULL;
    size_t df_len = 0;
    if ((r = read_dockerfile(req, &df_text, &df_len, err)) < 0)
        return r;
    /* Stable labels after every FROM and at the end of every stage (see docker_label_stages); the per-build
     * one stays on the query. */
    char label_line[512];
    snprintf(label_line, sizeof(label_line),
             "LABEL \"%s\"=\"true\" \"%s\"=\"%s\" \"%s\"=\"docker\" \"%s\"=\"build\"%s%s%s",
             DMS_LABEL_MANAGED, DMS_LABEL_EXECUTOR, ex->id, DMS_LABEL_BACKEND, DMS_LABEL_ROLE,
             req->job_id ? " \"" DMS_LABEL_JOB "\"=\"" : "", req->job_id ? req->job_id : "",
             req->job_id ? "\"" : "");
    df_labelled = docker_label_stages(df_text, df_len, label_line);
    if ((r = write_context(ex, req, df_labelled ? df_labelled : df_text, &bc.fd, &bytes, err)) < 0) {
        if (bc.fd >= 0)
            close(bc.fd);
        return r;
    }
    _cleanup_json_ json_t *labels = query_labels(ex, req, df_labelled != NULL);
    _cleanup_json_ json_t *args = kv_object(req->build_args);
    _cleanup_free_ char *lj = labels ? json_dumps(labels, JSON_COMPACT) : NULL;
    _cleanup_free_ char *aj = json_dumps(args, JSON_COMPACT);
    _cleanup_free_ char *el = lj ? docker_escape(lj) : NULL, *ea = aj ? docker_escape(aj) : NULL;
    _cleanup_free_ char *et = docker_escape(req->tag), *ed = docker_escape(LABELLED_DOCKERFILE);
    _cleanup_free_ char *eg = req->target ? docker_escape(req->target) : NULL;
    _cleanup_free_ char *path = dmsu_strdup_printf(
        "/build?t=%s&dockerfile=%s&labels=%s&buildargs=%s&rm=1&forcerm=1%s%s%s", et ? et : "", ed ? ed : "",
        el ? el : "", ea ? ea : "", req->no_cache ? "&nocache=1" : "", eg ? "&target=" : "", eg ? eg : "");
    char limits[160];
    build_limits_query(req, limits, sizeof(limits));
    _cleanup_free_ char *url = path ? dmsu_strdup_printf("%s%s", path, limits) : NULL;
    if (!url || !el || !ea || !et || !ed) {
        close(bc.fd);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    dms_logf(ex->host, DMS_LOG_INFO, "op=build build=%s tag=%s context_bytes=%lld", req->build_id, req->tag,
             (long long)bytes);
    ndjson nj = {.line = {.max = NDJSON_LINE_MAX}, .on_line = build_line, .ud = &bc};
    docker_response resp;
    docker_abort ab = {.token = cancel};
    r = docker_call_stream(&ex->client, "POST", url, "application/x-tar", tar_source, &bc, 0, &ab,
                           docker_ndjson_feed, &nj, &resp, err);
    close(bc.fd);
    emit_lines(&bc, DMS_STREAM_STDOUT, "", 0, true);
    note_dropped_messages(&bc, nj.dropped);
    dmsu_buf_free(&nj.line);
    dmsu_buf_free(&bc.text);
    if (r == -DMS_E_CANCELLED || dms_cancel_token_cancelled(cancel)) {
        dmsu_buf_free(&resp.body);
        drop_cancelled_steps(ex, bc.last_step, req->job_id, result);
        return dms_error_set(err, DMS_E_CANCELLED, NULL, "build %s cancelled", req->build_id);
    }
    if (r == 0 && resp.status != 200) {
        char msg[DMS_ERROR_MSG_MAX];
        docker_response_message(&resp, msg, sizeof(msg));
        bool user = strstr(msg, "ockerfile") || strstr(msg, "parse error") ||
                    strstr(msg, "unknown instruction") || resp.status == 400;
        if (out)
            out(userdata, DMS_STREAM_STDERR, msg, strlen(msg));
        r = dms_error_set(err, user ? DMS_E_BUILD_FAILED : DMS_E_ENGINE, NULL, "build %s: %s (HTTP %ld)",
                          req->build_id, msg, resp.status);
    }
    dmsu_buf_free(&resp.body);
    if (r < 0)
        return r;
    if (bc.error[0]) {
        drop_step_image(ex, bc.last_step, req->job_id, result);
        char hint[96];
        if (bc.user_fault) {
            if (is_base_image_failure(bc.error))
                return dms_error_set(
                    err, DMS_E_BUILD_FAILED, "dockerfile",
                    "build %s: a base image is not present locally and could not be pulled: %s",
                    req->build_id, bc.error);
            return dms_error_set(err, DMS_E_BUILD_FAILED, NULL, "build %s failed: %s%s", req->build_id,
                                 bc.error, killed_hint(&bc, req, hint, sizeof(hint)));
        }
        return dms_error_set(err, DMS_E_ENGINE, NULL, "build %s: the engine failed: %s", req->build_id,
                             bc.error);
    }
    if (!bc.image_id[0])
        return dms_error_set(err, DMS_E_PROTOCOL, NULL, "build %s: the engine reported no image id",
                             req->build_id);
    snprintf(result->image_id, sizeof(result->image_id), "%s", bc.image_id);
    return 0;
}
