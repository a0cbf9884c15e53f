/* confine.c - limits, privileges and networks of the containers dmsd runs for users (see confine.h). */
#include "confine.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "../common.h"

#define DEFAULT_EXECUTOR_ID "dmsd"
#define NETWORK_PREFIX      "droid-net"
#define HASH_HEX            16 /* 64 bits of sha256: no two of a host's users or executors meet by chance */

void confine_config_defaults(confine_config *c)
{
    *c = (confine_config){
        .droid = {CONFINE_DROID_MEMORY_MB, CONFINE_DROID_CPU_MILLIS, CONFINE_DROID_PIDS},
        .droid_max = {CONFINE_DROID_MEMORY_MAX_MB, CONFINE_DROID_CPU_MAX_MILLIS, CONFINE_DROID_PIDS_MAX},
        .job = {CONFINE_JOB_MEMORY_MB, CONFINE_JOB_CPU_MILLIS, CONFINE_JOB_PIDS},
        .user_max_droids = CONFINE_USER_MAX_DROIDS,
        .user_max_disk_mb = CONFINE_USER_MAX_DISK_MB,
    };
}

/* One limit of a droid: field, setting of its ceiling, and where it sits in the structs. */
typedef struct limit_desc {
    const char *field;
    const char *max_setting;
    const char *default_setting;
    int min;
    const char *unit;
} limit_desc;

static const limit_desc limits[] = {
    {"resources.memory_mb", "DMS_DROID_MEMORY_MAX_MB", "DMS_DROID_MEMORY_MB", CONFINE_MEMORY_MIN_MB, "MB"},
    {"resources.cpu_millis", "DMS_DROID_CPU_MAX_MILLIS", "DMS_DROID_CPU_MILLIS", CONFINE_CPU_MIN_MILLIS,
     "millicores"},
    {"resources.pids", "DMS_DROID_PIDS_MAX", "DMS_DROID_PIDS", CONFINE_PIDS_MIN, "processes"},
};

static int limit_at(const confine_limits *l, size_t i)
{
    return i == 0 ? l->memory_mb : i == 1 ? l->cpu_millis : l->pids;
}

static int asked_at(const droid_resources *r, size_t i)
{
    return i == 0 ? r->memory_mb : i == 1 ? r->cpu_millis : r->pids;
}

int confine_config_check(const confine_config *c, dms_error *err)
{
    for (size_t i = 0; i < DMS_ARRAY_SIZE(limits); i++)
        if (limit_at(&c->droid, i) > limit_at(&c->droid_max, i))
            return dms_error_set(err, DMS_E_INVALID, limits[i].default_setting, "%s=%d is above %s=%d",
                                 limits[i].default_setting, limit_at(&c->droid, i), limits[i].max_setting,
                                 limit_at(&c->droid_max, i));
    return 0;
}

int confine_check_resources(const confine_config *c, const droid_resources *r, dms_error *err)
{
    for (size_t i = 0; i < DMS_ARRAY_SIZE(limits); i++) {
        int v = asked_at(r, i), max = limit_at(&c->droid_max, i);
        if (v && (v < limits[i].min || v > max))
            return dms_error_set(
                err, DMS_E_INVALID, limits[i].field,
                "%s must be %d-%d %s: %d is %s (the operator's %s=%d is the most a droid may "
                "ask for)",
                limits[i].field, limits[i].min, max, limits[i].unit, v,
                v < limits[i].min ? "too small to start a container" : "above the ceiling",
                limits[i].max_setting, max);
    }
    return 0;
}

static int clamp_limit(int asked, int def, int max)
{
    int v = asked > 0 ? asked : def;
    return v > max ? max : v;
}

confine_limits confine_droid_limits(const confine_config *c, const droid_resources *r)
{
    return (confine_limits){
        .memory_mb = clamp_limit(r->memory_mb, c->droid.memory_mb, c->droid_max.memory_mb),
        .cpu_millis = clamp_limit(r->cpu_millis, c->droid.cpu_millis, c->droid_max.cpu_millis),
        .pids = clamp_limit(r->pids, c->droid.pids, c->droid_max.pids),
    };
}

