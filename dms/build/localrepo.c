/* localrepo.c - where local repositories may come from (see localrepo.h). */
#include "localrepo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../common.h"

#define LOCALREPO_ROOTS_MAX    32 /* entries of DMS_LOCAL_REPO_ROOTS */
#define FILE_SCHEME            "file://"
#define FILE_LOCALHOST         "localhost/"
#define OPENAT2_EAGAIN_RETRIES 8 /* RESOLVE_BENEATH answers EAGAIN when a rename races the walk */

static const char *const URL_SAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/._~-";

void localrepo_policy_clear(localrepo_policy *p)
{
    for (size_t i = 0; i < p->n_roots; i++) {
        free(p->roots[i].spelling);
        free(p->roots[i].real);
    }
    free(p->roots);
    free(p->data_dir);
    memset(p, 0, sizeof(*p));
}

/* "." or ".." as a whole component of an absolute path. */
static bool has_dot_component(const char *path)
{
    for (const char *c = path; (c = strchr(c, '/')); c++) {
        const char *e = c + 1;
        size_t len = strcspn(e, "/");
        if ((len == 1 && e[0] == '.') || (len == 2 && e[0] == '.' && e[1] == '.'))
            return true;
    }
    return false;
}

static int add_root(localrepo_policy *p, const char *entry, dms_error *err)
{
    if (entry[0] != '/' || has_dot_component(entry))
        return dms_error_set(err, DMS_E_INVALID, LOCALREPO_ROOTS_SETTING,
                             "%s: \"%s\" must be an absolute directory without . or .. components",
                             LOCALREPO_ROOTS_SETTING, entry);
    if (p->n_roots >= LOCALREPO_ROOTS_MAX)
        return dms_error_set(err, DMS_E_INVALID, LOCALREPO_ROOTS_SETTING, "%s lists more than %d directories",
                             LOCALREPO_ROOTS_SETTING, LOCALREPO_ROOTS_MAX);
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(entry, real) || stat(real, &st) < 0)
        return dms_error_set_errno(err, DMS_E_INVALID, errno, "%s: \"%s\" is not an existing directory",
                                   LOCALREPO_ROOTS_SETTING, entry);
    if (!S_ISDIR(st.st_mode))
        return dms_error_set(err, DMS_E_INVALID, LOCALREPO_ROOTS_SETTING, "%s: \"%s\" is not a directory",
                             LOCALREPO_ROOTS_SETTING, entry);
    localrepo_root *r = &p->roots[p->n_roots];
    size_t len = strlen(entry);
    while (len > 1 && entry[len - 1] == '/')
        len--;
    if (!(r->spelling = strndup(entry, len)) || !(r->real = strdup(real))) {
        free(r->spelling);
        r->spelling = NULL;
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    p->n_roots++;
    return 0;
}

