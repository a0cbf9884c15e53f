/* shim_spec.c - dms-proc-shim: reads spec.json, the plan the plugin resolved from the request (argv, clean
 * env, working dir, user, rlimits, cgroups, timeouts). */
#include "shim.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

static char **strv_from_json(json_t *a)
{
    char **v = calloc(json_array_size(a) + 1, sizeof(char *));
    size_t i;
    json_t *s;
    if (!v)
        return NULL;
    json_array_foreach(a, i, s)
    {
        if (!json_is_string(s) || !(v[i] = strdup(json_string_value(s)))) {
            dmsu_strv_free(v);
            return NULL;
        }
    }
    return v;
}

void proc_spec_free(proc_spec *sp)
{
    free(sp->execution_id);
    dmsu_strv_free(sp->argv);
    dmsu_strv_free(sp->env);
    free(sp->working_dir);
    free(sp->program_field);
    free(sp->groups);
    for (size_t i = 0; i < sp->n_cgroups; i++)
        free(sp->cgroups[i].dir);
    free(sp->cgroups);
    memset(sp, 0, sizeof(*sp));
}

int proc_spec_load(const char *dir, proc_spec *sp, dms_error *err)
{
    char path[PATH_MAX];
    _cleanup_free_ char *data = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "%s/" PROC_SPEC_FILE, dir);
    int r = dms_read_file(path, PROC_STATE_FILE_MAX_BYTES, &data, &len, err);
    if (r < 0)
        return r;
    json_error_t jerr;
    _cleanup_json_ json_t *o = json_loadb(data, len, 0, &jerr);
    if (!o)
        return dms_error_set(err, DMS_E_PROTOCOL, NULL, "%s: %s", path, jerr.text);
    const char *id = NULL, *wd = NULL, *field = NULL;
    json_t *argv = NULL, *env = NULL, *groups = NULL, *cgroups = NULL;
    json_int_t uid = -1, gid = -1, ras = 0, rnp = 0, tmo = 0, grace = 0, rob = 0, lfb = 0;
    int netns = 0, nnp = 0;
    json_int_t cap_keep = -1;
    memset(sp, 0, sizeof(*sp));
    if (json_unpack_ex(o, &jerr, 0, "{s:s,s:o,s:o,s:s,s:s,s:I,s:I,s:o,s:I,s:I,s:b,s:o,s:I,s:I,s:I,s:I}",
                       "execution_id", &id, "argv", &argv, "env", &env, "working_dir", &wd, "program_field",
                       &field, "uid", &uid, "gid", &gid, "groups", &groups, "rlimit_as", &ras, "rlimit_nproc",
                       &rnp, "netns", &netns, "cgroups", &cgroups, "timeout_ms", &tmo, "stop_grace_ms",
                       &grace, "result_output_bytes", &rob, "log_file_bytes", &lfb) < 0)
        return dms_error_set(err, DMS_E_PROTOCOL, NULL, "%s: %s", path, jerr.text);
    /* Optional: a spec written by a plugin older than the security part has neither. */
    if (json_unpack_ex(o, &jerr, 0, "{s?b,s?I}", "no_new_privs", &nnp, "cap_keep", &cap_keep) < 0)
        return dms_error_set(err, DMS_E_PROTOCOL, NULL, "%s: %s", path, jerr.text);
    sp->no_new_privs = nnp;
    sp->cap_keep = cap_keep;
    sp->uid = uid;
    sp->gid = gid;
    sp->rlimit_as = ras;
    sp->rlimit_nproc = rnp;
    sp->netns = netns;
    sp->timeout_ms = tmo;
    sp->stop_grace_ms = grace > 0 ? grace : DMS_DEFAULT_STOP_GRACE_MS;
    sp->result_output_bytes = rob > 0 ? rob : DMS_DEFAULT_RESULT_OUTPUT_BYTES;
    sp->log_file_bytes = lfb;
    sp->n_groups = json_array_size(groups);
    sp->n_cgroups = json_array_size(cgroups);
    if (!(sp->execution_id = strdup(id)) || !(sp->working_dir = strdup(wd)) ||
        !(sp->program_field = strdup(field)) || !(sp->argv = strv_from_json(argv)) ||
        !(sp->env = strv_from_json(env)) || !(sp->groups = calloc(sp->n_groups + 1, sizeof(gid_t))) ||
        !(sp->cgroups = calloc(sp->n_cgroups + 1, sizeof(proc_cg_item))))
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory reading %s", path);
    if (!sp->argv[0])
        return dms_error_set(err, DMS_E_PROTOCOL, NULL, "%s: empty argv", path);
    for (size_t i = 0; i < sp->n_groups; i++)
        sp->groups[i] = (gid_t)json_integer_value(json_array_get(groups, i));
    for (size_t i = 0; i < sp->n_cgroups; i++) {
        const char *cdir = NULL, *ctrl = NULL;
        int version = 0;
        json_int_t value = 0;
        if (json_unpack_ex(json_array_get(cgroups, i), &jerr, 0, "{s:s,s:i,s:s,s:I}", "dir", &cdir, "version",
                           &version, "controller", &ctrl, "value", &value) < 0)
            return dms_error_set(err, DMS_E_PROTOCOL, NULL, "%s: cgroups[%zu]: %s", path, i, jerr.text);
        proc_cg_item *ci = &sp->cgroups[i];
        ci->version = version;
        ci->value = value;
        ci->ctrl = PROC_CG__COUNT;
        for (int c = 0; c < PROC_CG__COUNT; c++)
            if (strcmp(ctrl, proc_cg_name((proc_cg_ctrl)c)) == 0)
                ci->ctrl = (proc_cg_ctrl)c;
        if (ci->ctrl == PROC_CG__COUNT)
            return dms_error_set(err, DMS_E_PROTOCOL, NULL, "%s: unknown controller %s", path, ctrl);
        if (!(ci->dir = strdup(cdir)))
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory reading %s", path);
    }
    return 0;
}
