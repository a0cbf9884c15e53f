/* cgroup.c - per-execution cgroups for the process backend, v1 or v2, whichever this machine lets us write.
 *
 * Each controller (memory, pids, cpu) is looked up on its own, because "hybrid" machines (ours:
 * docs/engine-notes.md §8) mount memory/pids/cpu as v1 hierarchies and keep a v2 tree with no controllers in
 * it. For each controller we use the cgroup this process already lives in as the parent, never a directory
 * above it: whatever limits the host's own supervisor put on us keep applying to the workloads (systemd's
 * delegation rule). A controller counts as usable only if a probe child cgroup can really be created there
 * and carries the limit file.
 *
 * Also /proc/<pid>/stat parsing, which both the plugin and the shim need to tell a live process from a
 * recycled pid. */
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

#define CG_PERIOD_US    100000 /* CFS period: quota = cpu_millis * CG_PERIOD_US / 1000 */
#define CG_QUOTA_MIN_US 1000   /* the kernel refuses a smaller quota */
#define CG_REMOVE_TRIES 100
/* 10 ms between removal attempts: the last tasks leave the cgroup as they are reaped. */
#define CG_REMOVE_RETRY_NS (10 * 1000 * 1000)
#define CG_FILE_MAX_BYTES  (1024 * 1024)

static const char *const cg_names[PROC_CG__COUNT] = {"memory", "pids", "cpu"};

const char *proc_cg_name(proc_cg_ctrl c)
{
    return (unsigned)c < PROC_CG__COUNT ? cg_names[c] : "?";
}

/* ---- /proc ---- */

int proc_stat_read(pid_t pid, uint64_t *start_time, char *state)
{
    char path[64], buf[1024];
    if (pid <= 0)
        return -1;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* comm (field 2) may hold spaces and parentheses: the fields after it start after the LAST ')'. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ')
        return -1;
    p += 2; /* field 3: state */
    char st = *p;
    /* Skip to field 22 (starttime): fields 3..21 are 19 fields. */
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (end == p)
        return -1;
    if (start_time)
        *start_time = v;
    if (state)
        *state = st;
    return 0;
}

bool proc_alive(pid_t pid, uint64_t start_time)
{
    uint64_t st;
    char state;
    if (proc_stat_read(pid, &st, &state) < 0)
        return false;
    return st == start_time && state != 'Z' && state != 'X';
}

/* ---- small file helpers ---- */

static int write_str(const char *dir, const char *name, const char *value)
{
    char path[PATH_MAX];
    if (dmsu_snprintf_ok(path, sizeof(path), "%s/%s", dir, name) < 0)
        return -ENAMETOOLONG;
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(value);
    ssize_t w = write(fd, value, len);
    int e = errno;
    close(fd);
    if (w < 0)
        return -e;
    return (size_t)w == len ? 0 : -EIO;
}

static bool file_exists(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    return dmsu_snprintf_ok(path, sizeof(path), "%s/%s", dir, name) == 0 && stat(path, &st) == 0;
}

/* The value of `key N` in a flat keyed file such as memory.events; -1 if absent. */
static int64_t keyed_value(const char *dir, const char *name, const char *key)
{
    char path[PATH_MAX];
    _cleanup_free_ char *data = NULL;
    if (dmsu_snprintf_ok(path, sizeof(path), "%s/%s", dir, name) < 0 ||
        dms_read_file(path, CG_FILE_MAX_BYTES, &data, NULL, NULL) < 0)
        return -1;
    size_t kl = strlen(key);
    for (char *line = data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        if (strncmp(line, key, kl) == 0 && line[kl] == ' ')
            return dmsu_parse_i64(line + kl + 1);
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

/* ---- probing ---- */

/* The file whose presence in a child cgroup proves the controller is active there. */
static const char *limit_file(int version, proc_cg_ctrl c)
{
    switch (c) {
    case PROC_CG_MEMORY:
        return version == 1 ? "memory.limit_in_bytes" : "memory.max";
    case PROC_CG_PIDS:
        return "pids.max";
    case PROC_CG_CPU:
        return version == 1 ? "cpu.cfs_quota_us" : "cpu.max";
    default:
        return "?";
    }
}

static bool list_has(const char *list, const char *word, const char *seps)
{
    size_t wl = strlen(word);
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, seps);
        if (n == wl && strncmp(p, word, wl) == 0)
            return true;
        p += n;
        if (*p)
            p++;
    }
    return false;
}

/* This process's cgroup path in the hierarchy that holds controller `ctrl` (v1), or in the v2 tree (ctrl
 * NULL). */
