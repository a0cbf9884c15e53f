/* request.c - what a handler reads from its request: the caller, the query, the headers and the body (see
 * http.h). */
#include <stdlib.h>
#include <string.h>

#include "http_priv.h"

const char *api_user(const api_req *r)
{
    return r->user;
}

typedef struct query_find {
    const char *key;
    const char *value;
    bool found;
} query_find;

static enum MHD_Result find_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    query_find *q = cls;
    (void)kind;
    if (strcmp(key, q->key) == 0) {
        q->found = true;
        q->value = value ? value : "";
        return MHD_NO;
    }
    return MHD_YES;
}

const char *api_query(api_req *r, const char *key)
{
    query_find q = {.key = key};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, find_arg, &q);
    return q.found ? q.value : NULL;
}

int api_query_i64(api_req *r, const char *key, long long max, long long *out, dms_error *err)
{
    const char *v = api_query(r, key);
    if (!v)
        return 1;
    int64_t n = dmsu_parse_i64(v);
    if (n < 0 || n > max)
        return dms_error_set(err, DMS_E_INVALID, key, "%s must be an integer from 0 to %lld", key, max);
    *out = n;
    return 0;
}

int api_query_bool(api_req *r, const char *key, bool *out, dms_error *err)
{
    const char *v = api_query(r, key);
    if (!v || strcmp(v, "0") == 0 || strcmp(v, "false") == 0) {
        *out = false;
        return 0;
    }
    if (!*v || strcmp(v, "1") == 0 || strcmp(v, "true") == 0) {
        *out = true;
        return 0;
    }
    return dms_error_set(err, DMS_E_INVALID, key, "%s must be 1, 0, true or false", key);
}

const char *api_header(api_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *api_body(api_req *r, size_t *len)
{
    *len = r->body.len;
    return r->body.data ? r->body.data : "";
}

json_t *api_body_json(api_req *r, dms_error *err)
{
    if (!r->body.len) {
        dms_error_set(err, DMS_E_INVALID, "body", "a JSON body is required");
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j)
        dms_error_set(err, DMS_E_INVALID, "body", "the body is not valid JSON: %s (line %d, column %d)",
                      jerr.text, jerr.line, jerr.column);
    return j;
}
