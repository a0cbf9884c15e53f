/* request.c - the execution request: JSON form, deep copy, and the validation every backend shares. */
#include <dms/request.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "security.h"
#include "util.h"

#define ARGV_MAX_ITEMS          4096
#define ENV_MAX_ITEMS           4096
#define MOUNTS_MAX              64
#define PORTS_MAX               64
#define LABELS_MAX              64
#define RESULT_OUTPUT_MAX_BYTES (16LL * 1024 * 1024)
#define LOG_FILE_MIN_BYTES      (64LL * 1024)
#define STOP_GRACE_MAX_MS       (3600LL * 1000)
#define CPU_MILLIS_MAX          (1024LL * 1000)
#define IMAGE_REF_MAX           255
#define DIGEST_HEX_MIN          32
#define SHA256_HEX_LEN          64

/* ---- identifiers and references ---- */

bool dms_id_valid(const char *s)
{
    if (!s || !*s || strlen(s) > DMS_ID_MAX)
        return false;
    if (!isalnum((unsigned char)s[0]))
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
            return false;
    return true;
}

/* One path component of a repository name: [a-z0-9]+ ((.|_|__|-+)[a-z0-9]+)* */
static bool name_component_valid(const char *s, size_t n)
{
    if (n == 0 || (!islower((unsigned char)s[0]) && !isdigit((unsigned char)s[0])))
        return false;
    size_t i = 0;
    while (i < n) {
        if (islower((unsigned char)s[i]) || isdigit((unsigned char)s[i])) {
            i++;
            continue;
        }
        size_t sep = i;
        if (s[i] == '.')
            i++;
        else if (s[i] == '_')
            i += (i + 1 < n && s[i + 1] == '_') ? 2 : 1;
        else if (s[i] == '-')
            while (i < n && s[i] == '-')
                i++;
        else
            return false;
        if (i >= n || (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i])) || i == sep)
            return false;
    }
    return true;
}

static bool domain_valid(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-' && s[i] != ':')
            return false;
    return true;
}

/* A digest as the reference grammar has it (distribution/reference): algorithm ":" hex, where the algorithm
 * is [A-Za-z][A-Za-z0-9]*([-_+.][A-Za-z][A-Za-z0-9]*)* and the hex part is at least 32 digits; a sha256
 * digest is exactly 64 lower-case hex digits (the engine refuses anything else as "invalid reference
 * format"). */
static bool digest_valid(const char *s, const char *end)
{
    const char *colon = memchr(s, ':', (size_t)(end - s));
    if (!colon)
        return false;
    for (const char *p = s; p < colon; p++) {
        bool starts_component = p == s || p[-1] == '-' || p[-1] == '_' || p[-1] == '+' || p[-1] == '.';
        if (starts_component ? !isalpha((unsigned char)*p)
                             : !isalnum((unsigned char)*p) && !strchr("-_+.", *p))
            return false;
    }
    if (colon == s || !isalnum((unsigned char)colon[-1]))
        return false;
    size_t hex = (size_t)(end - colon - 1);
    bool sha256 = (size_t)(colon - s) == 6 && memcmp(s, "sha256", 6) == 0;
    if (hex < DIGEST_HEX_MIN || (sha256 && hex != SHA256_HEX_LEN))
        return false;
    for (const char *p = colon + 1; p < end; p++)
        if (!isxdigit((unsigned char)*p) || (sha256 && isupper((unsigned char)*p)))
            return false;
    return true;
}

bool dms_image_ref_valid(const char *ref)
{
    if (!ref || !*ref || strlen(ref) > IMAGE_REF_MAX)
        return false;
    const char *end = ref + strlen(ref);
    const char *at = strchr(ref, '@');
    if (at) {
        if (!digest_valid(at + 1, end))
            return false;
        end = at;
    }
    /* tag: after the last ':' that follows the last '/' */
    const char *slash = NULL;
    for (const char *p = ref; p < end; p++)
        if (*p == '/')
            slash = p;
    const char *tagc = NULL;
    for (const char *p = slash ? slash : ref; p < end; p++)
        if (*p == ':')
            tagc = p;
    if (tagc) {
        size_t tl = (size_t)(end - tagc - 1);
        if (tl == 0 || tl > 128)
            return false;
        for (const char *p = tagc + 1; p < end; p++)
            if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-')
                return false;
        if (tagc[1] == '.' || tagc[1] == '-')
            return false;
        end = tagc;
    }
    /* name: [domain/]component(/component)* ; the first part is a domain if it has '.', ':' or is localhost
     */
    const char *p = ref;
    const char *first_end = memchr(p, '/', (size_t)(end - p));
    if (first_end) {
        size_t fl = (size_t)(first_end - p);
        bool is_domain = memchr(p, '.', fl) || memchr(p, ':', fl) || (fl == 9 && !memcmp(p, "localhost", 9));
        if (is_domain) {
            if (!domain_valid(p, fl))
                return false;
            p = first_end + 1;
        }
    }
    while (p < end) {
        const char *q = memchr(p, '/', (size_t)(end - p));
        size_t cl = q ? (size_t)(q - p) : (size_t)(end - p);
        if (!name_component_valid(p, cl))
            return false;
        if (!q)
            break;
        p = q + 1;
        if (p >= end)
            return false;
    }
    return p < end;
}

