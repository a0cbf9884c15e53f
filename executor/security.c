/* security.c - the security part of a request: capability names and their validation (see dms/request.h).
 *
 * Names are checked against one table, the kernel's numbering (linux/capability.h), so that a typo
 * ("NET_RWA") is refused with the field it is in instead of reaching a backend that would ignore it or an
 * engine that fails the create half-way. */
#include "security.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

/* Indexed by the capability's number (capabilities(7)); CAP_ and the lower-case forms are not accepted, so
 * that one spelling travels from a request to the engine and to a host's /proc. */
static const char *const cap_names[DMS_CAP_LAST + 1] = {
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
};

/* A list never needs more entries than there are capabilities (plus "ALL"). */
#define CAP_LIST_MAX (DMS_CAP_LAST + 2)

int dms_capability_number(const char *name)
{
    for (int i = 0; name && i <= DMS_CAP_LAST; i++)
        if (strcmp(name, cap_names[i]) == 0)
            return i;
    return -1;
}

const char *dms_capability_name(int n)
{
    return n >= 0 && n <= DMS_CAP_LAST ? cap_names[n] : NULL;
}

static int validate_caps(char *const *v, const char *field, char *const *other, const char *other_field,
                         dms_error *err)
{
    char item[DMS_ERROR_FIELD_MAX];
    size_t n = dmsu_strv_len(v);
    if (n > CAP_LIST_MAX)
        return dms_error_set(err, DMS_E_INVALID, field, "%s has %zu entries; at most %d", field, n,
                             CAP_LIST_MAX);
    for (size_t i = 0; i < n; i++) {
        snprintf(item, sizeof(item), "%s[%zu]", field, i);
        if (strcmp(v[i], DMS_CAP_ALL) != 0 && dms_capability_number(v[i]) < 0)
            return dms_error_set(
                err, DMS_E_INVALID, item,
                "%s: unknown capability \"%.40s\" (names as in capabilities(7) without CAP_, "
                "e.g. NET_BIND_SERVICE, or ALL)",
                item, v[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[j], v[i]) == 0)
                return dms_error_set(err, DMS_E_INVALID, item, "%s: %s is listed twice", item, v[i]);
        if (dmsu_strv_contains(other, v[i]))
            return dms_error_set(err, DMS_E_INVALID, item,
                                 "%s: %s is also in %s; a capability is either dropped "
                                 "or added",
                                 item, v[i], other_field);
    }
    return 0;
}

int dms_security_validate(const dms_security *s, dms_error *err)
{
    int r = validate_caps(s->cap_drop, "security.cap_drop", s->cap_add, "security.cap_add", err);
    return r < 0 ? r : validate_caps(s->cap_add, "security.cap_add", NULL, NULL, err);
}
