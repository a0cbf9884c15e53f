/* fdlimit.c - RLIMIT_NOFILE raised and accounted (see fdlimit.h). */
#include "fdlimit.h"

#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "common.h"

#define NR_OPEN_PATH     "/proc/sys/fs/nr_open" /* the kernel's ceiling when the hard limit is unlimited */
#define NR_OPEN_FALLBACK 1048576L               /* its default, should /proc not say */

static _Atomic long soft_limit;

/* The most a soft limit may be when the hard one is RLIM_INFINITY: setrlimit refuses more than nr_open. */
static long nr_open(void)
{
    FILE *f = fopen(NR_OPEN_PATH, "re");
    long v = 0;
    if (f) {
        char line[32];
        const char *end = NULL;
        int64_t n = fgets(line, sizeof(line), f) ? dmsu_parse_i64_prefix(line, &end) : 0;
        if (end && end != line)
            v = (long)n;
        (void)fclose(f); /* read only: nothing to lose */
    }
    return v > 0 ? v : NR_OPEN_FALLBACK;
}

int fdlimit_raise(long *soft, bool *raised, dms_error *err)
{
    struct rlimit rl;
    *raised = false;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return dms_error_set_errno(err, DMS_E_IO, errno, "getrlimit(RLIMIT_NOFILE)");
    rlim_t want = rl.rlim_max == RLIM_INFINITY ? (rlim_t)nr_open() : rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit up = {.rlim_cur = want, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
            rl.rlim_cur = want;
            *raised = true;
        }
    }
    long cur = rl.rlim_cur == RLIM_INFINITY ? nr_open() : (long)rl.rlim_cur;
    atomic_store(&soft_limit, cur);
    *soft = cur;
    return 0;
}

long fdlimit_soft(void)
{
    long s = atomic_load(&soft_limit);
    if (s > 0)
        return s;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    s = rl.rlim_cur == RLIM_INFINITY ? nr_open() : (long)rl.rlim_cur;
    atomic_store(&soft_limit, s);
    return s;
}

long fdlimit_droids_allowed(long soft)
{
    long left = soft - FDLIMIT_BASE - FDLIMIT_RESERVE;
    return left > 0 ? left / FDLIMIT_PER_DROID : 0;
}

long fdlimit_count_open(long stop_at)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    long n = 0;
    const struct dirent *e;
    while (n <= stop_at && (e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n > 0 ? n - 1 : 0; /* the directory's own descriptor is not one of ours */
}

int fdlimit_check(long in_use, long limit, long need, dms_error *err)
{
    if (in_use >= 0 && in_use + need <= limit)
        return 0;
    char used[64];
    if (in_use < 0)
        snprintf(used, sizeof(used), "all");
    else
        snprintf(used, sizeof(used), "%ld", in_use);
    return dms_error_set(
        err, DMS_E_UNAVAILABLE, FDLIMIT_FIELD,
        "dmsd is at its limit of open files: %s of the limit %ld are in use (RLIMIT_NOFILE), "
        "and new work needs %ld more; retry once droids are deleted or stopped, or raise "
        "the limit (LimitNOFILE= in dmsd's systemd unit, ulimit -n)",
        used, limit, need);
}

int fdlimit_check_now(long droids, long need, dms_error *err)
{
    long limit = fdlimit_soft();
    long counted = fdlimit_count_open(limit);
    long promised = FDLIMIT_BASE + droids * FDLIMIT_PER_DROID;
    long in_use = counted >= 0 && counted < promised ? promised : counted;
    return fdlimit_check(in_use, limit, need + FDLIMIT_RESERVE, err);
}

bool fdlimit_exhausted_msg(const char *msg)
{
    if (!msg)
        return false;
    /* strerror's text is the C library's: take it from there rather than spell it. */
    return strstr(msg, strerror(EMFILE)) || strstr(msg, strerror(ENFILE));
}

bool fdlimit_exhausted(const dms_error *err)
{
    if (!err)
        return false;
    return err->sys_errno == EMFILE || err->sys_errno == ENFILE || fdlimit_exhausted_msg(err->message);
}
