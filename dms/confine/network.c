/* network.c - networks given back to the engine (see network.h). */
#include "network.h"

#include "../common.h"

static void remove_network(app *a, const char *name, const char *why)
{
    dms_error err = {0};
    int r = dms_executor_remove_network(a->ex, name, &err);
    if (r == 0)
        log_info("component=confine op=remove-network network=%s why=\"%s\"", name, why);
    else if (r != -DMS_E_NOT_FOUND)
        log_info("component=confine op=remove-network network=%s kept=\"%s\"", name, err.message);
}

void confine_network_release(app *a, const char *user_id)
{
    char net[CONFINE_NETWORK_MAX];
    if (!a->ex || core_count_user(a->core, user_id) > 0 ||
        confine_user_network(dms_executor_id(a->ex), user_id, net, sizeof(net), NULL) < 0)
        return;
    remove_network(a, net, "the user's last droid is gone");
}

void confine_network_release_legacy(app *a)
{
    char net[CONFINE_NETWORK_MAX + 16];
    if (!a->ex)
        return;
    confine_legacy_network(dms_executor_id(a->ex), net, sizeof(net));
    remove_network(a, net, "droids have a network per user now");
}
