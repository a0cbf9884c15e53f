/* result.c - execution results: names, copies and the JSON form kept in each execution's result.json. */
#include <dms/result.h>

#include <stdio.h>
#include <string.h>

#include "util.h"

static const char *const outcome_names[] = {
    [DMS_OUTCOME_NONE] = "none",
    [DMS_OUTCOME_EXITED] = "exited",
    [DMS_OUTCOME_SIGNALED] = "signaled",
    [DMS_OUTCOME_OOM_KILLED] = "oom_killed",
    [DMS_OUTCOME_CANCELLED] = "cancelled",
    [DMS_OUTCOME_TIMED_OUT] = "timed_out",
    [DMS_OUTCOME_LOST] = "lost",
    [DMS_OUTCOME_FAILED] = "failed",
    [DMS_OUTCOME_ENGINE_ERROR] = "engine_error",
};

const char *dms_outcome_name(dms_exec_outcome o)
{
    if ((unsigned)o >= DMS_ARRAY_SIZE(outcome_names))
        return "unknown";
    return outcome_names[o];
}

static const char *const state_names[] = {
    [DMS_STATE_UNKNOWN] = "unknown",   [DMS_STATE_PREPARING] = "preparing", [DMS_STATE_RUNNING] = "running",
    [DMS_STATE_STOPPING] = "stopping", [DMS_STATE_FINISHED] = "finished",
};

const char *dms_state_name(dms_exec_state s)
{
    if ((unsigned)s >= DMS_ARRAY_SIZE(state_names))
        return "unknown";
    return state_names[s];
}

static const char *const health_names[] = {
    [DMS_HEALTH_NONE] = "none",
    [DMS_HEALTH_STARTING] = "starting",
    [DMS_HEALTH_HEALTHY] = "healthy",
    [DMS_HEALTH_UNHEALTHY] = "unhealthy",
};

const char *dms_health_name(dms_health h)
{
    if ((unsigned)h >= DMS_ARRAY_SIZE(health_names))
        return "unknown";
    return health_names[h];
}

void dms_exec_result_clear(dms_exec_result *r)
{
    if (!r)
        return;
    free(r->stdout_data);
    free(r->stderr_data);
    memset(r, 0, sizeof(*r));
}

int dms_exec_result_set_output(dms_exec_result *r, int stream, const char *data, size_t len, bool truncated)
{
    char *copy = malloc(len + 1);
    if (!copy)
        return -DMS_E_NOMEM;
    if (len)
        memcpy(copy, data, len);
    copy[len] = '\0';
    if (stream == DMS_STREAM_STDOUT) {
        free(r->stdout_data);
        r->stdout_data = copy;
        r->stdout_len = len;
        r->stdout_truncated = truncated;
    } else {
        free(r->stderr_data);
        r->stderr_data = copy;
        r->stderr_len = len;
        r->stderr_truncated = truncated;
    }
    return 0;
}

int dms_exec_result_copy(dms_exec_result *dst, const dms_exec_result *src, dms_error *err)
{
    *dst = *src;
    dst->stdout_data = dst->stderr_data = NULL;
    if ((src->stdout_data && dms_exec_result_set_output(dst, DMS_STREAM_STDOUT, src->stdout_data,
                                                        src->stdout_len, src->stdout_truncated) < 0) ||
        (src->stderr_data && dms_exec_result_set_output(dst, DMS_STREAM_STDERR, src->stderr_data,
                                                        src->stderr_len, src->stderr_truncated) < 0)) {
        dms_exec_result_clear(dst);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory copying a result");
    }
    return 0;
}

char *dms_exec_result_to_json(const dms_exec_result *r)
{
    size_t ol = 0, el = 0;
    _cleanup_free_ char *out = dmsu_utf8_sanitize(r->stdout_data ? r->stdout_data : "", r->stdout_len, &ol);
    _cleanup_free_ char *errs = dmsu_utf8_sanitize(r->stderr_data ? r->stderr_data : "", r->stderr_len, &el);
    _cleanup_free_ char *msg = dmsu_utf8_sanitize(r->error, strlen(r->error), NULL);
    if (!out || !errs || !msg)
        return NULL;
    _cleanup_json_ json_t *o =
        json_pack("{s:s,s:i,s:i,s:b,s:I,s:I,s:s%,s:b,s:s%,s:b,s:s}", "outcome", dms_outcome_name(r->outcome),
                  "exit_code", r->exit_code, "signal", r->signal, "oom_killed", r->oom_killed,
                  "started_at_ns", (json_int_t)r->started_at_ns, "finished_at_ns",
                  (json_int_t)r->finished_at_ns, "stdout", out, ol, "stdout_truncated", r->stdout_truncated,
                  "stderr", errs, el, "stderr_truncated", r->stderr_truncated, "error", msg);
    if (!o)
        return NULL;
    return json_dumps(o, JSON_COMPACT);
}

int dms_exec_result_from_json(const char *json, size_t len, dms_exec_result *out, dms_error *err)
{
    json_error_t jerr;
    _cleanup_json_ json_t *o = json_loadb(json, len, JSON_ALLOW_NUL, &jerr);
    if (!o)
        return dms_error_set(err, DMS_E_PROTOCOL, NULL, "result is not valid JSON: %s", jerr.text);
    memset(out, 0, sizeof(*out));
    const char *outcome = NULL, *error = "";
    json_t *so = NULL, *se = NULL;
    json_int_t started = 0, finished = 0;
    int oom = 0, st = 0, et = 0;
    if (json_unpack_ex(o, &jerr, 0, "{s:s,s:i,s:i,s?b,s?I,s?I,s?o,s?b,s?o,s?b,s?s}", "outcome", &outcome,
                       "exit_code", &out->exit_code, "signal", &out->signal, "oom_killed", &oom,
                       "started_at_ns", &started, "finished_at_ns", &finished, "stdout", &so,
                       "stdout_truncated", &st, "stderr", &se, "stderr_truncated", &et, "error", &error) < 0)
        return dms_error_set(err, DMS_E_PROTOCOL, NULL, "result JSON: %s", jerr.text);
    out->outcome = DMS_OUTCOME_NONE;
    for (size_t i = 0; i < DMS_ARRAY_SIZE(outcome_names); i++)
        if (strcmp(outcome, outcome_names[i]) == 0)
            out->outcome = (dms_exec_outcome)i;
    out->oom_killed = oom;
    out->started_at_ns = started;
    out->finished_at_ns = finished;
    snprintf(out->error, sizeof(out->error), "%s", error);
    if ((json_is_string(so) && dms_exec_result_set_output(out, DMS_STREAM_STDOUT, json_string_value(so),
                                                          json_string_length(so), st) < 0) ||
        (json_is_string(se) && dms_exec_result_set_output(out, DMS_STREAM_STDERR, json_string_value(se),
                                                          json_string_length(se), et) < 0)) {
        dms_exec_result_clear(out);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    return 0;
}
