/* shim_child.c - dms-proc-shim: the workload's side of the fork. The shim is single-threaded, so unlike in
 * the plugin's host everything is allowed between fork and exec; failures are reported to the shim over a
 * CLOEXEC pipe as a stage and an errno, and turned into an error naming the field at fault
 * (proc_child_describe). */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

static void loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
        ifr.ifr_flags |= IFF_UP;
        ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    close(fd);
}

/* execvpe searches the caller's PATH, not the workload's: search the workload's own PATH like a shell would.
 */
static void exec_in_path(const proc_spec *sp)
{
    const char *file = sp->argv[0];
    if (strchr(file, '/')) {
        execve(file, sp->argv, sp->env);
        return;
    }
    const char *path = dmsu_kv_get(sp->env, "PATH");
    if (!path)
        path = PROC_DEFAULT_PATH + 5;
    int saved = ENOENT;
    for (const char *p = path;; p++) {
        const char *colon = strchr(p, ':');
        size_t dl = colon ? (size_t)(colon - p) : strlen(p);
        char buf[PATH_MAX];
        if (dmsu_snprintf_ok(buf, sizeof(buf), "%.*s%s%s", (int)dl, p, dl ? "/" : "", file) == 0) {
            execve(buf, sp->argv, sp->env);
            if (errno == EACCES)
                saved = EACCES;
            else if (errno != ENOENT && errno != ENOTDIR) {
                saved = errno;
                break;
            }
        }
        if (!colon)
            break;
        p = colon;
    }
    errno = saved;
}

/* Only the capabilities in keep survive exec: every other one leaves the bounding set (root regains nothing
 * outside it at exec, and neither does a setuid or file-capability binary) and the inheritable set, and the
 * ambient set is emptied. Needs CAP_SETPCAP, which the plugin made sure of (root). 0, or -1 with errno. */
static int drop_capabilities(uint64_t keep)
{
    for (int c = 0; c < 64; c++) {
        int in = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
        if (in < 0)
            break; /* EINVAL: past the kernel's last capability */
        if (in == 1 && !(keep & (UINT64_C(1) << c)) && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
            return -1;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL)
        return -1;
    struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
    if (syscall(SYS_capget, &hdr, data) != 0)
        return -1;
    data[0].inheritable &= (uint32_t)keep;
    data[1].inheritable &= (uint32_t)(keep >> 32);
    return syscall(SYS_capset, &hdr, data) == 0 ? 0 : -1;
}

static __attribute__((noreturn)) void child_fail(int fd, int stage)
{
    proc_exec_failure f = {.stage = stage, .err = errno};
    ssize_t w = write(fd, &f, sizeof(f));
    (void)w;
    _exit(127);
}

/* Runs in the forked workload. The shim is single-threaded, so everything is allowed here. */
__attribute__((noreturn)) void proc_child_run(const proc_spec *sp, int go_r, int go_w, int fail_w, int out_w,
                                              int err_w)
{
    setsid();    /* its own session and process group: cancel signals the whole group */
    close(go_w); /* so that the read below sees EOF if the shim dies first */
    char go;
    if (read(go_r, &go, 1) != 1)
        _exit(127); /* the shim gave up before letting us run */
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0)
        child_fail(fail_w, PROC_STAGE_SETUP);
    /* Everything else the shim holds is CLOEXEC; make sure of it for anything inherited. */
    close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    (void)signal(SIGPIPE, SIG_DFL);
    if (sp->rlimit_as > 0) {
        struct rlimit rl = {(rlim_t)sp->rlimit_as, (rlim_t)sp->rlimit_as};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            child_fail(fail_w, PROC_STAGE_RLIMIT);
    }
    if (sp->rlimit_nproc > 0) {
        struct rlimit rl = {(rlim_t)sp->rlimit_nproc, (rlim_t)sp->rlimit_nproc};
        if (setrlimit(RLIMIT_NPROC, &rl) != 0)
            child_fail(fail_w, PROC_STAGE_RLIMIT);
    }
    if (sp->netns) {
        if (unshare(CLONE_NEWNET) != 0)
            child_fail(fail_w, PROC_STAGE_NETNS);
        loopback_up();
    }
    if (chdir(sp->working_dir) != 0)
        child_fail(fail_w, PROC_STAGE_CHDIR);
    /* Before the switch of user, while we still hold CAP_SETPCAP; switching to a non-root uid then clears the
     * permitted and effective sets anyway. */
    if (sp->cap_keep >= 0 && drop_capabilities((uint64_t)sp->cap_keep) != 0)
        child_fail(fail_w, PROC_STAGE_CAPS);
    if (sp->uid >= 0) {
        if (setgroups(sp->n_groups, sp->groups) != 0 || setgid((gid_t)sp->gid) != 0 ||
            setuid((uid_t)sp->uid) != 0)
            child_fail(fail_w, PROC_STAGE_USER);
    }
    if (sp->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        child_fail(fail_w, PROC_STAGE_NNP);
    exec_in_path(sp);
    child_fail(fail_w, PROC_STAGE_EXEC);
}

/* errno text as Docker (Go) and runc print it, "no such file or directory": lower case, so that messages read
 * the same whichever backend ran the job, and clients that match them (dms-exec's 126 vs 127) see one form.
 */
static const char *errno_text(int err, char *buf, size_t size)
{
    snprintf(buf, size, "%s", strerror(err));
    if (buf[0] >= 'A' && buf[0] <= 'Z' && !(buf[1] >= 'A' && buf[1] <= 'Z'))
        buf[0] = (char)(buf[0] - 'A' + 'a');
    return buf;
}

void proc_child_describe(const proc_spec *sp, const proc_exec_failure *f, dms_error *e)
{
    char why[128];
    errno_text(f->err, why, sizeof(why));
    switch (f->stage) {
    case PROC_STAGE_NETNS:
        dms_error_set(e, DMS_E_NOT_SUPPORTED, "network.mode",
                      "network mode none needs a network namespace, which could not be made: %s", why);
        break;
    case PROC_STAGE_CHDIR:
        dms_error_set(e, DMS_E_START_FAILED, "engine.working_dir", "working directory %s: %s",
                      sp->working_dir, why);
        break;
    case PROC_STAGE_USER:
        dms_error_set(e, DMS_E_START_FAILED, "engine.user", "switch to uid %lld gid %lld: %s",
                      (long long)sp->uid, (long long)sp->gid, why);
        break;
    case PROC_STAGE_EXEC:
        dms_error_set(e, DMS_E_START_FAILED, sp->program_field, "exec \"%s\": %s%s", sp->argv[0], why,
                      f->err == ENOENT && !strchr(sp->argv[0], '/') ? " (searched the workload's PATH)" : "");
        break;
    case PROC_STAGE_CAPS:
        dms_error_set(e, DMS_E_START_FAILED, "security.cap_drop", "drop capabilities: %s", why);
        break;
    case PROC_STAGE_NNP:
        dms_error_set(e, DMS_E_START_FAILED, "security.no_new_privileges", "PR_SET_NO_NEW_PRIVS: %s", why);
        break;
    case PROC_STAGE_RLIMIT:
        dms_error_set(e, DMS_E_START_FAILED, "resources", "setrlimit: %s", why);
        break;
    default:
        dms_error_set(e, DMS_E_START_FAILED, NULL, "prepare the workload's stdio: %s", why);
    }
}