static bool env_key_valid(const char *s, size_t n)
{
    if (n == 0 || (!isalpha((unsigned char)s[0]) && s[0] != '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return false;
    return true;
}

static bool label_key_valid(const char *s, size_t n)
{
    if (n == 0 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-' && s[i] != '/')
            return false;
    return true;
}

static bool user_valid(const char *s)
{
    if (!*s || strlen(s) > 64)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-' && *p != ':')
            return false;
    return true;
}

/* Every string of a request travels as JSON (dmsd, result files, the engine API), and a JSON encoder drops
 * what it cannot encode: refusing a string that is not well-formed UTF-8 (dms_utf8_valid: no overlong forms,
 * surrogates or code points beyond U+10FFFF) here keeps a command from silently losing an argument later. */
static int check_utf8(const char *s, const char *field, dms_error *err)
{
    if (s && !dms_utf8_valid(s))
        return dms_error_set(err, DMS_E_INVALID, field, "%s is not valid UTF-8", field);
    return 0;
}

static bool ip_valid(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* ---- validation ---- */

static int validate_argv(char *const *v, const char *field, dms_error *err)
{
    if (!v)
        return 0;
    size_t n = dms_strv_len(v);
    if (n > ARGV_MAX_ITEMS)
        return dms_error_set(err, DMS_E_INVALID, field, "%s has %zu items; at most %d are allowed", field, n,
                             ARGV_MAX_ITEMS);
    char item[DMS_ERROR_FIELD_MAX];
    for (size_t i = 0; i < n; i++) {
        snprintf(item, sizeof(item), "%s[%zu]", field, i);
        int r = check_utf8(v[i], item, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int validate_env(char *const *env, dms_error *err)
{
    size_t n = dms_strv_len(env);
    char field[DMS_ERROR_FIELD_MAX];
    if (n > ENV_MAX_ITEMS)
        return dms_error_set(err, DMS_E_INVALID, "engine.env", "engine.env has %zu entries; at most %d", n,
                             ENV_MAX_ITEMS);
    for (size_t i = 0; i < n; i++) {
        snprintf(field, sizeof(field), "engine.env[%zu]", i);
        int r = check_utf8(env[i], field, err);
        if (r < 0)
            return r;
        const char *eq = strchr(env[i], '=');
        if (!eq)
            return dms_error_set(err, DMS_E_INVALID, field, "%s: \"%.64s\" is not KEY=VALUE", field, env[i]);
        size_t kl = (size_t)(eq - env[i]);
        if (!env_key_valid(env[i], kl))
            return dms_error_set(err, DMS_E_INVALID, field,
                                 "%s: key \"%.*s\" must match [A-Za-z_][A-Za-z0-9_]*", field,
                                 (int)(kl > 64 ? 64 : kl), env[i]);
        for (size_t j = 0; j < i; j++)
            if (strncmp(env[j], env[i], kl + 1) == 0)
                return dms_error_set(err, DMS_E_INVALID, field, "%s: key \"%.*s\" is set twice", field,
                                     (int)(kl > 64 ? 64 : kl), env[i]);
    }
    return 0;
}

static int validate_mounts(const dms_exec_request *req, dms_error *err)
{
    char field[DMS_ERROR_FIELD_MAX];
    if (req->n_mounts > MOUNTS_MAX)
        return dms_error_set(err, DMS_E_INVALID, "mounts", "%zu mounts; at most %d", req->n_mounts,
                             MOUNTS_MAX);
    if (req->n_mounts && !req->mounts)
        return dms_error_set(err, DMS_E_INVALID, "mounts", "mounts is NULL with n_mounts %zu", req->n_mounts);
    for (size_t i = 0; i < req->n_mounts; i++) {
        const dms_mount *m = &req->mounts[i];
        snprintf(field, sizeof(field), "mounts[%zu].target", i);
        if (!m->target || m->target[0] != '/' || strcmp(m->target, "/") == 0)
            return dms_error_set(err, DMS_E_INVALID, field, "%s must be an absolute path other than /",
                                 field);
        if (strlen(m->target) > 4096)
            return dms_error_set(err, DMS_E_INVALID, field, "%s is too long", field);
        int r = check_utf8(m->target, field, err);
        if (r < 0)
            return r;
        for (size_t j = 0; j < i; j++)
            if (strcmp(req->mounts[j].target, m->target) == 0)
                return dms_error_set(err, DMS_E_INVALID, field, "%s: %s is mounted twice", field, m->target);
        snprintf(field, sizeof(field), "mounts[%zu].source", i);
        if ((r = check_utf8(m->source, field, err)) < 0)
            return r;
        struct stat st;
        switch (m->type) {
        case DMS_MOUNT_BIND:
            if (!m->source || m->source[0] != '/')
                return dms_error_set(err, DMS_E_INVALID, field,
                                     "%s: a bind mount needs an absolute host path", field);
            if (stat(m->source, &st) != 0)
                return dms_error_set(err, DMS_E_INVALID, field, "%s: host path %s does not exist", field,
                                     m->source);
            break;
        case DMS_MOUNT_VOLUME:
            if (!m->source || !dms_id_valid(m->source))
                return dms_error_set(err, DMS_E_INVALID, field,
                                     "%s: a volume mount needs a volume name ([A-Za-z0-9][A-Za-z0-9_.-]*)",
                                     field);
            break;
        case DMS_MOUNT_TMPFS:
            if (m->source && *m->source)
                return dms_error_set(err, DMS_E_INVALID, field, "%s: a tmpfs mount takes no source", field);
            if (m->size_bytes < 0) {
                snprintf(field, sizeof(field), "mounts[%zu].size_bytes", i);
                return dms_error_set(err, DMS_E_INVALID, field, "%s must not be negative", field);
            }
            break;
        default:
            snprintf(field, sizeof(field), "mounts[%zu].type", i);
            return dms_error_set(err, DMS_E_INVALID, field, "%s must be bind, volume or tmpfs", field);
        }
    }
    return 0;
}

static int validate_network(const dms_exec_request *req, dms_error *err)
{
    char field[DMS_ERROR_FIELD_MAX];
    switch (req->network_mode) {
    case DMS_NET_DEFAULT:
    case DMS_NET_NONE:
    case DMS_NET_HOST:
        break;
    case DMS_NET_NAMED:
        if (!dms_id_valid(req->network_name))
            return dms_error_set(err, DMS_E_INVALID, "network.name",
                                 "network.name is required for a named network ([A-Za-z0-9][A-Za-z0-9_.-]*)");
        break;
    default:
        return dms_error_set(err, DMS_E_INVALID, "network.mode",
                             "network.mode must be default, none, host or named");
    }
    if (req->network_name && req->network_mode != DMS_NET_NAMED)
        return dms_error_set(err, DMS_E_INVALID, "network.name",
                             "network.name is only for mode \"named\" (or leave the mode out)");
    if (req->n_ports > PORTS_MAX)
        return dms_error_set(err, DMS_E_INVALID, "network.ports", "%zu ports; at most %d", req->n_ports,
                             PORTS_MAX);
    if (req->n_ports && (req->network_mode == DMS_NET_NONE || req->network_mode == DMS_NET_HOST))
        return dms_error_set(err, DMS_E_INVALID, "network.ports",
                             "network.ports: ports cannot be published with network mode %s",
                             req->network_mode == DMS_NET_NONE ? "none" : "host");
    for (size_t i = 0; i < req->n_ports; i++) {
        const dms_port *p = &req->ports[i];
        snprintf(field, sizeof(field), "network.ports[%zu]", i);
        if (p->container_port == 0)
            return dms_error_set(err, DMS_E_INVALID, field, "%s: container port must be 1-65535", field);
        if (p->protocol && strcmp(p->protocol, "tcp") != 0 && strcmp(p->protocol, "udp") != 0)
            return dms_error_set(err, DMS_E_INVALID, field, "%s: protocol must be tcp or udp", field);
        if (p->host_ip && !ip_valid(p->host_ip))
            return dms_error_set(err, DMS_E_INVALID, field, "%s: host_ip \"%.48s\" is not an IP address",
                                 field, p->host_ip);
        for (size_t j = 0; j < i; j++) {
            const dms_port *q = &req->ports[j];
            const char *pp = p->protocol ? p->protocol : "tcp", *qp = q->protocol ? q->protocol : "tcp";
            if (q->container_port == p->container_port && strcmp(pp, qp) == 0)
                return dms_error_set(err, DMS_E_INVALID, field, "%s: port %u/%s is published twice", field,
                                     p->container_port, pp);
            if (p->host_port && q->host_port == p->host_port && strcmp(pp, qp) == 0)
                return dms_error_set(err, DMS_E_INVALID, field, "%s: host port %u/%s is used twice", field,
                                     p->host_port, pp);
        }
    }
    return 0;
}

static int validate_labels(char *const *labels, dms_error *err)
{
    char field[DMS_ERROR_FIELD_MAX];
    size_t n = dms_strv_len(labels);
    if (n > LABELS_MAX)
        return dms_error_set(err, DMS_E_INVALID, "labels", "%zu labels; at most %d", n, LABELS_MAX);
    for (size_t i = 0; i < n; i++) {
        snprintf(field, sizeof(field), "labels[%zu]", i);
        const char *eq = strchr(labels[i], '=');
        size_t kl = eq ? (size_t)(eq - labels[i]) : strlen(labels[i]);
        if (!eq || !label_key_valid(labels[i], kl))
            return dms_error_set(err, DMS_E_INVALID, field,
                                 "%s: \"%.64s\" is not key=value with key [A-Za-z0-9._/-]+", field,
                                 labels[i]);
        if (strncmp(labels[i], "io.dms.", 7) == 0)
            return dms_error_set(err, DMS_E_INVALID, field, "%s: keys under io.dms. are reserved", field);
        for (size_t j = 0; j < i; j++)
            if (strncmp(labels[j], labels[i], kl + 1) == 0)
                return dms_error_set(err, DMS_E_INVALID, field, "%s: key \"%.*s\" is set twice", field,
                                     (int)(kl > 64 ? 64 : kl), labels[i]);
        int r = check_utf8(labels[i], field, err);
        if (r < 0)
            return r;
    }
    return 0;
}

int dms_exec_request_validate(const dms_exec_request *req, dms_error *err)
{
    int r;
    if (!req)
        return dms_error_set(err, DMS_E_INVALID, NULL, "request is NULL");
    if (!dms_id_valid(req->execution_id))
        return dms_error_set(
            err, DMS_E_INVALID, "execution_id",
            "execution_id must be 1-%d characters of [A-Za-z0-9_.-], starting with a letter or digit",
            DMS_ID_MAX);
    if (!dms_id_valid(req->job_id))
        return dms_error_set(
            err, DMS_E_INVALID, "job_id",
            "job_id must be 1-%d characters of [A-Za-z0-9_.-], starting with a letter or digit", DMS_ID_MAX);
    if (req->engine.image && !dms_image_ref_valid(req->engine.image))
        return dms_error_set(err, DMS_E_INVALID, "engine.image",
                             "engine.image \"%.128s\" is not a valid image reference", req->engine.image);
    if ((r = validate_argv(req->engine.entrypoint, "engine.entrypoint", err)) < 0 ||
        (r = validate_argv(req->engine.cmd, "engine.cmd", err)) < 0 ||
        (r = validate_env(req->engine.env, err)) < 0)
        return r;
    if (req->engine.working_dir && req->engine.working_dir[0] != '/')
        return dms_error_set(err, DMS_E_INVALID, "engine.working_dir",
                             "engine.working_dir must be an absolute path");
    if ((r = check_utf8(req->engine.working_dir, "engine.working_dir", err)) < 0)
        return r;
    if (req->engine.user && !user_valid(req->engine.user))
        return dms_error_set(err, DMS_E_INVALID, "engine.user", "engine.user must be uid[:gid] or a name");
    const dms_resources *rs = &req->resources;
    if (rs->cpu_millis < 0 || rs->cpu_millis > CPU_MILLIS_MAX)
        return dms_error_set(err, DMS_E_INVALID, "resources.cpu_millis",
                             "resources.cpu_millis must be 0-%lld", (long long)CPU_MILLIS_MAX);
    if (rs->memory_bytes < 0 || (rs->memory_bytes > 0 && rs->memory_bytes < DMS_MEMORY_MIN_BYTES))
        return dms_error_set(err, DMS_E_INVALID, "resources.memory_bytes",
                             "resources.memory_bytes must be 0 (unlimited) or at least %lld (6 MiB)",
                             (long long)DMS_MEMORY_MIN_BYTES);
    if (rs->disk_bytes < 0)
        return dms_error_set(err, DMS_E_INVALID, "resources.disk_bytes",
                             "resources.disk_bytes must not be negative");
    if (rs->pids_limit < 0)
        return dms_error_set(err, DMS_E_INVALID, "resources.pids_limit",
                             "resources.pids_limit must not be negative");
    if (rs->gpus < -1)
        return dms_error_set(err, DMS_E_INVALID, "resources.gpus",
                             "resources.gpus must be -1 (all), 0 or a count");
    if ((r = validate_mounts(req, err)) < 0 || (r = validate_network(req, err)) < 0 ||
        (r = validate_labels(req->labels, err)) < 0)
        return r;
    if (req->limits.result_output_bytes < 0 || req->limits.result_output_bytes > RESULT_OUTPUT_MAX_BYTES)
        return dms_error_set(err, DMS_E_INVALID, "limits.result_output_bytes",
                             "limits.result_output_bytes must be 0-%lld", (long long)RESULT_OUTPUT_MAX_BYTES);
    if (req->limits.log_file_bytes < 0 ||
        (req->limits.log_file_bytes > 0 && req->limits.log_file_bytes < LOG_FILE_MIN_BYTES))
        return dms_error_set(err, DMS_E_INVALID, "limits.log_file_bytes",
                             "limits.log_file_bytes must be 0 (default) or at least %lld",
                             (long long)LOG_FILE_MIN_BYTES);
    if (req->timeout_ms < 0)
        return dms_error_set(err, DMS_E_INVALID, "timeout_ms", "timeout_ms must not be negative");
    if (req->stop_grace_ms < 0 || req->stop_grace_ms > STOP_GRACE_MAX_MS)
        return dms_error_set(err, DMS_E_INVALID, "stop_grace_ms", "stop_grace_ms must be 0-%lld",
                             (long long)STOP_GRACE_MAX_MS);
    if (req->role && strcmp(req->role, "job") != 0 && strcmp(req->role, "build") != 0)
        return dms_error_set(err, DMS_E_INVALID, "role", "role must be job or build");
    return dms_security_validate(&req->security, err);
}

/* ---- ownership ---- */

void dms_exec_request_free(dms_exec_request *req)
{
    if (!req)
        return;
    free((char *)req->job_id);
    free((char *)req->execution_id);
    free((char *)req->engine.image);
    dms_strv_free((char **)req->engine.entrypoint);
    dms_strv_free((char **)req->engine.cmd);
    dms_strv_free((char **)req->engine.env);
    free((char *)req->engine.working_dir);
    free((char *)req->engine.user);
    for (size_t i = 0; req->mounts && i < req->n_mounts; i++) {
        free((char *)req->mounts[i].source);
        free((char *)req->mounts[i].target);
    }
    free((dms_mount *)req->mounts);
    free((char *)req->network_name);
    for (size_t i = 0; req->ports && i < req->n_ports; i++) {
        free((char *)req->ports[i].protocol);
        free((char *)req->ports[i].host_ip);
    }
    free((dms_port *)req->ports);
    dms_strv_free((char **)req->labels);
    free((char *)req->role);
    dms_strv_free((char **)req->security.cap_drop);
    dms_strv_free((char **)req->security.cap_add);
    free(req);
}

static int dup_str(const char *in, const char **out)
{
    *out = NULL;
    if (!in)
        return 0;
    *out = strdup(in);
    return *out ? 0 : -1;
}

static int dup_strv(char *const *in, char *const **out)
{
    *out = NULL;
    if (!in)
        return 0;
    *out = dms_strv_copy(in);
    return *out ? 0 : -1;
}

int dms_exec_request_copy(const dms_exec_request *req, dms_exec_request **out, dms_error *err)
{
    dms_exec_request *c = calloc(1, sizeof(*c));
    if (!c)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory copying a request");
    *c = *req;
    /* Reset every pointer first so that a partial copy frees cleanly. */
    c->job_id = c->execution_id = c->engine.image = c->engine.working_dir = c->engine.user = NULL;
    c->engine.entrypoint = c->engine.cmd = c->engine.env = c->labels = NULL;
    c->mounts = NULL;
    c->ports = NULL;
    c->network_name = c->role = NULL;
    c->security.cap_drop = c->security.cap_add = NULL;
    c->n_mounts = c->n_ports = 0;
    bool bad = dup_str(req->job_id, &c->job_id) || dup_str(req->execution_id, &c->execution_id) ||
               dup_str(req->engine.image, &c->engine.image) ||
               dup_strv(req->engine.entrypoint, &c->engine.entrypoint) ||
               dup_strv(req->engine.cmd, &c->engine.cmd) || dup_strv(req->engine.env, &c->engine.env) ||
               dup_str(req->engine.working_dir, &c->engine.working_dir) ||
               dup_str(req->engine.user, &c->engine.user) || dup_str(req->network_name, &c->network_name) ||
               dup_strv(req->labels, &c->labels) || dup_str(req->role, &c->role) ||
               dup_strv(req->security.cap_drop, &c->security.cap_drop) ||
               dup_strv(req->security.cap_add, &c->security.cap_add);
    if (!bad && req->n_mounts) {
        dms_mount *m = calloc(req->n_mounts, sizeof(*m));
        c->mounts = m;
        if (!m)
            bad = true;
        for (size_t i = 0; !bad && i < req->n_mounts; i++) {
            c->n_mounts = i + 1;
            m[i] = req->mounts[i];
            m[i].source = m[i].target = NULL;
            bad =
                dup_str(req->mounts[i].source, &m[i].source) || dup_str(req->mounts[i].target, &m[i].target);
        }
    }
    if (!bad && req->n_ports) {
        dms_port *p = calloc(req->n_ports, sizeof(*p));
        c->ports = p;
        if (!p)
            bad = true;
        for (size_t i = 0; !bad && i < req->n_ports; i++) {
            c->n_ports = i + 1;
            p[i] = req->ports[i];
            p[i].protocol = p[i].host_ip = NULL;
            bad = dup_str(req->ports[i].protocol, &p[i].protocol) ||
                  dup_str(req->ports[i].host_ip, &p[i].host_ip);
        }
    }
    if (bad) {
        dms_exec_request_free(c);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory copying a request");
    }
    *out = c;
    return 0;
}

/* ---- JSON ---- */

/* Refuses keys outside `allowed` (NULL-terminated), naming the first unknown one. */
static int check_keys(json_t *obj, const char *prefix, const char *const *allowed, dms_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i]; i++)
            if (strcmp(key, allowed[i]) == 0)
                ok = true;
        if (!ok) {
            char field[DMS_ERROR_FIELD_MAX];
            snprintf(field, sizeof(field), "%s%s", prefix, key);
            return dms_error_set(err, DMS_E_INVALID, field, "unknown field \"%s\"", field);
        }
    }
    return 0;
}

static int get_string(json_t *obj, const char *key, const char *field, const char **out, dms_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be a string", field);
    if (strlen(json_string_value(v)) != json_string_length(v))
        return dms_error_set(err, DMS_E_INVALID, field, "%s must not contain NUL bytes", field);
    *out = strdup(json_string_value(v));
    return *out ? 0 : dms_error_set(err, DMS_E_NOMEM, field, "out of memory");
}

static int get_int(json_t *obj, const char *key, const char *field, int64_t lo, int64_t hi, int64_t *out,
                   dms_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v))
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be an integer", field);
    json_int_t i = json_integer_value(v);
    if (i < lo || i > hi)
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be between %lld and %lld", field,
                             (long long)lo, (long long)hi);
    *out = i;
    return 0;
}

static int get_bool(json_t *obj, const char *key, const char *field, bool *out, dms_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be true or false", field);
    *out = json_is_true(v);
    return 0;
}

static int get_strv(json_t *obj, const char *key, const char *field, char *const **out, dms_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_array(v))
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be an array of strings", field);
    if (json_array_size(v) > ARGV_MAX_ITEMS)
        return dms_error_set(err, DMS_E_INVALID, field, "%s has too many items", field);
    char **a = calloc(json_array_size(v) + 1, sizeof(char *));
    if (!a)
        return dms_error_set(err, DMS_E_NOMEM, field, "out of memory");
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item) || strlen(json_string_value(item)) != json_string_length(item)) {
            dms_strv_free(a);
            return dms_error_set(err, DMS_E_INVALID, field, "%s[%zu] must be a string without NUL bytes",
                                 field, i);
        }
        if (!(a[i] = strdup(json_string_value(item)))) {
            dms_strv_free(a);
            return dms_error_set(err, DMS_E_NOMEM, field, "out of memory");
        }
    }
    *out = a;
    return 0;
}

