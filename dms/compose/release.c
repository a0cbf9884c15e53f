/* release.c - the compose member of a release (see release.h). */
#include "release.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

static json_t *service_entry(const compose_release *r, const char *name)
{
    return json_object_get(json_object_get(r->doc, "services"), name);
}

int compose_release_load(const char *json, char *const *env, compose_release *out, dms_error *err)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    out->doc = json ? json_loads(json, 0, &je) : NULL;
    json_t *text = json_object_get(out->doc, "text");
    if (!json_is_string(text))
        return dms_error_set(err, DMS_E_INTERNAL, "release", "the release's compose member is not readable");
    int r = compose_parse(json_string_value(text), json_string_length(text), env, &out->f, err);
    if (r < 0)
        return r;
    for (size_t i = 0; i < out->f->n_services; i++)
        if (!compose_release_image(out, out->f->services[i].name))
            return dms_error_set(err, DMS_E_INVALID, "services",
                                 "service %s is not in the release (the file changed meaning with the env)",
                                 out->f->services[i].name);
    return 0;
}

void compose_release_clear(compose_release *r)
{
    compose_file_free(r->f);
    json_decref(r->doc);
    memset(r, 0, sizeof(*r));
}

int compose_release_primary(const compose_release *r)
{
    return r->f->route_service >= 0 ? r->f->route_service : (int)r->f->n_services - 1;
}

int compose_release_port(const compose_release *r)
{
    return r->f->route_service >= 0 ? r->f->route_port : 0;
}

const char *compose_release_image(const compose_release *r, const char *name)
{
    return json_string_value(json_object_get(service_entry(r, name), "image"));
}

json_t *compose_release_env_file(const compose_release *r, const char *name)
{
    json_t *a = json_object_get(service_entry(r, name), "env_file");
    return json_is_array(a) ? a : NULL;
}

json_t *compose_release_binds(const compose_release *r, const char *name)
{
    json_t *a = json_object_get(service_entry(r, name), "binds");
    return json_is_array(a) ? a : NULL;
}

char **compose_release_built(const char *json)
{
    json_t *doc = json ? json_loads(json, 0, NULL) : NULL;
    char **v = doc ? calloc(1, sizeof(*v)) : NULL;
    const char *name;
    json_t *e;
    json_object_foreach(json_object_get(doc, "services"), name, e)
    {
        const char *img = json_string_value(json_object_get(e, "image"));
        if (v && img && json_is_true(json_object_get(e, "built")) && dmsu_strv_push(&v, img) < 0) {
            dmsu_strv_free(v);
            v = NULL;
        }
    }
    json_decref(doc);
    return v;
}
