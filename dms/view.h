/* dms/view.h - how the API shows a droid beyond droid_to_json(): its URL through the router as "route_url"
 * (http://<name>.localhost:<proxy port>/; "url" stays the container's published 127.0.0.1 port, which clients
 * that cannot resolve *.localhost rely on), its snooze state and the limits its container gets ("resources").
 * Installed into core with core_set_view(); called under core's read lock. */
#ifndef DMSD_VIEW_H
#define DMSD_VIEW_H

#include "app.h"

/* A core_view whose ud is the app. */
core_view dmsd_view(app *a);

#endif
