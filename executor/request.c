/* request.c - the execution request: the validation every backend shares (identifiers, image references and
 * the request as a whole). Its deep copy is in request_copy.c, its JSON form in request_json.c. */
#include <dms/request.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "request_limits.h"
#include "security.h"
#include "util.h"

#define IMAGE_REF_MAX  255
#define DIGEST_HEX_MIN 32
#define SHA256_HEX_LEN 64

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
 * what it cannot encode: refusing a string that is not well-formed UTF-8 (dmsu_utf8_valid: no overlong forms,
 * surrogates or code points beyond U+10FFFF) here keeps a command from silently losing an argument later. */
static int check_utf8(const char *s, const char *field, dms_error *err)
{
    if (s && !dmsu_utf8_valid(s))
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
    size_t n = dmsu_strv_len(v);
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
    size_t n = dmsu_strv_len(env);
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

/* A DNS label as an alias must be one (RFC 1123, lower case: the engine's resolver matches names without
 * regard to case, so "Web" and "web" would be one name given twice). */
static bool alias_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > DMS_NETWORK_ALIAS_MAX || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (const char *p = s; *p; p++)
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '-')
            return false;
    return true;
}

static int validate_aliases(const dms_exec_request *req, dms_error *err)
{
    char field[DMS_ERROR_FIELD_MAX];
    char *const *v = req->network_aliases;
    if (!v)
        return 0;
    if (req->network_mode != DMS_NET_NAMED)
        return dms_error_set(err, DMS_E_INVALID, "network.aliases",
                             "network.aliases are only for mode \"named\": other workloads find the alias on "
                             "that network");
    size_t n = dmsu_strv_len(v);
    if (n > DMS_NETWORK_ALIASES_MAX)
        return dms_error_set(err, DMS_E_INVALID, "network.aliases",
                             "network.aliases has %zu items; at most %d", n, DMS_NETWORK_ALIASES_MAX);
    for (size_t i = 0; i < n; i++) {
        snprintf(field, sizeof(field), "network.aliases[%zu]", i);
        if (!alias_valid(v[i]))
            return dms_error_set(
                err, DMS_E_INVALID, field,
                "%s: \"%.64s\" is not a DNS label ([a-z0-9]([a-z0-9-]*[a-z0-9])?, at most %d "
                "characters)",
                field, v[i], DMS_NETWORK_ALIAS_MAX);
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[j], v[i]) == 0)
                return dms_error_set(err, DMS_E_INVALID, field, "%s: \"%s\" is given twice", field, v[i]);
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
    int r = validate_aliases(req, err);
    if (r < 0)
        return r;
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

/* A check's command: an argv whose program is named, or with shell exactly one non-empty command line. */
static int validate_health_test(const dms_healthcheck *h, dms_error *err)
{
    char field[DMS_ERROR_FIELD_MAX];
    size_t n = dmsu_strv_len(h->test);
    if (n == 0)
        return dms_error_set(err, DMS_E_INVALID, "healthcheck.test",
                             "healthcheck.test is required (a command, or disable to turn the check off)");
    if (n > HEALTH_TEST_ITEMS_MAX)
        return dms_error_set(err, DMS_E_INVALID, "healthcheck.test",
                             "healthcheck.test has %zu items; at most %d", n, HEALTH_TEST_ITEMS_MAX);
    if (h->shell && n != 1)
        return dms_error_set(err, DMS_E_INVALID, "healthcheck.test",
                             "healthcheck.test holds %zu items; the shell form is exactly one command line",
                             n);
    for (size_t i = 0; i < n; i++) {
        snprintf(field, sizeof(field), "healthcheck.test[%zu]", i);
        size_t len = strlen(h->test[i]);
        if (len > HEALTH_TEST_ITEM_MAX)
            return dms_error_set(err, DMS_E_INVALID, field, "%s is %zu bytes long; at most %d", field, len,
                                 HEALTH_TEST_ITEM_MAX);
        if (i == 0 && len == 0)
            return dms_error_set(err, DMS_E_INVALID, field, "%s must not be empty: it is the %s", field,
                                 h->shell ? "command line" : "program to run");
        int r = check_utf8(h->test[i], field, err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int validate_health_period(int64_t ms, const char *field, dms_error *err)
{
    if (ms < 0 || ms > HEALTH_DURATION_MAX_MS)
        return dms_error_set(err, DMS_E_INVALID, field, "%s must be 0 (the default) to %lld (24 h), not %lld",
                             field, (long long)HEALTH_DURATION_MAX_MS, (long long)ms);
    return 0;
}

/* The health check (ABI 7): a command, or disable with none; bounded periods and retries. */
static int validate_healthcheck(const dms_healthcheck *h, dms_error *err)
{
    int r;
    if (!h)
        return 0;
    if (h->disable && h->test)
        return dms_error_set(err, DMS_E_INVALID, "healthcheck.test",
                             "healthcheck.test must be left out when disable is set: a disabled check runs "
                             "nothing");
    if (h->disable && h->shell)
        return dms_error_set(err, DMS_E_INVALID, "healthcheck.shell",
                             "healthcheck.shell is for a command line; a disabled check has none");
    if (!h->disable && (r = validate_health_test(h, err)) < 0)
        return r;
    if ((r = validate_health_period(h->interval_ms, "healthcheck.interval_ms", err)) < 0 ||
        (r = validate_health_period(h->timeout_ms, "healthcheck.timeout_ms", err)) < 0 ||
        (r = validate_health_period(h->start_period_ms, "healthcheck.start_period_ms", err)) < 0)
        return r;
    if (h->retries < 0 || h->retries > HEALTH_RETRIES_MAX)
        return dms_error_set(err, DMS_E_INVALID, "healthcheck.retries",
                             "healthcheck.retries must be 0 (the default) to %d, not %d", HEALTH_RETRIES_MAX,
                             h->retries);
    return 0;
}

static int validate_labels(char *const *labels, dms_error *err)
{
    char field[DMS_ERROR_FIELD_MAX];
    size_t n = dmsu_strv_len(labels);
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
    if ((r = validate_healthcheck(req->healthcheck, err)) < 0)
        return r;
    return dms_security_validate(&req->security, err);
}
