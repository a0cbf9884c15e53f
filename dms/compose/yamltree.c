/* yamltree.c - YAML text to a jansson tree with libfyaml, for hostile input: a size limit checked first, a
 * budget of nodes visited (each copy an alias expands to counted, so "billion laughs" stops after
 * COMPOSE_NODE_BUDGET nodes), a depth limit, duplicate keys refused (libfyaml's default), non-scalar keys
 * refused. The document is not resolved by libfyaml (FYPCF_RESOLVE_DOCUMENT would copy every alias first);
 * aliases are followed here, into fy_node_resolve_alias's target. */
#include "compose_priv.h"

#include <libfyaml.h>
#include <string.h>

typedef struct ytree {
    size_t visited;
    char path[COMPOSE_PATH_MAX];
} ytree;

static int node_to_json(ytree *t, struct fy_node *n, int depth, json_t **out, dms_error *err);

void compose_path(char *buf, size_t size, const char *base, const char *key)
{
    if (!base || !*base)
        snprintf(buf, size, "%s", key);
    else
        snprintf(buf, size, "%s.%s", base, key);
}

const char *compose_str(json_t *json)
{
    return json_is_string(json) ? json_string_value(json) : NULL;
}

static const char *field(const ytree *t)
{
    return t->path[0] ? t->path : NULL;
}

/* Where, for a message: the key path, or the whole file at the top. */
static const char *where(const ytree *t)
{
    return t->path[0] ? t->path : "the file";
}

/* Appends ".key" (or "[i]" when key is NULL) to t->path; returns the old length for path_pop. */
static size_t path_push(ytree *t, const char *key, size_t klen, size_t index)
{
    size_t old = strlen(t->path);
    char *end = t->path + old;
    size_t room = sizeof(t->path) - old;
    if (key)
        snprintf(end, room, "%s%.*s", old ? "." : "", (int)klen, key);
    else
        snprintf(end, room, "[%zu]", index);
    return old;
}

static void path_pop(ytree *t, size_t old)
{
    t->path[old] = '\0';
}

static bool plain_null(const char *s, size_t len)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++)
        if (len == strlen(nulls[i]) && memcmp(s, nulls[i], len) == 0)
            return true;
    return false;
}

/* YAML's core tags are fine (!!str makes a plain `null` a string); anything else (compose's !reset and
 * !override, or an application's tag) has a meaning dms does not implement. */
static int check_tag(ytree *t, struct fy_node *n, bool *force_string, dms_error *err)
{
    size_t tlen = 0;
    const char *tag = fy_node_get_tag(n, &tlen);
    static const char core[] = "tag:yaml.org,2002:";
    *force_string = false;
    if (!tag || tlen == 0 || (tlen == 1 && tag[0] == '!'))
        return 0;
    if (tlen < sizeof(core) - 1 || memcmp(tag, core, sizeof(core) - 1) != 0)
        return dms_error_set(err, DMS_E_INVALID, field(t), "%s: YAML tags such as %.*s are not supported",
                             where(t), (int)(tlen > 40 ? 40 : tlen), tag);
    *force_string = tlen == sizeof(core) - 1 + 3 && memcmp(tag + sizeof(core) - 1, "str", 3) == 0;
    return 0;
}

static int scalar_to_json(ytree *t, struct fy_node *n, json_t **out, dms_error *err)
{
    size_t len = 0;
    const char *s = fy_node_get_scalar(n, &len);
    bool force_string;
    int r = check_tag(t, n, &force_string, err);
    if (r < 0)
        return r;
    if (!s)
        s = "";
    if (len > COMPOSE_STRING_MAX)
        return dms_error_set(err, DMS_E_INVALID, field(t), "%s is longer than %d bytes", t->path,
                             COMPOSE_STRING_MAX);
    if (memchr(s, '\0', len))
        return dms_error_set(err, DMS_E_INVALID, field(t), "%s holds a NUL byte", t->path);
    if (fy_node_get_style(n) == FYNS_PLAIN && !force_string && plain_null(s, len)) {
        *out = json_null();
        return 0;
    }
    *out = json_stringn(s, len);
    if (!*out) /* jansson refuses invalid UTF-8; libfyaml reads UTF-8 input, so this is rare */
        return dms_error_set(err, DMS_E_INVALID, field(t), "%s is not valid UTF-8", t->path);
    return 0;
}

