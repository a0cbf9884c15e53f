/* routetable.c - the route table: path matching, what an :id names, and the check that refuses a table in
 * which a route with an :id does not say what it names (http.h: api_id_kind). */
#include <string.h>

#include "http_priv.h"

/* Splits "/a/b/c" into segments (pointers into buf). */
size_t http_split_path(char *buf, char **seg, size_t max)
{
    size_t n = 0;
    char *save = NULL;
    for (char *p = strtok_r(buf, "/", &save); p; p = strtok_r(NULL, "/", &save)) {
        if (n == max)
            return max + 1;
        seg[n++] = p;
    }
    return n;
}

/* Whether the pattern matches the path's segments; *id gets the :id segment (if any). */
bool http_match_pattern(const char *pattern, char **seg, size_t n, const char **id)
{
    char pat[HTTP_PATTERN_MAX];
    if (dmsu_snprintf_ok(pat, sizeof(pat), "%s", pattern) < 0)
        return false;
    char *pseg[HTTP_MAX_PATH_SEGMENTS + 1];
    if (http_split_path(pat, pseg, HTTP_MAX_PATH_SEGMENTS) != n)
        return false;
    *id = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(pseg[i], ":id") == 0)
            *id = seg[i];
        else if (strcmp(pseg[i], seg[i]) != 0)
            return false;
    }
    return true;
}

/* Whether method and url name a route served without a token (decided before the body is read, since an
 * unauthorized request's body is dropped). */
bool http_route_no_auth(http_server *s, const char *method, const char *url)
{
    char path[512];
    if (dmsu_snprintf_ok(path, sizeof(path), "%s", url) < 0)
        return false;
    char *seg[HTTP_MAX_PATH_SEGMENTS + 1];
    size_t n = http_split_path(path, seg, HTTP_MAX_PATH_SEGMENTS);
    const char *id;
    for (const api_route *rt = s->cfg.open_routes; rt && rt->method; rt++)
        if (strcmp(rt->method, method) == 0 && http_match_pattern(rt->pattern, seg, n, &id))
            return true;
    return false;
}

/* The k-th route: the open ones first, then the others; NULL past the end. */
const api_route *http_route_at(const http_server *s, size_t k)
{
    const api_route *open = s->cfg.open_routes;
    for (; open && open->method; open++, k--)
        if (k == 0)
            return open;
    return s->cfg.routes[k].method ? &s->cfg.routes[k] : NULL;
}

const char *api_id_kind_name(api_id_kind k)
{
    switch (k) {
    case API_ID_NONE:
        return "none";
    case API_ID_DROID:
        return "droid";
    case API_ID_JOB:
        return "job";
    case API_ID_PROJECT:
        return "project";
    case API_ID_HOOK:
        return "hook";
    }
    return "?";
}

/* A route table is refused unless every pattern with :id says what it names (and one without says nothing):
 * that is what makes the dispatcher's ownership check impossible to forget for a new route. */
static int validate_route(const http_config *cfg, const api_route *rt, bool open, dms_error *err)
{
    char pat[HTTP_PATTERN_MAX];
    char *pseg[HTTP_MAX_PATH_SEGMENTS + 1];
    if (dmsu_snprintf_ok(pat, sizeof(pat), "%s", rt->pattern) < 0 ||
        http_split_path(pat, pseg, HTTP_MAX_PATH_SEGMENTS) > HTTP_MAX_PATH_SEGMENTS)
        return dms_error_set(err, DMS_E_INVALID, "routes", "route %s %.64s: pattern too long", rt->method,
                             rt->pattern);
    bool has_id = strstr(rt->pattern, "/:id") != NULL;
    const char *why = NULL;
    if (!has_id && rt->id != API_ID_NONE)
        why = "has no :id but says what one names";
    else if (has_id && rt->id == API_ID_NONE)
        why =
            "has an :id but does not say what it names (droid, job, project), so its owner cannot be checked";
    else if (has_id && (rt->id == API_ID_HOOK) != open)
        why = open ? "is served without a token, so its :id can only be a hook's"
                   : "names a hook's :id but needs "
                     "a token";
    else if (has_id && !open && !cfg->check_id)
        why = "has an :id but the server has no ownership check";
    if (why)
        return dms_error_set(err, DMS_E_INVALID, "routes", "route %s %s %s", rt->method, rt->pattern, why);
    return 0;
}

int http_validate_routes(const http_config *cfg, dms_error *err)
{
    int r = 0;
    for (const api_route *rt = cfg->routes; r == 0 && rt && rt->method; rt++)
        r = validate_route(cfg, rt, false, err);
    for (const api_route *rt = cfg->open_routes; r == 0 && rt && rt->method; rt++)
        r = validate_route(cfg, rt, true, err);
    return r;
}
