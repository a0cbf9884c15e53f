/* view.c - the droid's URL and snooze state in the API's answers (see view.h). */
#include "view.h"

#include <stdio.h>

#include "router/router.h"
#include "snooze/snooze.h"

static void view_json(void *ud, const droid *d, json_t *obj)
{
    app *a = ud;
    if (a->router) {
        char url[ROUTE_HOST_MAX + 32];
        router_url(a->router, d->name, url, sizeof(url));
        json_object_set_new(obj, "route_url", json_string(url));
    } else {
        json_object_set_new(obj, "route_url", json_null());
    }
    if (a->snooze)
        snooze_describe(a->snooze, d, obj);
    /* What its container gets: its own limits, or the defaults, within today's ceilings. */
    json_t *res = confine_limits_json(confine_droid_limits(&a->cfg.confine, &d->resources));
    if (res)
        json_object_set_new(obj, "resources", res);
}

static void view_status(void *ud, const droid *d, dms_buf *b)
{
    app *a = ud;
    if (d->host_port > 0 && d->run_id)
        dms_buf_printf(b, ",\"url\":\"http://127.0.0.1:%d\"", d->host_port);
    else
        dms_buf_append(b, ",\"url\":null", 11);
    if (a->router) {
        char url[ROUTE_HOST_MAX + 32];
        router_url(a->router, d->name, url, sizeof(url)); /* names are [a-z0-9-]: nothing to escape */
        dms_buf_printf(b, ",\"route_url\":\"%s\"", url);
    } else {
        dms_buf_append(b, ",\"route_url\":null", 17);
    }
    if (a->snooze)
        snooze_status(a->snooze, d, b);
}

core_view dmsd_view(app *a)
{
    return (core_view){.droid_json = view_json, .status_body = view_status, .ud = a};
}