static int own_cgroup_path(const char *ctrl, char *out, size_t size)
{
    _cleanup_free_ char *data = NULL;
    if (dms_read_file("/proc/self/cgroup", CG_FILE_MAX_BYTES, &data, NULL, NULL) < 0)
        return -1;
    for (char *line = data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        /* hierarchy-id:controller-list:path */
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2) {
            *c2 = '\0';
            bool match = ctrl ? list_has(c1 + 1, ctrl, ",") : (strcmp(line, "0:") == 0 && c1[1] == '\0');
            if (match)
                return dmsu_snprintf_ok(out, size, "%s", c2 + 1);
        }
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

/* The mount point and mount root of the hierarchy of `ctrl` (v1, fstype cgroup with ctrl in its super
 * options) or of the v2 tree (ctrl NULL). */
static int find_mount(const char *ctrl, char *mnt, size_t mnt_size, char *root, size_t root_size)
{
    _cleanup_free_ char *data = NULL;
    if (dms_read_file("/proc/self/mountinfo", CG_FILE_MAX_BYTES, &data, NULL, NULL) < 0)
        return -1;
    for (char *line = data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        /* id parent maj:min root mountpoint options [optional...] - fstype source superoptions */
        char *f[5] = {0};
        char *save = NULL, *tok = strtok_r(line, " ", &save);
        for (int i = 0; tok && i < 5; i++, tok = strtok_r(NULL, " ", &save))
            f[i] = tok;
        while (tok && strcmp(tok, "-") != 0)
            tok = strtok_r(NULL, " ", &save);
        char *fstype = tok ? strtok_r(NULL, " ", &save) : NULL;
        char *source = fstype ? strtok_r(NULL, " ", &save) : NULL;
        char *super = source ? strtok_r(NULL, " ", &save) : NULL;
        bool match = false;
        if (fstype && f[4]) {
            if (ctrl)
                match = strcmp(fstype, "cgroup") == 0 && super && list_has(super, ctrl, ",");
            else
                match = strcmp(fstype, "cgroup2") == 0;
        }
        if (match)
            return dmsu_snprintf_ok(mnt, mnt_size, "%s", f[4]) < 0 ||
                           dmsu_snprintf_ok(root, root_size, "%s", f[3]) < 0
                       ? -1
                       : 0;
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

/* mount point + (own path relative to the mount's root). */
static int base_dir(const char *ctrl, char *out, size_t size)
{
    char mnt[PATH_MAX], root[PATH_MAX], own[PATH_MAX];
    if (find_mount(ctrl, mnt, sizeof(mnt), root, sizeof(root)) < 0 ||
        own_cgroup_path(ctrl, own, sizeof(own)) < 0)
        return -1;
    const char *rel = own;
    size_t rl = strlen(root);
    if (strcmp(root, "/") != 0) {
        if (strncmp(own, root, rl) != 0 || (own[rl] != '/' && own[rl] != '\0'))
            return -1; /* our cgroup is outside what this mount shows */
        rel = own + rl;
    }
    while (*rel == '/')
        rel++;
    return dmsu_snprintf_ok(out, size, "%s%s%s", mnt, *rel ? "/" : "", rel);
}

static bool probe_dir(const char *base, int version, proc_cg_ctrl c)
{
    static int counter;
    char probe[PATH_MAX];
    if (dmsu_snprintf_ok(probe, sizeof(probe), "%s/%s%d.%d", base, PROC_CGROUP_PROBE_PREFIX, (int)getpid(),
                         __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED)) < 0)
        return false;
    if (mkdir(probe, 0755) != 0)
        return false;
    bool ok = file_exists(probe, limit_file(version, c));
    rmdir(probe);
    return ok;
}

void proc_cgroup_probe(proc_cgroups *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof(*out));
    dmsu_buf summary = {0};
    char v2[PATH_MAX];
    bool have_v2 = base_dir(NULL, v2, sizeof(v2)) == 0;
    for (int c = 0; c < PROC_CG__COUNT; c++) {
        proc_cg_base *b = &out->base[c];
        /* A controller bound to a v1 hierarchy cannot be in the v2 tree at the same time: try v1 first. */
        if (base_dir(cg_names[c], b->dir, sizeof(b->dir)) == 0 && probe_dir(b->dir, 1, (proc_cg_ctrl)c)) {
            b->version = 1;
        } else if (have_v2) {
            /* v2: the controller must be enabled for our children already; enabling it ourselves would break
             * the no-internal-processes rule for the cgroup we live in. */
            char subtree[PATH_MAX];
            _cleanup_free_ char *ctl = NULL;
            if (dmsu_snprintf_ok(subtree, sizeof(subtree), "%s/cgroup.subtree_control", v2) == 0 &&
                dms_read_file(subtree, CG_FILE_MAX_BYTES, &ctl, NULL, NULL) == 0 &&
                list_has(ctl, cg_names[c], " \n") && probe_dir(v2, 2, (proc_cg_ctrl)c)) {
                b->version = 2;
                snprintf(b->dir, sizeof(b->dir), "%s", v2);
            }
        }
        if (b->version == 0)
            b->dir[0] = '\0';
        dmsu_buf_printf(&summary, "%s%s=%s%s", c ? " " : "", cg_names[c],
                        b->version == 1   ? "v1:"
                        : b->version == 2 ? "v2:"
                                          : "none",
                        b->dir);
    }
    if (why && why_len)
        snprintf(why, why_len, "%s", summary.data ? summary.data : "");
    dmsu_buf_free(&summary);
}

/* ---- per-execution cgroups ---- */

int proc_cgroup_setup(const char *dir, int version, proc_cg_ctrl c, int64_t value, dms_error *err)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return dms_error_set_errno(err, DMS_E_IO, errno, "create cgroup %s", dir);
    char v[64];
    int r = 0;
    switch (c) {
    case PROC_CG_MEMORY:
        snprintf(v, sizeof(v), "%lld", (long long)value);
        if ((r = write_str(dir, limit_file(version, c), v)) < 0)
            break;
        /* Without this the workload could swap instead of being held to its limit. memsw must be set after
         * the limit (the kernel keeps memsw >= limit). Absent without swap accounting: fine. */
        if (version == 1 && file_exists(dir, "memory.memsw.limit_in_bytes"))
            write_str(dir, "memory.memsw.limit_in_bytes", v);
        if (version == 2 && file_exists(dir, "memory.swap.max"))
            write_str(dir, "memory.swap.max", "0");
        break;
    case PROC_CG_PIDS:
        snprintf(v, sizeof(v), "%lld", (long long)value);
        r = write_str(dir, "pids.max", v);
        break;
    case PROC_CG_CPU: {
        long long quota = (long long)(value * CG_PERIOD_US / 1000);
        if (quota < CG_QUOTA_MIN_US)
            quota = CG_QUOTA_MIN_US;
        if (version == 1) {
            snprintf(v, sizeof(v), "%d", CG_PERIOD_US);
            if ((r = write_str(dir, "cpu.cfs_period_us", v)) < 0)
                break;
            snprintf(v, sizeof(v), "%lld", quota);
            r = write_str(dir, "cpu.cfs_quota_us", v);
        } else {
            snprintf(v, sizeof(v), "%lld %d", quota, CG_PERIOD_US);
            r = write_str(dir, "cpu.max", v);
        }
        break;
    }
    default:
        r = -EINVAL;
    }
    if (r < 0)
        return dms_error_set_errno(err, DMS_E_IO, -r, "set the %s limit in cgroup %s", cg_names[c], dir);
    return 0;
}