/* {"K": "V"} or ["K=V"] into "K=V" items (labels and env accept both). */
static int get_kv(json_t *obj, const char *key, const char *field, char *const **out, dms_error *err)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    if (json_is_array(v))
        return get_strv(obj, key, field, out, err);
    if (!json_is_object(v))
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be an object of strings or an array of K=V",
                             field);
    char **a = calloc(json_object_size(v) + 1, sizeof(char *));
    if (!a)
        return dms_error_set(err, DMS_E_NOMEM, field, "out of memory");
    size_t n = 0;
    const char *k;
    json_t *val;
    json_object_foreach(v, k, val)
    {
        if (!json_is_string(val) || strlen(json_string_value(val)) != json_string_length(val)) {
            dms_strv_free(a);
            return dms_error_set(err, DMS_E_INVALID, field, "%s.%s must be a string", field, k);
        }
        if (strchr(k, '=')) {
            dms_strv_free(a);
            return dms_error_set(err, DMS_E_INVALID, field, "%s: key \"%s\" must not contain '='", field, k);
        }
        if (!(a[n++] = dms_strdup_printf("%s=%s", k, json_string_value(val)))) {
            dms_strv_free(a);
            return dms_error_set(err, DMS_E_NOMEM, field, "out of memory");
        }
    }
    *out = a;
    return 0;
}

