/* compose/compose_priv.h - what the files of dms/compose/ share: the YAML-to-JSON step, interpolation, the
 * value parsers (durations, sizes, ports, shell words, paths) and the service reader. Not for use outside
 * dms/compose/ (and its unit suite). */
#ifndef DMSD_COMPOSE_PRIV_H
#define DMSD_COMPOSE_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <dms/error.h>

#include "compose.h"

#define COMPOSE_NODE_BUDGET  20000 /* YAML nodes visited, each copy an alias expands to counted */
#define COMPOSE_DEPTH_MAX    32    /* nesting of mappings and sequences (after alias expansion) */
#define COMPOSE_KEY_MAX      256   /* bytes of a mapping key */
#define COMPOSE_PATH_MAX     512   /* bytes of a key path built for an error's field */
#define COMPOSE_INTERP_DEPTH 8     /* ${A:-${B:-...}} nesting */

/* Text (len bytes, at most COMPOSE_FILE_MAX_BYTES) to a jansson tree: mappings are objects, sequences arrays,
 * every scalar a JSON string except a plain null (``, `~`, `null`, `Null`, `NULL`), which is JSON null; a
 * quoted scalar is always a string. Aliases are expanded (each copy counted against COMPOSE_NODE_BUDGET),
 * merge keys (`<<: *a`, `<<: [*a, *b]`) merged with explicit keys winning, then the earlier source. Refused
 * (INVALID): a syntax error ("line L, column C: ..."), a duplicate or non-scalar key, a tag other than YAML's
 * core ones, a scalar with a NUL byte or longer than COMPOSE_STRING_MAX, too many nodes or too deep. *out is
 * the caller's (json_decref). */
int compose_yaml_to_json(const char *text, size_t len, json_t **out, dms_error *err);

/* Replaces ${...} in every string value below root (not in keys; not in top-level `x-*` keys other than
 * `x-dms`, which dms ignores) from env ("K=V", may be NULL). Errors name the key path and variables, never a
 * value. */
int compose_interpolate(json_t *root, char *const *env, dms_error *err);

/* One string's interpolation: *out is malloc'd (caller frees). path names the value in errors. */
int compose_interp_string(const char *in, char *const *env, const char *path, char **out, dms_error *err);

/* Value parsers (values.c). Each refuses with INVALID naming field, and never quotes the value (it may hold
 * a secret after interpolation). */
int compose_parse_duration_ms(const char *s, const char *field, int64_t *out, dms_error *err);
int compose_parse_bytes(const char *s, const char *field, int64_t *out, dms_error *err);
int compose_parse_cpus_millis(const char *s, const char *field, int *out, dms_error *err);
int compose_parse_port(const char *s, const char *field, compose_port *out, dms_error *err);
int compose_parse_int(const char *s, const char *field, int64_t min, int64_t max, int64_t *out,
                      dms_error *err);
int compose_parse_bool(const char *s, const char *field, bool *out, dms_error *err);
/* Splits s into words as a POSIX shell would (blanks, '...', "...", backslashes), without expansion. *out is
 * a NULL-terminated vector (dmsu_strv_free). */
int compose_split_words(const char *s, const char *field, char ***out, dms_error *err);
/* A path relative to the repository's root: not absolute, no `..` component, not a URL; `./` and repeated
 * slashes dropped ("" becomes "."). *out is malloc'd. */
int compose_repo_path(const char *s, const char *field, char **out, dms_error *err);
/* True when s is a valid service name ([a-z0-9][a-z0-9_-]*, at most COMPOSE_NAME_MAX). */
bool compose_valid_service_name(const char *s);

/* What a service's key readers share (service.c, service_run.c). */
typedef struct compose_svc {
    compose_service *svc;
    char *const *env;
    char *const *vol_names;      /* the top level's volumes, NULL-terminated, may be NULL */
    char base[COMPOSE_PATH_MAX]; /* "services.<name>" */
    dms_error *err;
} compose_svc;

/* The readers of service_run.c: field is the key's path; each fills c->svc or fails naming a path. */
int compose_read_ports(compose_svc *c, json_t *v, const char *field);
int compose_read_expose(compose_svc *c, json_t *v, const char *field);
int compose_read_depends_on(compose_svc *c, json_t *v, const char *field);
int compose_read_healthcheck(compose_svc *c, json_t *v, const char *field);
int compose_read_restart(compose_svc *c, json_t *v, const char *field);
int compose_read_volumes(compose_svc *c, json_t *v, const char *field);
int compose_read_deploy(compose_svc *c, json_t *v, const char *field);

/* Helpers of service.c, each failing with INVALID naming field. */
int compose_nomem(dms_error *err);
int compose_not_supported(const char *field, dms_error *err);
int compose_need_str(json_t *v, const char *field, const char **out, dms_error *err); /* borrowed */
int compose_set_dup(char **dst, const char *s, dms_error *err);
int compose_check_list(json_t *v, const char *field, dms_error *err); /* an array of at most LIST_MAX */
/* obj must be a mapping whose keys are all in keys (NULL-terminated) or x- extensions. */
int compose_known_keys(json_t *obj, const char *base, const char *const *keys, dms_error *err);
int compose_str_list(json_t *v, const char *field, char ***out, dms_error *err);
/* labels as a mapping or a list of "K=V" into "K=V" strings; io.dms.* refused. */
int compose_labels(json_t *v, const char *field, char ***out, dms_error *err);
int compose_container_path(const char *s, const char *field, dms_error *err); /* absolute, no .. */

/* services.<name> into svc (service.c). vol_names: the top level's volumes (NULL-terminated, may be NULL). */
int compose_service_parse(const char *name, json_t *def, char *const *env, char *const *vol_names,
                          compose_service *svc, dms_error *err);
void compose_service_clear(compose_service *svc);

/* The key path "a.b" + "." + key into buf (truncated). */
void compose_path(char *buf, size_t size, const char *base, const char *key);

/* json as a string (a scalar of the tree); NULL if it is anything else. */
const char *compose_str(json_t *json);

#endif
