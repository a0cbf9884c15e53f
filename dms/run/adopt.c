/* adopt.c - startup: re-adopt what runs, cancel what nobody owns (see run_priv.h). Runs once, before the
 * workers start, on the thread that calls runner_start(). */
#include <string.h>

#include "../confine/network.h"
#include "../jobs/job.h"
#include "run_priv.h"

/* Watches the current run of every droid. */
static void watch_current_runs(runner *r, char **ids)
{
    const runner_deps *dep = &r->dep;
    dms_error err = {0};
    for (size_t i = 0; ids && ids[i]; i++) {
        droid *d = core_get_copy(dep->core, ids[i]);
        if (d && d->run_id) {
            dms_exec_status st;
            int64_t started = 0;
            if (dms_executor_status(dep->ex, d->run_id, &st, &err) == 0)
                started = st.started_at_ns;
            /* A run that ended while dmsd was down shows up at once as a result: handled like any exit. */
            run_watch_add(r, d->run_id, d->id, started);
        }
        if (d)
            run_services_watch(r, d);
        droid_free(d);
    }
}

/* Runs recorded but not current (a crash between start and record, or a replaced run still up): stop them. */
static void stop_orphans(runner *r)
{
    const runner_deps *dep = &r->dep;
    dms_error err = {0};
    store_run *runs = NULL;
    size_t n = 0;
    if (store_runs_all(dep->st, &runs, &n, NULL) < 0)
        return;
    for (size_t i = 0; i < n; i++) {
        droid *d = core_get_copy(dep->core, runs[i].droid_id);
        bool current = d && ((d->run_id && strcmp(d->run_id, runs[i].exec_id) == 0) ||
                             run_services_owns(d, runs[i].exec_id));
        dms_exec_status st;
        if (!current && dms_executor_status(dep->ex, runs[i].exec_id, &st, &err) == 0 &&
            st.state != DMS_STATE_FINISHED) {
            log_info("droid=%s exec=%s op=reconcile action=stop-orphan", runs[i].droid_id, runs[i].exec_id);
            run_stop(r, runs[i].droid_id, runs[i].exec_id);
        }
        droid_free(d);
    }
    free(runs);
}

/* Executions of this executor that the store does not know at all (never recorded): stop and forget. */
static void remove_unknown(runner *r)
{
    const runner_deps *dep = &r->dep;
    dms_error err = {0};
    store_run *runs = NULL;
    size_t n = 0;
    dms_exec_status *all = NULL;
    size_t na = 0;
    if (store_runs_all(dep->st, &runs, &n, NULL) == 0 && dms_executor_list(dep->ex, &all, &na, &err) == 0) {
        for (size_t i = 0; i < na; i++) {
            bool known = false;
            for (size_t j = 0; j < n && !known; j++)
                known = strcmp(runs[j].exec_id, all[i].execution_id) == 0;
            /* A build job's live steps are the jobs module's: it stops and re-runs them itself (jobs_start).
             */
            if (known || (JOB_ID_IS(all[i].job_id) && all[i].state != DMS_STATE_FINISHED))
                continue;
            log_info("exec=%s job=%s op=reconcile action=remove-unknown", all[i].execution_id, all[i].job_id);
            if (all[i].state != DMS_STATE_FINISHED)
                run_stop(r, all[i].job_id, all[i].execution_id);
            dms_executor_remove(dep->ex, all[i].execution_id, NULL);
        }
    }
    free(all);
    free(runs);
}

void run_adopt(runner *r)
{
    const runner_deps *dep = &r->dep;
    dms_error err = {0};
    size_t adopted = 0;
    if (dms_executor_recover(dep->ex, &adopted, &err) < 0)
        log_warn("component=runner op=recover error=\"%s\"", err.message);
    else
        log_info("component=runner op=recover adopted=%zu", adopted);
    char **ids = core_ids(dep->core);
    watch_current_runs(r, ids);
    stop_orphans(r);
    remove_unknown(r);
    confine_network_release_legacy(dep->ex);
    for (size_t i = 0; ids && ids[i]; i++)
        runner_kick(r, ids[i]);
    dmsu_strv_free(ids);
    runner_kick(r, GC_ID);
}