static int parse_engine(json_t *e, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {"image", "entrypoint", "cmd", "env", "working_dir", "user", NULL};
    int r;
    if (!json_is_object(e))
        return dms_error_set(err, DMS_E_INVALID, "engine", "engine must be an object");
    if ((r = check_keys(e, "engine.", keys, err)) < 0 ||
        (r = get_string(e, "image", "engine.image", &req->engine.image, err)) < 0 ||
        (r = get_strv(e, "entrypoint", "engine.entrypoint", &req->engine.entrypoint, err)) < 0 ||
        (r = get_strv(e, "cmd", "engine.cmd", &req->engine.cmd, err)) < 0 ||
        (r = get_kv(e, "env", "engine.env", &req->engine.env, err)) < 0 ||
        (r = get_string(e, "working_dir", "engine.working_dir", &req->engine.working_dir, err)) < 0 ||
        (r = get_string(e, "user", "engine.user", &req->engine.user, err)) < 0)
        return r;
    return 0;
}

static int parse_resources(json_t *o, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {"cpu_millis", "memory_bytes", "disk_bytes",
                                       "pids_limit", "gpus",         NULL};
    int r;
    int64_t gpus = 0;
    if (!json_is_object(o))
        return dms_error_set(err, DMS_E_INVALID, "resources", "resources must be an object");
    if ((r = check_keys(o, "resources.", keys, err)) < 0 ||
        (r = get_int(o, "cpu_millis", "resources.cpu_millis", 0, CPU_MILLIS_MAX, &req->resources.cpu_millis,
                     err)) < 0 ||
        (r = get_int(o, "memory_bytes", "resources.memory_bytes", 0, INT64_MAX, &req->resources.memory_bytes,
                     err)) < 0 ||
        (r = get_int(o, "disk_bytes", "resources.disk_bytes", 0, INT64_MAX, &req->resources.disk_bytes,
                     err)) < 0 ||
        (r = get_int(o, "pids_limit", "resources.pids_limit", 0, INT64_MAX, &req->resources.pids_limit,
                     err)) < 0 ||
        (r = get_int(o, "gpus", "resources.gpus", -1, 1024, &gpus, err)) < 0)
        return r;
    req->resources.gpus = (int32_t)gpus;
    return 0;
}

