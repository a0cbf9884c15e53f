/* composebuild.c - the build of a compose droid (see composebuild.h). */
#include "composebuild.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dms/backend.h>

#include "../common.h"
#include "../compose/compose.h"
#include "bindcopy.h"
#include "buildreq.h"
#include "dfpolicy.h"
#include "recipe.h"
#include "srchash.h"

static const char *const default_names[] = {"compose.yaml", "compose.yml", "docker-compose.yaml",
                                            "docker-compose.yml", NULL};

int composebuild_find(const char *src, const droid *d, const char **name, dms_error *err)
{
    _cleanup_close_ int dir = open(src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "open the checkout %s", src);
    if (d->compose_file) {
        int fd = dmsu_open_beneath(dir, d->compose_file, O_RDONLY);
        struct stat st;
        bool ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
        if (fd >= 0)
            close(fd);
        if (!ok)
            return dms_error_set(err, DMS_E_BUILD_FAILED, "compose_file",
                                 "compose_file %s is not a file of the repository (a symbolic link is not "
                                 "followed)",
                                 d->compose_file);
        *name = d->compose_file;
        return 1;
    }
    for (size_t i = 0; default_names[i]; i++) {
        struct stat st;
        if (fstatat(dir, default_names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISDIR(st.st_mode)) {
            *name = default_names[i];
            return 1;
        }
    }
    return 0;
}

/* ---- output, tagged with the service ---- */

typedef struct tagged {
    const composebuild_in *in;
    const char *service;
} tagged;

static void tagged_out(void *ud, dms_stream_type stream, const char *line, size_t len)
{
    tagged *t = ud;
    char buf[4096 + 96];
    int n = snprintf(buf, sizeof(buf), "[%s] %.*s", t->service, (int)(len > 4096 ? 4096 : len), line);
    if (n > 0)
        t->in->out(t->in->ud, stream, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void say(const composebuild_in *in, const char *service, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(const composebuild_in *in, const char *service, const char *fmt, ...)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "[%s] [dms] ", service);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    in->out(in->ud, DMS_STREAM_STDOUT, line, strlen(line));
}

/* ---- one service ---- */

typedef struct svc_ctx {
    const composebuild_in *in;
    int src; /* the checkout, open */
    const compose_service *s;
    size_t index; /* in start order: names the engine's build (<droid>-b<build>-s<index>) */
    dfp_policy policy;
    json_t *entry; /* services.<name> of the release */
    composebuild_result *res;
} svc_ctx;

static bool own_droid(void *ud, const char *droid_id)
{
    const composebuild_in *in = ud;
    return in->d->user_id && core_check_owner(in->core, in->d->user_id, droid_id, NULL) == 0;
}

/* The service's Dockerfile, read beneath its context (itself beneath the checkout), checked. */
static int read_dockerfile(svc_ctx *c, int ctx, char **text, dms_error *err)
{
    const compose_build *b = c->s->build;
    const char *df = b->dockerfile ? b->dockerfile : "Dockerfile";
    dms_error e;
    size_t len;
    char field[160];
    snprintf(field, sizeof(field), "services.%s.build.dockerfile", c->s->name);
    if (dmsu_read_file_beneath(ctx, df, RECIPE_DOCKERFILE_MAX_BYTES, text, &len, &e) < 0)
        return dms_error_set(err, DMS_E_BUILD_FAILED, field, "%s: %s (%s)", field, df, e.message);
    if (strlen(*text) != len)
        return dms_error_set(err, DMS_E_BUILD_FAILED, field, "%s: %s has a NUL byte", field, df);
    dfp_policy p = c->policy;
    p.build_args = b->args;
    int r = dfp_check(*text, len, &p, err);
    if (r < 0)
        return dms_error_prefix(err, "services.%s: ", c->s->name);
    return 0;
}

/* The previous release built this service from the same inputs and its image is still there: reused. */
static bool reuse_image(svc_ctx *c, const char *src_hash)
{
    json_t *prev = c->in->prev_json ? json_loads(c->in->prev_json, 0, NULL) : NULL;
    json_t *e = json_object_get(json_object_get(prev, "services"), c->s->name);
    const char *img = json_string_value(json_object_get(e, "image"));
    const char *tag = json_string_value(json_object_get(e, "tag"));
    dms_image_info info = {0};
    bool same = img && tag && json_is_true(json_object_get(e, "built")) &&
                strcmp(json_string_value(json_object_get(e, "src")) ?: "", src_hash) == 0 &&
                dms_executor_image_info(c->in->ex, img, &info, NULL) == 0 && info.present;
    if (same) {
        json_object_set_new(c->entry, "image", json_string(img));
        json_object_set_new(c->entry, "tag", json_string(tag));
        json_object_set_new(c->entry, "built", json_true());
        say(c->in, c->s->name, "unchanged (Dockerfile, args and context): reusing %s (%s)", tag, img);
    }
    json_decref(prev);
    return same;
}

/* The engine builds the service's image from its context. */
static int build_service(svc_ctx *c, dms_error *err)
{
    const composebuild_in *in = c->in;
    const compose_service *s = c->s;
    char field[160];
    snprintf(field, sizeof(field), "services.%s.build.context", s->name);
    _cleanup_close_ int ctx = dmsu_open_beneath(c->src, s->build->context, O_RDONLY | O_DIRECTORY);
    if (ctx < 0)
        return dms_error_set(err, DMS_E_BUILD_FAILED, field,
                             "%s: %s is not a directory of the repository (a symbolic link is not followed)",
                             field, s->build->context);
    _cleanup_free_ char *text = NULL;
    int r = read_dockerfile(c, ctx, &text, err);
    if (r < 0)
        return r;
    char src_hash[SRCHASH_HEX + 1];
    srchash_context(ctx, text, s->build->args, s->build->target, src_hash);
    json_object_set_new(c->entry, "src", json_string(src_hash));
    if (src_hash[0] && reuse_image(c, src_hash))
        return 0;
    char ctx_path[PATH_MAX];
    snprintf(ctx_path, sizeof(ctx_path), "%s/%s", in->src, s->build->context);
    buildreq bq;
    buildreq_make(&bq, in->cfg, in->d->id, in->build_id, ctx_path, text);
    snprintf(bq.tag, sizeof(bq.tag), "dms-droid/%s:b%lld-%s", in->d->id, (long long)in->build_id, s->name);
    snprintf(bq.build_id, sizeof(bq.build_id), "%s-b%lld-s%zu", in->d->id, (long long)in->build_id, c->index);
    bq.req.build_args = s->build->args;
    bq.req.target = s->build->target;
    say(in, s->name, "building image %s", bq.tag);
    tagged t = {.in = in, .service = s->name};
    dms_build_result br = {0};
    r = dms_executor_build(in->ex, &bq.req, tagged_out, &t, in->token, &br, err);
    if (br.image_id[0] || r == 0)
        dmsu_strv_push(&c->res->built, r == 0 ? bq.tag : br.image_id);
    if (r < 0)
        return dms_error_prefix(err, "services.%s: ", s->name);
    dms_image_info info = {0};
    dms_executor_image_info(in->ex, bq.tag, &info, NULL);
    c->res->image_bytes += info.size_bytes;
    json_object_set_new(c->entry, "image", json_string(br.image_id[0] ? br.image_id : bq.tag));
    json_object_set_new(c->entry, "tag", json_string(bq.tag));
    json_object_set_new(c->entry, "built", json_true());
    say(in, s->name, "built %s (%s)", bq.tag, br.image_id);
    return 0;
}

/* An image: service names an image the tenant rules allow, already on this host; pinned to its id. */
static int check_image(svc_ctx *c, dms_error *err)
{
    const compose_service *s = c->s;
    char why[256] = "";
    char field[160];
    snprintf(field, sizeof(field), "services.%s.image", s->name);
    if (!dfp_image_allowed(&c->policy, s->image, why, sizeof(why)))
        return dms_error_set(err, DMS_E_BUILD_FAILED, field, "%s: %s is not allowed: %s", field, s->image,
                             why);
    dms_image_info info = {0};
    int r = dms_executor_image_info(c->in->ex, s->image, &info, err);
    if (r < 0)
        return r;
    if (!info.present)
        return dms_error_set(
            err, DMS_E_BUILD_FAILED, field,
            "%s: %s is not on this host (dms pulls nothing: build it, or use a dms-stack image)", field,
            s->image);
    json_object_set_new(c->entry, "image", json_string(info.id));
    json_object_set_new(c->entry, "tag", json_string(s->image));
    json_object_set_new(c->entry, "built", json_false());
    say(c->in, s->name, "uses %s (%s)", s->image, info.id);
    return 0;
}

/* One line of an env file: blank and # lines are skipped; KEY=VALUE (an optional "export "). */
static int env_line(json_t *arr, const char *line, size_t len, const char *field, dms_error *err)
{
    while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
        len--;
    while (len && *line == ' ')
        line++, len--;
    if (len == 0 || *line == '#')
        return 0;
    if (len > 7 && strncmp(line, "export ", 7) == 0)
        line += 7, len -= 7;
    const char *eq = memchr(line, '=', len);
    if (!eq || eq == line || json_array_size(arr) >= COMPOSE_LIST_MAX)
        return dms_error_set(err, DMS_E_BUILD_FAILED, field,
                             "%s: every line must be KEY=VALUE (at most %d of them)", field,
                             COMPOSE_LIST_MAX);
    for (const char *k = line; k < eq; k++)
        if (!(*k == '_' || (*k >= 'A' && *k <= 'Z') || (*k >= 'a' && *k <= 'z') ||
              (k > line && *k >= '0' && *k <= '9')))
            return dms_error_set(err, DMS_E_BUILD_FAILED, field, "%s: %.*s is not a variable name", field,
                                 (int)(eq - line > 64 ? 64 : eq - line), line);
    json_array_append_new(arr, json_stringn(line, len));
    return 0;
}

/* The service's env files, read beneath the checkout, in order. */
static int read_env_files(svc_ctx *c, dms_error *err)
{
    json_t *arr = json_array();
    json_object_set_new(c->entry, "env_file", arr);
    for (size_t i = 0; i < c->s->n_env_files; i++) {
        const compose_env_file *ef = &c->s->env_files[i];
        char field[160];
        snprintf(field, sizeof(field), "services.%s.env_file[%zu]", c->s->name, i);
        _cleanup_free_ char *text = NULL;
        size_t len = 0;
        dms_error e;
        if (dmsu_read_file_beneath(c->src, ef->path, COMPOSEBUILD_ENV_FILE_MAX_BYTES, &text, &len, &e) < 0) {
            if (!ef->required && e.code == DMS_E_NOT_FOUND)
                continue;
            return dms_error_set(err, DMS_E_BUILD_FAILED, field, "%s: %s: %s", field, ef->path, e.message);
        }
        for (size_t at = 0; at < len;) {
            const char *nl = memchr(text + at, '\n', len - at);
            size_t l = nl ? (size_t)(nl - (text + at)) : len - at;
            int r = env_line(arr, text + at, l, field, err);
            if (r < 0)
                return r;
            at += l + 1;
        }
    }
    return 0;
}

/* Paths of the repository a service mounts, copied out of the checkout (bindcopy.h): "binds" holds each
 * volume's copy (null for a named volume), in the order of its volumes. */
static int copy_binds(svc_ctx *c, dms_error *err)
{
    json_t *arr = json_array();
    json_object_set_new(c->entry, "binds", arr);
    for (size_t i = 0; i < c->s->n_volumes; i++) {
        const compose_mount *m = &c->s->volumes[i];
        if (m->type != COMPOSE_MOUNT_BIND) {
            json_array_append_new(arr, json_null());
            continue;
        }
        char field[160], path[PATH_MAX];
        snprintf(field, sizeof(field), "services.%s.volumes[%zu]", c->s->name, i);
        int r = bindcopy_make(c->src, m->source, c->in->binds_dir, field, path, sizeof(path), err);
        if (r < 0)
            return r;
        json_array_append_new(arr, json_string(path));
        say(c->in, c->s->name, "%s: %s copied for a read-only mount", field, m->source);
    }
    return 0;
}

/* ---- the whole file ---- */

static int read_file(const composebuild_in *in, int src, char **text, size_t *len, dms_error *err)
{
    dms_error e;
    if (dmsu_read_file_beneath(src, in->file, COMPOSE_FILE_MAX_BYTES, text, len, &e) < 0)
        return dms_error_set(err, DMS_E_BUILD_FAILED, "compose_file", "the compose file %s: %s", in->file,
                             e.message);
    return 0;
}

static int parse(const composebuild_in *in, const char *text, size_t len, compose_file **f, dms_error *err)
{
    _cleanup_strv_ char **env = NULL;
    int r = droid_env_vector(in->d, &env, err);
    if (r == 0)
        r = compose_parse(text, len, env, f, err);
    if (r == -DMS_E_INVALID) {
        err->code = DMS_E_BUILD_FAILED;
        return dms_error_prefix(err, "%s: ", in->file);
    }
    return r;
}

static int build_all(const composebuild_in *in, int src, const compose_file *f, json_t *services,
                     composebuild_result *res, dms_error *err)
{
    for (size_t i = 0; i < f->n_services; i++) {
        svc_ctx c = {.in = in,
                     .src = src,
                     .s = &f->services[i],
                     .index = i,
                     .policy = {.allowed = in->cfg->allowed_images, .own_droid = own_droid, .ud = (void *)in},
                     .entry = json_object(),
                     .res = res};
        if (!c.entry)
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        json_object_set_new(services, c.s->name, c.entry);
        int r = copy_binds(&c, err);
        if (r == 0)
            r = c.s->build ? build_service(&c, err) : check_image(&c, err);
        if (r == 0)
            r = read_env_files(&c, err);
        if (r < 0)
            return r;
        if (dms_cancel_token_cancelled(in->token))
            return dms_error_set(err, DMS_E_CANCELLED, NULL, "cancelled");
        if ((int)i == (f->route_service >= 0 ? f->route_service : (int)f->n_services - 1)) {
            json_t *img = json_object_get(c.entry, "image"), *tag = json_object_get(c.entry, "tag");
            free(res->image_id);
            free(res->tag);
            res->image_id = strdup(json_string_value(img));
            res->tag = strdup(json_string_value(tag));
        }
    }
    return 0;
}

int composebuild_run(const composebuild_in *in, composebuild_result *res, dms_error *err)
{
    memset(res, 0, sizeof(*res));
    _cleanup_close_ int src = open(in->src, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (src < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "open the checkout %s", in->src);
    _cleanup_free_ char *text = NULL;
    size_t len = 0;
    compose_file *f = NULL;
    int r = read_file(in, src, &text, &len, err);
    if (r == 0)
        r = parse(in, text, len, &f, err);
    if (r < 0)
        return r;
    json_t *services = json_object();
    json_t *doc = json_pack("{s:s, s:s%, s:o}", "file", in->file, "text", text, len, "services", services);
    if (!doc) {
        compose_file_free(f);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    r = build_all(in, src, f, services, res, err);
    compose_file_free(f);
    if (r == 0 && !(res->compose_json = json_dumps(doc, JSON_COMPACT)))
        r = dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    json_decref(doc);
    return r;
}

void composebuild_result_clear(composebuild_result *res)
{
    free(res->compose_json);
    free(res->image_id);
    free(res->tag);
    dmsu_strv_free(res->built);
    memset(res, 0, sizeof(*res));
}
