/* owner.c - who owns a route's :id (the api_id_check of dmsd's route table, see http.h). The dispatcher calls
 * it before any handler, so no handler runs with another user's id, whatever it does first: another user's
 * droid or job is NOT_FOUND exactly like a missing one (existence is not revealed).
 *
 *   droid    the droid exists, is not being deleted, and is the caller's (core_check_owner)
 *   job      the caller has a job of that id, or of that deployment id (jobstore_find, scoped to the caller)
 *   project  a project is a name in the caller's own namespace: its cache volume's name is derived from the
 *            caller and the project id, so no project id can reach another user's; only its form is checked
 */
#include "../app.h"
#include "../jobs/job.h"
#include "../jobs/jobstore.h"
#include "handlers.h"

int route_check_owner(void *ap, api_id_kind kind, const char *user, const char *id, dms_error *err)
{
    app *a = ap;
    if (!id || !user || !*user)
        return dms_error_set(err, DMS_E_NOT_FOUND, "id", "not found");
    switch (kind) {
    case API_ID_DROID:
        return core_check_owner(a->core, user, id, err);
    case API_ID_JOB: {
        job j;
        job_init(&j);
        int r = jobstore_find(a->st, user, id, &j, err);
        job_clear(&j);
        return r;
    }
    case API_ID_PROJECT:
        return job_validate_ref_id(id, "project_id", err);
    case API_ID_NONE:
    case API_ID_HOOK:
        break;
    }
    return dms_error_set(err, DMS_E_NOT_FOUND, "id", "%.64s not found", id);
}