static int parse_mounts(json_t *a, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {"type", "source", "target", "read_only", "size_bytes", NULL};
    char field[DMS_ERROR_FIELD_MAX], prefix[DMS_ERROR_FIELD_MAX];
    int r;
    if (!json_is_array(a))
        return dms_error_set(err, DMS_E_INVALID, "mounts", "mounts must be an array");
    if (json_array_size(a) > MOUNTS_MAX)
        return dms_error_set(err, DMS_E_INVALID, "mounts", "at most %d mounts", MOUNTS_MAX);
    if (json_array_size(a) == 0)
        return 0;
    dms_mount *m = calloc(json_array_size(a), sizeof(*m));
    if (!m)
        return dms_error_set(err, DMS_E_NOMEM, "mounts", "out of memory");
    req->mounts = m;
    size_t i;
    json_t *item;
    json_array_foreach(a, i, item)
    {
        req->n_mounts = i + 1;
        snprintf(prefix, sizeof(prefix), "mounts[%zu].", i);
        if (!json_is_object(item))
            return dms_error_set(err, DMS_E_INVALID, prefix, "mounts[%zu] must be an object", i);
        if ((r = check_keys(item, prefix, keys, err)) < 0)
            return r;
        const char *type = NULL;
        snprintf(field, sizeof(field), "mounts[%zu].type", i);
        if ((r = get_string(item, "type", field, &type, err)) < 0)
            return r;
        if (type && strcmp(type, "bind") == 0)
            m[i].type = DMS_MOUNT_BIND;
        else if (type && strcmp(type, "volume") == 0)
            m[i].type = DMS_MOUNT_VOLUME;
        else if (type && strcmp(type, "tmpfs") == 0)
            m[i].type = DMS_MOUNT_TMPFS;
        free((char *)type);
        if (!m[i].type)
            return dms_error_set(err, DMS_E_INVALID, field, "%s must be bind, volume or tmpfs", field);
        snprintf(field, sizeof(field), "mounts[%zu].source", i);
        if ((r = get_string(item, "source", field, &m[i].source, err)) < 0)
            return r;
        snprintf(field, sizeof(field), "mounts[%zu].target", i);
        if ((r = get_string(item, "target", field, &m[i].target, err)) < 0)
            return r;
        snprintf(field, sizeof(field), "mounts[%zu].read_only", i);
        if ((r = get_bool(item, "read_only", field, &m[i].read_only, err)) < 0)
            return r;
        snprintf(field, sizeof(field), "mounts[%zu].size_bytes", i);
        if ((r = get_int(item, "size_bytes", field, 0, INT64_MAX, &m[i].size_bytes, err)) < 0)
            return r;
    }
    return 0;
}

