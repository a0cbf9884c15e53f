/* network.c - networks given back to the engine (see network.h). */
#include "network.h"

#include "../common.h"
#include "confine.h"

static void remove_network(dms_executor *ex, const char *name, const char *why)
{
    dms_error err = {0};
    int r = dms_executor_remove_network(ex, name, &err);
    if (r == 0)
        log_info("component=confine op=remove-network network=%s why=\"%s\"", name, why);
    else if (r != -DMS_E_NOT_FOUND)
        log_info("component=confine op=remove-network network=%s kept=\"%s\"", name, err.message);
}

void confine_network_release(dms_executor *ex, core *c, const char *user_id)
{
    char net[CONFINE_NETWORK_MAX];
    if (!ex || core_count_user(c, user_id) > 0 ||
        confine_user_network(dms_executor_id(ex), user_id, net, sizeof(net), NULL) < 0)
        return;
    remove_network(ex, net, "the user's last droid is gone");
}

void confine_network_release_legacy(dms_executor *ex)
{
    char net[CONFINE_NETWORK_MAX + 16];
    if (!ex)
        return;
    confine_legacy_network(dms_executor_id(ex), net, sizeof(net));
    remove_network(ex, net, "droids have a network per user now");
}
