/* capmask.c - the capability set a request's security part keeps (security.h), for the backends. In
 * libdms-util.a, not in the library's exports: the kept set is how a backend applies the request, not part of
 * the public API (the names and their numbers are: dms_capability_number() in dms/request.h). */
#include "security.h"

#include <string.h>

#include "util.h"

uint64_t dmsu_security_cap_mask(const dms_security *s, uint64_t base)
{
    const uint64_t all = (UINT64_C(1) << (DMS_CAP_LAST + 1)) - 1;
    /* Docker's order: "ALL" added means every capability but the ones named in the drop list; otherwise the
     * drop list applies to the base ("ALL" there clears it) and the add list comes on top. */
    bool add_all = dmsu_strv_contains(s->cap_add, DMS_CAP_ALL);
    uint64_t keep = add_all ? all : base & all;
    for (size_t i = 0; s->cap_drop && s->cap_drop[i]; i++) {
        int n = dms_capability_number(s->cap_drop[i]);
        if (n >= 0)
            keep &= ~(UINT64_C(1) << n);
        else if (!add_all && strcmp(s->cap_drop[i], DMS_CAP_ALL) == 0)
            keep = 0;
    }
    for (size_t i = 0; s->cap_add && s->cap_add[i]; i++) {
        int n = dms_capability_number(s->cap_add[i]);
        if (n >= 0)
            keep |= UINT64_C(1) << n;
    }
    return keep;
}

bool dmsu_security_has_caps(const dms_security *s)
{
    return (s->cap_drop && s->cap_drop[0]) || (s->cap_add && s->cap_add[0]);
}