static int parse_network(json_t *o, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {"mode", "name", "ports", NULL};
    static const char *const port_keys[] = {"container", "host", "protocol", "host_ip", NULL};
    char field[DMS_ERROR_FIELD_MAX], prefix[DMS_ERROR_FIELD_MAX];
    int r;
    if (!json_is_object(o))
        return dms_error_set(err, DMS_E_INVALID, "network", "network must be an object");
    if ((r = check_keys(o, "network.", keys, err)) < 0)
        return r;
    const char *mode = NULL;
    if ((r = get_string(o, "mode", "network.mode", &mode, err)) < 0 ||
        (r = get_string(o, "name", "network.name", &req->network_name, err)) < 0)
        return r;
    if (!mode || strcmp(mode, "default") == 0 || strcmp(mode, "bridge") == 0)
        req->network_mode = req->network_name && !mode ? DMS_NET_NAMED : DMS_NET_DEFAULT;
    else if (strcmp(mode, "none") == 0)
        req->network_mode = DMS_NET_NONE;
    else if (strcmp(mode, "host") == 0)
        req->network_mode = DMS_NET_HOST;
    else if (strcmp(mode, "named") == 0)
        req->network_mode = DMS_NET_NAMED;
    else {
        free((char *)mode);
        return dms_error_set(err, DMS_E_INVALID, "network.mode",
                             "network.mode must be default, none, host or named");
    }
    free((char *)mode);
    json_t *ports = json_object_get(o, "ports");
    if (!ports || json_is_null(ports))
        return 0;
    if (!json_is_array(ports))
        return dms_error_set(err, DMS_E_INVALID, "network.ports", "network.ports must be an array");
    if (json_array_size(ports) > PORTS_MAX)
        return dms_error_set(err, DMS_E_INVALID, "network.ports", "at most %d ports", PORTS_MAX);
    if (json_array_size(ports) == 0)
        return 0;
    dms_port *p = calloc(json_array_size(ports), sizeof(*p));
    if (!p)
        return dms_error_set(err, DMS_E_NOMEM, "network.ports", "out of memory");
    req->ports = p;
    size_t i;
    json_t *item;
    json_array_foreach(ports, i, item)
    {
        req->n_ports = i + 1;
        snprintf(prefix, sizeof(prefix), "network.ports[%zu].", i);
        if (!json_is_object(item))
            return dms_error_set(err, DMS_E_INVALID, prefix, "network.ports[%zu] must be an object", i);
        if ((r = check_keys(item, prefix, port_keys, err)) < 0)
            return r;
        int64_t cp = 0, hp = 0;
        snprintf(field, sizeof(field), "network.ports[%zu].container", i);
        if ((r = get_int(item, "container", field, 1, 65535, &cp, err)) < 0)
            return r;
        if (cp == 0)
            return dms_error_set(err, DMS_E_INVALID, field, "%s is required (1-65535)", field);
        snprintf(field, sizeof(field), "network.ports[%zu].host", i);
        if ((r = get_int(item, "host", field, 0, 65535, &hp, err)) < 0)
            return r;
        p[i].container_port = (uint16_t)cp;
        p[i].host_port = (uint16_t)hp;
        snprintf(field, sizeof(field), "network.ports[%zu].protocol", i);
        if ((r = get_string(item, "protocol", field, &p[i].protocol, err)) < 0)
            return r;
        snprintf(field, sizeof(field), "network.ports[%zu].host_ip", i);
        if ((r = get_string(item, "host_ip", field, &p[i].host_ip, err)) < 0)
            return r;
    }
    return 0;
}