static int seq_to_json(ytree *t, struct fy_node *n, int depth, json_t **out, dms_error *err)
{
    json_t *arr = json_array();
    if (!arr)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    void *it = NULL;
    struct fy_node *item;
    for (size_t i = 0; (item = fy_node_sequence_iterate(n, &it)); i++) {
        size_t old = path_push(t, NULL, 0, i);
        json_t *v = NULL;
        int r = node_to_json(t, item, depth + 1, &v, err);
        path_pop(t, old);
        if (r < 0 || json_array_append_new(arr, v) < 0) {
            json_decref(arr);
            return r < 0 ? r : dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        }
    }
    *out = arr;
    return 0;
}

/* One source of a merge key: a mapping (usually an alias to one); its keys join obj where obj has none. */
static int merge_one(ytree *t, json_t *obj, struct fy_node *src, int depth, dms_error *err)
{
    struct fy_node *target = fy_node_is_alias(src) ? fy_node_resolve_alias(src) : src;
    if (!target || !fy_node_is_mapping(target))
        return dms_error_set(err, DMS_E_INVALID, field(t), "%s: << must name a mapping or a list of mappings",
                             where(t));
    json_t *m = NULL;
    int r = node_to_json(t, target, depth + 1, &m, err);
    if (r < 0)
        return r;
    r = json_object_update_missing(obj, m);
    json_decref(m);
    return r < 0 ? dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory") : 0;
}

/* YAML merge keys: explicit keys win (they are set first), then each source in order, earlier first. */
static int apply_merge(ytree *t, json_t *obj, struct fy_node *v, int depth, dms_error *err)
{
    size_t old = path_push(t, "<<", 2, 0);
    int r = 0;
    struct fy_node *target = fy_node_is_alias(v) ? fy_node_resolve_alias(v) : v;
    if (target && fy_node_is_sequence(target)) {
        void *it = NULL;
        struct fy_node *item;
        while (r == 0 && (item = fy_node_sequence_iterate(target, &it))) {
            if (++t->visited > COMPOSE_NODE_BUDGET)
                r = dms_error_set(err, DMS_E_INVALID, NULL, "the file expands to more than %d YAML nodes",
                                  COMPOSE_NODE_BUDGET);
            else
                r = merge_one(t, obj, item, depth, err);
        }
    } else {
        r = merge_one(t, obj, v, depth, err);
    }
    path_pop(t, old);
    return r;
}

static int pair_to_json(ytree *t, json_t *obj, struct fy_node_pair *p, int depth, struct fy_node **merge,
                        dms_error *err)
{
    struct fy_node *k = fy_node_pair_key(p), *v = fy_node_pair_value(p);
    size_t klen = 0;
    const char *ks = k && fy_node_is_scalar(k) && !fy_node_is_alias(k) ? fy_node_get_scalar(k, &klen) : NULL;
    if (!ks)
        return dms_error_set(err, DMS_E_INVALID, field(t), "%s: keys must be plain strings", where(t));
    if (klen > COMPOSE_KEY_MAX || memchr(ks, '\0', klen))
        return dms_error_set(err, DMS_E_INVALID, field(t), "%s: a key is longer than %d bytes or holds a NUL",
                             where(t), COMPOSE_KEY_MAX);
    if (fy_node_get_style(k) == FYNS_PLAIN && klen == 2 && memcmp(ks, "<<", 2) == 0) {
        *merge = v;
        return 0;
    }
    size_t old = path_push(t, ks, klen, 0);
    json_t *jv = NULL;
    int r = v ? node_to_json(t, v, depth + 1, &jv, err) : 0;
    if (r == 0 && !jv)
        jv = json_null();
    path_pop(t, old);
    if (r < 0)
        return r;
    if (json_object_setn_new(obj, ks, klen, jv) < 0)
        return dms_error_set(err, DMS_E_INVALID, field(t), "%s: a key is not valid UTF-8", where(t));
    return 0;
}

