/* swap.c - moving requests off a run: draining what is in flight to it after the route moved, and putting a
 * droid to sleep (route to the wake handler, drain, stop). See run_priv.h. */
#include <stdio.h>
#include <unistd.h>

#include "../router/router.h"
#include "run_priv.h"

int64_t run_drain(runner *r, const char *droid_id, const char *addr)
{
    int64_t t0 = dms_mono_ms();
    usleep(RUN_SWAP_SETTLE_MS * 1000);
    for (;;) {
        int64_t left = RUN_DRAIN_MAX_MS - (dms_mono_ms() - t0);
        if (router_drain(r->dep.router, addr, left < RUN_DRAIN_SLICE_MS ? left : RUN_DRAIN_SLICE_MS) >= 0)
            return dms_mono_ms() - t0;
        if (run_stopping(r) || dms_mono_ms() - t0 >= RUN_DRAIN_MAX_MS) {
            log_warn("droid=%s op=drain addr=%s note=\"requests still in flight after %lld ms; stopping it "
                     "anyway\"",
                     droid_id, addr, (long long)(dms_mono_ms() - t0));
            return -1;
        }
    }
}

void run_dial_addr(const droid *d, char *buf, size_t size)
{
    buf[0] = '\0';
    if (d->run_id && d->run_addr)
        snprintf(buf, size, "%s", d->run_addr);
    else if (d->run_id && d->host_port)
        snprintf(buf, size, "127.0.0.1:%d", d->host_port);
}

/* Its container was stopped to let it sleep (or it had none). */
static int mut_asleep(core_tx *tx, droid *d, void *ud, dms_error *err)
{
    run_forget_current(d, ud);
    /* No kick: a wake that came meanwhile has kicked already (and marked this droid dirty). */
    if (d->deleting || !d->want_running || !d->asleep || d->state == DROID_SNOOZED ||
        !droid_state_is_active(d->state))
        return 0;
    return core_tx_set_state(tx, d, DROID_SNOOZED, "asleep: its container is stopped", err);
}

/* Route to the wake handler first, let requests in flight finish, then stop the container through the
 * executor. */
void run_put_to_sleep(runner *r, const droid *d)
{
    const runner_deps *dep = &r->dep;
    if (!d->run_id) {
        core_mutate(dep->core, NULL, d->id, mut_asleep, NULL, NULL, NULL);
        return;
    }
    char old_addr[ROUTE_DIAL_MAX];
    run_dial_addr(d, old_addr, sizeof(old_addr));
    if (dep->router) {
        dms_error err = {0};
        if (router_sleep(dep->router, d->id, old_addr[0] ? old_addr : NULL, &err) < 0)
            log_warn("droid=%s op=route error=\"%s\"", d->id, err.message);
        if (old_addr[0])
            run_drain(r, d->id, old_addr);
    }
    run_stop(r, d->id, d->run_id);
    run_services_stop(r, d, "asleep");
    core_mutate(dep->core, NULL, d->id, mut_asleep, d->run_id, NULL, NULL);
    if (dep->router)
        router_release(dep->router, d->id, NULL);
    log_info("droid=%s exec=%s op=sleep", d->id, d->run_id);
}
