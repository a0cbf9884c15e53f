/* dms/view.h - how the API shows a droid beyond droid_to_json(): its URL through the router
 * (http://<name>.localhost:<proxy port>/, with the container's published port as "direct_url") and its snooze
 * state. Installed into core with core_set_view(); called under core's read lock. */
#ifndef DMSD_VIEW_H
#define DMSD_VIEW_H

#include "app.h"

/* A core_view whose ud is the app. */
core_view dmsd_view(app *a);

#endif
