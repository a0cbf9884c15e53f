/* buildopts.c - a droid's build options and the effective time limit (see buildopts.h). */
#include "buildopts.h"

#include <string.h>

int build_opts_take(json_t *body, int max_s, build_opts *out, dms_error *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(body))
        return 0; /* the droid's own parser says what is wrong with the body */
    json_t *t = json_object_get(body, BUILD_TIMEOUT_FIELD);
    if (!t)
        return 0;
    if (!json_is_null(t)) {
        json_int_t v = json_is_integer(t) ? json_integer_value(t) : 0;
        if (!json_is_integer(t) || v < 1)
            return dms_error_set(err, DMS_E_INVALID, BUILD_TIMEOUT_FIELD,
                                 BUILD_TIMEOUT_FIELD
                                 " must be a whole number of seconds from 1 to %d, or null "
                                 "for the default",
                                 max_s);
        if (v > max_s)
            return dms_error_set(err, DMS_E_INVALID, BUILD_TIMEOUT_FIELD,
                                 BUILD_TIMEOUT_FIELD
                                 " %lld is above this host's maximum of %d s (the operator's "
                                 "DMS_BUILD_TIMEOUT_MAX_S)",
                                 (long long)v, max_s);
        out->timeout_s = (int)v;
    }
    out->has_timeout = true;
    json_object_del(body, BUILD_TIMEOUT_FIELD);
    return 0;
}

int build_timeout_effective(const build_config *cfg, int droid_s)
{
    if (droid_s <= 0)
        return cfg->timeout_s;
    return droid_s < cfg->timeout_max_s ? droid_s : cfg->timeout_max_s;
}