static int parse_limits(json_t *o, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {"result_output_bytes", "log_file_bytes", NULL};
    int r;
    if (!json_is_object(o))
        return dms_error_set(err, DMS_E_INVALID, "limits", "limits must be an object");
    if ((r = check_keys(o, "limits.", keys, err)) < 0 ||
        (r = get_int(o, "result_output_bytes", "limits.result_output_bytes", 0, RESULT_OUTPUT_MAX_BYTES,
                     &req->limits.result_output_bytes, err)) < 0 ||
        (r = get_int(o, "log_file_bytes", "limits.log_file_bytes", 0, INT64_MAX, &req->limits.log_file_bytes,
                     err)) < 0)
        return r;
    return 0;
}

static int parse_security(json_t *o, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {"no_new_privileges", "cap_drop", "cap_add", NULL};
    dms_security *s = &req->security;
    int r;
    if (!json_is_object(o))
        return dms_error_set(err, DMS_E_INVALID, "security", "security must be an object");
    if ((r = check_keys(o, "security.", keys, err)) < 0 ||
        (r = get_bool(o, "no_new_privileges", "security.no_new_privileges", &s->no_new_privileges, err)) <
            0 ||
        (r = get_strv(o, "cap_drop", "security.cap_drop", &s->cap_drop, err)) < 0 ||
        (r = get_strv(o, "cap_add", "security.cap_add", &s->cap_add, err)) < 0)
        return r;
    return 0;
}

static int parse_request(json_t *root, dms_exec_request *req, dms_error *err)
{
    static const char *const keys[] = {
        "job_id",         "execution_id", "engine", "resources",  "mounts",
        "network",        "labels",       "limits", "timeout_ms", "stop_grace_ms",
        "keep_container", "role",         "init",   "security",   NULL};
    int r;
    json_t *v;
    if (!json_is_object(root))
        return dms_error_set(err, DMS_E_INVALID, NULL, "a request must be a JSON object");
    if ((r = check_keys(root, "", keys, err)) < 0 ||
        (r = get_string(root, "job_id", "job_id", &req->job_id, err)) < 0 ||
        (r = get_string(root, "execution_id", "execution_id", &req->execution_id, err)) < 0)
        return r;
    if ((v = json_object_get(root, "engine")) && (r = parse_engine(v, req, err)) < 0)
        return r;
    if ((v = json_object_get(root, "resources")) && (r = parse_resources(v, req, err)) < 0)
        return r;
    if ((v = json_object_get(root, "mounts")) && (r = parse_mounts(v, req, err)) < 0)
        return r;
    if ((v = json_object_get(root, "network")) && (r = parse_network(v, req, err)) < 0)
        return r;
    if ((v = json_object_get(root, "limits")) && (r = parse_limits(v, req, err)) < 0)
        return r;
    if ((v = json_object_get(root, "security")) && (r = parse_security(v, req, err)) < 0)
        return r;
    if ((r = get_kv(root, "labels", "labels", &req->labels, err)) < 0 ||
        (r = get_int(root, "timeout_ms", "timeout_ms", 0, INT64_MAX, &req->timeout_ms, err)) < 0 ||
        (r = get_int(root, "stop_grace_ms", "stop_grace_ms", 0, STOP_GRACE_MAX_MS, &req->stop_grace_ms,
                     err)) < 0 ||
        (r = get_bool(root, "keep_container", "keep_container", &req->keep_container, err)) < 0 ||
        (r = get_bool(root, "init", "init", &req->init, err)) < 0 ||
        (r = get_string(root, "role", "role", &req->role, err)) < 0)
        return r;
    return 0;
}