dms_resources confine_resources(confine_limits l)
{
    return (dms_resources){
        .memory_bytes = (int64_t)l.memory_mb * 1024 * 1024, .cpu_millis = l.cpu_millis, .pids_limit = l.pids};
}

json_t *confine_limits_json(confine_limits l)
{
    return json_pack("{s:i, s:i, s:i}", "memory_mb", l.memory_mb, "cpu_millis", l.cpu_millis, "pids", l.pids);
}

/* What an ordinary web app or build running as root in its own container needs: own and chmod the files it
 * writes (CHOWN, DAC_OVERRIDE, FOWNER, FSETID), signal its own children (KILL), drop root for a worker user
 * (SETGID, SETUID; no setuid binary can take it back: no_new_privileges) and listen below 1024
 * (NET_BIND_SERVICE). Left out of Docker's default set: NET_RAW (raw sockets: spoofing, ARP on the droid
 * network), MKNOD (device nodes), SYS_CHROOT, SETFCAP and SETPCAP (capability games), AUDIT_WRITE. */
static char *const droid_cap_drop[] = {DMS_CAP_ALL, NULL};
static char *const droid_cap_add[] = {"CHOWN",  "DAC_OVERRIDE", "FOWNER",           "FSETID", "KILL",
                                      "SETGID", "SETUID",       "NET_BIND_SERVICE", NULL};
static const dms_security droid_security = {
    .no_new_privileges = true, .cap_drop = droid_cap_drop, .cap_add = droid_cap_add};

const dms_security *confine_security(void)
{
    return &droid_security;
}

static int hash_hex(const char *s, char out[HASH_HEX + 1], dms_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (EVP_Digest(s, strlen(s), md, &n, EVP_sha256(), NULL) != 1 || n * 2 < HASH_HEX)
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "sha256 failed");
    for (size_t i = 0; i < HASH_HEX / 2; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return 0;
}

void confine_legacy_network(const char *executor_id, char *buf, size_t size)
{
    if (strcmp(executor_id, DEFAULT_EXECUTOR_ID) == 0)
        snprintf(buf, size, "%s", NETWORK_PREFIX);
    else
        snprintf(buf, size, "%s-%s", NETWORK_PREFIX, executor_id);
}

int confine_droid_network(const char *executor_id, const char *droid_id, char *buf, size_t size,
                          dms_error *err)
{
    char base[CONFINE_NETWORK_MAX + 16];
    confine_legacy_network(executor_id, base, sizeof(base));
    if (strlen(base) + 1 + strlen(droid_id) > DMS_ID_MAX) {
        char ex[HASH_HEX + 1];
        int r = hash_hex(executor_id, ex, err);
        if (r < 0)
            return r;
        snprintf(base, sizeof(base), "%s-%s", NETWORK_PREFIX, ex);
    }
    if (dmsu_snprintf_ok(buf, size, "%s-%s", base, droid_id) < 0)
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "network name buffer too small");
    return 0;
}

int confine_user_network(const char *executor_id, const char *user_id, char *buf, size_t size, dms_error *err)
{
    char user[HASH_HEX + 1], base[CONFINE_NETWORK_MAX + 16];
    int r = hash_hex(user_id, user, err);
    if (r < 0)
        return r;
    confine_legacy_network(executor_id, base, sizeof(base));
    if (strlen(base) + 2 + HASH_HEX > DMS_ID_MAX) {
        char ex[HASH_HEX + 1];
        if ((r = hash_hex(executor_id, ex, err)) < 0)
            return r;
        snprintf(base, sizeof(base), "%s-%s", NETWORK_PREFIX, ex);
    }
    if (dmsu_snprintf_ok(buf, size, "%s-u%s", base, user) < 0)
        return dms_error_set(err, DMS_E_INTERNAL, NULL, "network name buffer too small");
    return 0;
}
