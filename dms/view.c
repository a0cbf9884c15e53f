/* view.c - the droid's URL and snooze state in the API's answers (see view.h). */
#include "view.h"

#include <stdio.h>

#include "router/router.h"
#include "snooze/snooze.h"

/* http://<name>.localhost:<proxy port>/ through the router, or null without one. */
static json_t *route_url_json(app *a, const droid *d)
{
    if (!a->router)
        return json_null();
    char url[ROUTE_HOST_MAX + 32];
    router_url(a->router, d->name, url, sizeof(url));
    return json_string(url);
}

static void view_json(void *ud, const droid *d, json_t *obj)
{
    app *a = ud;
    json_object_set_new(obj, "route_url", route_url_json(a, d));
    if (a->snooze)
        snooze_describe(a->snooze, d, obj);
    /* What its container gets: its own limits, or the defaults, within today's ceilings. */
    json_t *res = confine_limits_json(confine_droid_limits(&a->cfg.confine, &d->resources));
    if (res)
        json_object_set_new(obj, "resources", res);
}

static void view_status(void *ud, const droid *d, json_t *obj)
{
    app *a = ud;
    json_object_set_new(obj, "url", core_url_json(d));
    json_object_set_new(obj, "route_url", route_url_json(a, d));
    if (a->snooze)
        snooze_status(a->snooze, d, obj);
}

core_view dmsd_view(app *a)
{
    return (core_view){.droid_json = view_json, .status_json = view_status, .ud = a};
}