int dms_exec_request_from_json(const char *json, size_t len, dms_exec_request **out, dms_error *err)
{
    json_error_t jerr;
    _cleanup_json_ json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return dms_error_set(err, DMS_E_INVALID, NULL, "request is not valid JSON: %s (line %d, column %d)",
                             jerr.text, jerr.line, jerr.column);
    dms_exec_request *req = calloc(1, sizeof(*req));
    if (!req)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    int r = parse_request(root, req, err);
    if (r == 0)
        r = dms_exec_request_validate(req, err);
    if (r < 0) {
        dms_exec_request_free(req);
        return r;
    }
    *out = req;
    return 0;
}

static json_t *strv_json(char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; a && v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

char *dms_exec_request_to_json(const dms_exec_request *req)
{
    static const char *const mount_types[] = {"", "bind", "volume", "tmpfs"};
    static const char *const net_modes[] = {"default", "none", "host", "named"};
    _cleanup_json_ json_t *root = json_object();
    if (!root)
        return NULL;
    if (req->job_id)
        json_object_set_new(root, "job_id", json_string(req->job_id));
    if (req->execution_id)
        json_object_set_new(root, "execution_id", json_string(req->execution_id));
    json_t *e = json_object();
    json_object_set_new(root, "engine", e);
    if (req->engine.image)
        json_object_set_new(e, "image", json_string(req->engine.image));
    if (req->engine.entrypoint)
        json_object_set_new(e, "entrypoint", strv_json(req->engine.entrypoint));
    if (req->engine.cmd)
        json_object_set_new(e, "cmd", strv_json(req->engine.cmd));
    if (req->engine.env)
        json_object_set_new(e, "env", strv_json(req->engine.env));
    if (req->engine.working_dir)
        json_object_set_new(e, "working_dir", json_string(req->engine.working_dir));
    if (req->engine.user)
        json_object_set_new(e, "user", json_string(req->engine.user));
    json_object_set_new(root, "resources",
                        json_pack("{s:I,s:I,s:I,s:I,s:i}", "cpu_millis",
                                  (json_int_t)req->resources.cpu_millis, "memory_bytes",
                                  (json_int_t)req->resources.memory_bytes, "disk_bytes",
                                  (json_int_t)req->resources.disk_bytes, "pids_limit",
                                  (json_int_t)req->resources.pids_limit, "gpus", (int)req->resources.gpus));
    json_t *mounts = json_array();
    for (size_t i = 0; i < req->n_mounts; i++) {
        const dms_mount *m = &req->mounts[i];
        json_t *mo = json_pack("{s:s,s:s?,s:s?,s:b,s:I}", "type",
                               (m->type >= 1 && m->type <= 3) ? mount_types[m->type] : "", "source",
                               m->source, "target", m->target, "read_only", m->read_only, "size_bytes",
                               (json_int_t)m->size_bytes);
        json_array_append_new(mounts, mo);
    }
    json_object_set_new(root, "mounts", mounts);
    json_t *net = json_object();
    json_object_set_new(
        net, "mode",
        json_string(req->network_mode <= DMS_NET_NAMED ? net_modes[req->network_mode] : "default"));
    if (req->network_name)
        json_object_set_new(net, "name", json_string(req->network_name));
    json_t *ports = json_array();
    for (size_t i = 0; i < req->n_ports; i++) {
        const dms_port *p = &req->ports[i];
        json_array_append_new(ports, json_pack("{s:i,s:i,s:s?,s:s?}", "container", p->container_port, "host",
                                               p->host_port, "protocol", p->protocol, "host_ip", p->host_ip));
    }
    json_object_set_new(net, "ports", ports);
    json_object_set_new(root, "network", net);
    if (req->labels)
        json_object_set_new(root, "labels", strv_json(req->labels));
    json_object_set_new(root, "limits",
                        json_pack("{s:I,s:I}", "result_output_bytes",
                                  (json_int_t)req->limits.result_output_bytes, "log_file_bytes",
                                  (json_int_t)req->limits.log_file_bytes));
    json_object_set_new(root, "timeout_ms", json_integer(req->timeout_ms));
    json_object_set_new(root, "stop_grace_ms", json_integer(req->stop_grace_ms));
    json_object_set_new(root, "keep_container", json_boolean(req->keep_container));
    json_object_set_new(root, "init", json_boolean(req->init));
    if (req->role)
        json_object_set_new(root, "role", json_string(req->role));
    json_t *sec = json_pack("{s:b}", "no_new_privileges", req->security.no_new_privileges);
    if (sec && req->security.cap_drop)
        json_object_set_new(sec, "cap_drop", strv_json(req->security.cap_drop));
    if (sec && req->security.cap_add)
        json_object_set_new(sec, "cap_add", strv_json(req->security.cap_add));
    json_object_set_new(root, "security", sec);
    return json_dumps(root, JSON_COMPACT);
}