int localrepo_policy_parse(localrepo_policy *p, const char *roots, const char *data_dir, dms_error *err)
{
    memset(p, 0, sizeof(*p));
    char real[PATH_MAX];
    if (data_dir && !(p->data_dir = strdup(realpath(data_dir, real) ? real : data_dir)))
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    if (!roots || !*roots)
        return 0;
    _cleanup_free_ char *copy = strdup(roots);
    if (!copy || !(p->roots = calloc(LOCALREPO_ROOTS_MAX, sizeof(*p->roots)))) {
        localrepo_policy_clear(p);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    char *save = NULL;
    for (char *tok = strtok_r(copy, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
        int r = add_root(p, tok, err);
        if (r < 0) {
            localrepo_policy_clear(p);
            return r;
        }
    }
    return 0;
}

bool localrepo_is_local(const char *repo)
{
    return repo && (repo[0] == '/' || strncasecmp(repo, FILE_SCHEME, strlen(FILE_SCHEME)) == 0);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The path a local repo names, as libgit2 reads it: a file:// URL loses its scheme (and "localhost") and is
 * percent-decoded. */
static int repo_path(const char *repo, const char *field, char *out, size_t size, dms_error *err)
{
    const char *p = repo;
    bool url = strncasecmp(repo, FILE_SCHEME, strlen(FILE_SCHEME)) == 0;
    if (url) {
        p += strlen(FILE_SCHEME);
        if (strncasecmp(p, FILE_LOCALHOST, strlen(FILE_LOCALHOST)) == 0)
            p += strlen(FILE_LOCALHOST) - 1;
        if (*p != '/')
            return dms_error_set(err, DMS_E_INVALID, field,
                                 "%s: a file:// URL names a path on this host: file:///path/to/repo.git",
                                 field);
    }
    size_t o = 0;
    for (; *p; p++) {
        int hi, lo;
        char c = *p;
        if (url && c == '%' && (hi = hexval(p[1])) >= 0 && (lo = hexval(p[2])) >= 0) {
            c = (char)(hi * 16 + lo);
            p += 2;
        }
        if (c == '\0')
            return dms_error_set(err, DMS_E_INVALID, field, "%s must not contain a NUL byte", field);
        if (o + 1 >= size)
            return dms_error_set(err, DMS_E_INVALID, field, "%s is too long a path", field);
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* What follows root's spelling in path ("." for the root itself), or NULL when path is not beneath it. */
static const char *beneath(const char *path, const char *root)
{
    size_t n = strlen(root);
    if (strcmp(root, "/") == 0)
        return path[1] ? path + 1 : ".";
    if (strncmp(path, root, n) != 0 || (path[n] != '/' && path[n] != '\0'))
        return NULL;
    while (path[n] == '/')
        n++;
    return path[n] ? path + n : ".";
}

static bool within(const char *real, const char *dir)
{
    return beneath(real, dir) != NULL;
}

/* openat2(RESOLVE_BENEATH) of rest from the root: the directory's fd, or -errno. */
static int open_beneath(const char *root_real, const char *rest)
{
    int rootfd = open(root_real, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return -errno;
    struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                           .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
    long fd = -1;
    for (int i = 0; i < OPENAT2_EAGAIN_RETRIES; i++)
        if ((fd = syscall(SYS_openat2, rootfd, rest, &how, sizeof(how))) >= 0 || errno != EAGAIN)
            break;
    int e = errno;
    if (fd < 0 && (e == ENOSYS || e == EPERM)) {
        /* No openat2 (a kernel before 5.6, a seccomp profile, valgrind): a walk of one O_NOFOLLOW component
         * at a time, which refuses every symlink beneath the root rather than only those leading out of it.
         */
        fd = dmsu_open_beneath(rootfd, rest, O_PATH | O_DIRECTORY);
        e = fd < 0 ? (int)-fd : 0;
    }
    close(rootfd);
    return fd >= 0 ? (int)fd : -e;
}

static int forbidden(const char *field, const char *repo, const char *why, dms_error *err)
{
    return dms_error_set(
        err, DMS_E_FORBIDDEN, field,
        "%s %s: %s; the operator lists the directories local repositories may come from in %s", field, repo,
        why, LOCALREPO_ROOTS_SETTING);
}

/* The real path of the directory behind fd, checked to lie beneath root and outside the data dir. */
static int real_path_of(const localrepo_policy *p, const localrepo_root *root, int fd, const char *repo,
                        const char *field, char *out, size_t size, dms_error *err)
{
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, size - 1);
    if (n < 0 || (size_t)n >= size - 1)
        return dms_error_set_errno(err, DMS_E_IO, errno ? errno : ENAMETOOLONG, "resolve %s", repo);
    out[n] = '\0';
    if (out[0] != '/' || !within(out, root->real))
        return forbidden(field, repo, "it is not beneath a permitted directory", err);
    if (p->data_dir && within(out, p->data_dir))
        return forbidden(field, repo, "it is inside dmsd's data directory", err);
    return 0;
}

int localrepo_resolve(const localrepo_policy *p, const char *repo, const char *field, char *path, size_t size,
                      dms_error *err)
{
    if (!p->n_roots)
        return dms_error_set(err, DMS_E_FORBIDDEN, field,
                             "%s %s: local repositories (a path or file:// URL) are off; the operator allows "
                             "them beneath the directories listed in %s",
                             field, repo, LOCALREPO_ROOTS_SETTING);
    char want[PATH_MAX];
    int r = repo_path(repo, field, want, sizeof(want), err);
    if (r < 0)
        return r;
    int last = -EXDEV;
    for (size_t i = 0; i < p->n_roots; i++) {
        const char *rest = beneath(want, p->roots[i].spelling);
        if (!rest && !(rest = beneath(want, p->roots[i].real)))
            continue;
        int fd = open_beneath(p->roots[i].real, rest);
        if (fd >= 0) {
            r = real_path_of(p, &p->roots[i], fd, repo, field, path, size, err);
            close(fd);
            return r;
        }
        if (last == -EXDEV || fd == -ENOENT || fd == -ENOTDIR)
            last = fd;
    }
    switch (-last) {
    case ENOENT:
    case ENOTDIR:
        return dms_error_set(err, DMS_E_NOT_FOUND, field, "%s %s: no such repository", field, repo);
    case EXDEV:
    case ELOOP:
        return forbidden(field, repo,
                         "it is not beneath a permitted directory once symlinks and .. are resolved", err);
    default:
        return dms_error_set(err, DMS_E_INVALID, field, "%s %s: cannot open it: %s", field, repo,
                             strerror(-last));
    }
}

int localrepo_file_url(const char *path, char *url, size_t size, dms_error *err)
{
    size_t o = 0;
    int n = snprintf(url, size, FILE_SCHEME);
    if (n < 0 || (size_t)n >= size)
        return dms_error_set(err, DMS_E_INVALID, NULL, "no room for a file:// URL");
    o = (size_t)n;
    for (const unsigned char *c = (const unsigned char *)path; *c; c++) {
        bool safe = strchr(URL_SAFE, *c) != NULL;
        if (o + (safe ? 1 : 3) >= size)
            return dms_error_set(err, DMS_E_INVALID, NULL, "path %s is too long for a file:// URL", path);
        if (safe)
            url[o++] = (char)*c;
        else
            o += (size_t)snprintf(url + o, size - o, "%%%02X", *c);
    }
    url[o] = '\0';
    return 0;
}