static int map_to_json(ytree *t, struct fy_node *n, int depth, json_t **out, dms_error *err)
{
    json_t *obj = json_object();
    if (!obj)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    void *it = NULL;
    struct fy_node_pair *p;
    struct fy_node *merge = NULL;
    int r = 0;
    while (r == 0 && (p = fy_node_mapping_iterate(n, &it)))
        r = pair_to_json(t, obj, p, depth, &merge, err);
    if (r == 0 && merge)
        r = apply_merge(t, obj, merge, depth, err);
    if (r < 0) {
        json_decref(obj);
        return r;
    }
    *out = obj;
    return 0;
}

static int node_to_json(ytree *t, struct fy_node *n, int depth, json_t **out, dms_error *err)
{
    if (++t->visited > COMPOSE_NODE_BUDGET)
        return dms_error_set(err, DMS_E_INVALID, NULL,
                             "the file expands to more than %d YAML nodes (aliases count once per use)",
                             COMPOSE_NODE_BUDGET);
    if (depth > COMPOSE_DEPTH_MAX)
        return dms_error_set(err, DMS_E_INVALID, field(t), "%s nests deeper than %d levels", where(t),
                             COMPOSE_DEPTH_MAX);
    if (fy_node_is_alias(n)) {
        struct fy_node *target = fy_node_resolve_alias(n);
        if (!target)
            return dms_error_set(err, DMS_E_INVALID, field(t), "%s: an alias names no anchor", where(t));
        n = target;
    }
    switch (fy_node_get_type(n)) {
    case FYNT_SEQUENCE:
        return seq_to_json(t, n, depth, out, err);
    case FYNT_MAPPING:
        return map_to_json(t, n, depth, out, err);
    default:
        return scalar_to_json(t, n, out, err);
    }
}

static void diag_discard(struct fy_diag *diag, void *user, const char *buf, size_t len)
{
    (void)diag, (void)user, (void)buf, (void)len;
}

/* The first error libfyaml collected, with its line and column (both from 1). */
static int syntax_error(struct fy_diag *diag, dms_error *err)
{
    void *it = NULL;
    struct fy_diag_error *e;
    while ((e = fy_diag_errors_iterate(diag, &it)))
        if (e->type >= FYET_ERROR)
            return dms_error_set(err, DMS_E_INVALID, NULL, "YAML syntax error at line %d, column %d: %s",
                                 e->line, e->column, e->msg ? e->msg : "invalid YAML");
    return dms_error_set(err, DMS_E_INVALID, "services", "the file is empty: services is required");
}

int compose_yaml_to_json(const char *text, size_t len, json_t **out, dms_error *err)
{
    *out = NULL;
    if (len > COMPOSE_FILE_MAX_BYTES)
        return dms_error_set(err, DMS_E_INVALID, NULL, "the compose file is %zu bytes; at most %d", len,
                             COMPOSE_FILE_MAX_BYTES);
    struct fy_diag_cfg dcfg;
    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = diag_discard;
    struct fy_diag *diag = fy_diag_create(&dcfg);
    if (!diag)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    fy_diag_set_collect_errors(diag, true);
    struct fy_parse_cfg pcfg = {.flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG, .diag = diag};
    struct fy_document *doc = fy_document_build_from_string(&pcfg, text, len);
    int r;
    if (!doc) {
        r = syntax_error(diag, err);
    } else if (!fy_document_root(doc)) {
        r = dms_error_set(err, DMS_E_INVALID, "services", "the file is empty: services is required");
    } else {
        ytree t = {0};
        r = node_to_json(&t, fy_document_root(doc), 0, out, err);
    }
    if (doc)
        fy_document_destroy(doc);
    fy_diag_destroy(diag);
    return r;
}