int proc_cgroup_attach(const char *dir, pid_t pid, dms_error *err)
{
    char v[32];
    snprintf(v, sizeof(v), "%d", (int)pid);
    int r = write_str(dir, "cgroup.procs", v);
    if (r < 0)
        return dms_error_set_errno(err, DMS_E_IO, -r, "move pid %d into cgroup %s", (int)pid, dir);
    return 0;
}

int proc_cgroup_signal(const char *dir, int sig)
{
    char path[PATH_MAX];
    _cleanup_free_ char *data = NULL;
    if (dmsu_snprintf_ok(path, sizeof(path), "%s/cgroup.procs", dir) < 0 ||
        dms_read_file(path, CG_FILE_MAX_BYTES, &data, NULL, NULL) < 0)
        return 0;
    int n = 0;
    for (char *p = data; *p;) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        if (pid > 0 && kill((pid_t)pid, sig) == 0)
            n++;
        p = end;
        while (*p == '\n')
            p++;
    }
    return n;
}

bool proc_cgroup_oom_killed(const char *dir, int version)
{
    /* v1: memory.oom_control has "oom_kill N" since Linux 4.13; v2: memory.events "oom_kill N". */
    int64_t n = keyed_value(dir, version == 1 ? "memory.oom_control" : "memory.events", "oom_kill");
    return n > 0;
}

int proc_cgroup_remove(const char *dir)
{
    for (int i = 0; i < CG_REMOVE_TRIES; i++) {
        if (rmdir(dir) == 0 || errno == ENOENT)
            return 0;
        if (errno != EBUSY)
            return -errno;
        proc_cgroup_signal(dir, SIGKILL);
        struct timespec ts = {0, CG_REMOVE_RETRY_NS};
        nanosleep(&ts, NULL);
    }
    return -EBUSY;
}
