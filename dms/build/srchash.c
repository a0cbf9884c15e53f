/* srchash.c - a digest of a compose service's build inputs (see srchash.h). */
#include "srchash.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct walk {
    EVP_MD_CTX *md;
    long entries;
} walk;

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void feed(walk *w, const void *p, size_t n)
{
    EVP_DigestUpdate(w->md, p, n);
}

static void feed_str(walk *w, const char *s)
{
    feed(w, s, strlen(s) + 1);
}

/* A regular file's content, read through fd (opened O_NOFOLLOW by the caller). */
static int feed_file(walk *w, int fd)
{
    char buf[65536];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        feed(w, buf, (size_t)n);
    return n < 0 ? -1 : 0;
}

static int walk_dir(walk *w, int dir, const char *rel, int depth);

/* One entry of dir: its name, type, mode and size, then its content, link target or tree. */
static int walk_entry(walk *w, int dir, const char *rel, const char *name, int depth)
{
    struct stat st;
    if (++w->entries > SRCHASH_MAX_ENTRIES || fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return -1;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", rel, name);
    char meta[96];
    snprintf(meta, sizeof(meta), "%o %lld", (unsigned)st.st_mode, (long long)st.st_size);
    feed_str(w, path);
    feed_str(w, meta);
    if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = readlinkat(dir, name, target, sizeof(target) - 1);
        if (n < 0)
            return -1;
        feed(w, target, (size_t)n);
        return 0;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        return 0;
    int fd = openat(dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0));
    if (fd < 0)
        return -1;
    int r = S_ISDIR(st.st_mode) ? walk_dir(w, fd, path, depth + 1) : feed_file(w, fd);
    close(fd);
    return r;
}

/* The names in dir, sorted (so the digest does not depend on the directory's order). Caller frees. */
static char **sorted_names(int dir, size_t *n)
{
    int fd = dup(dir);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    char **v = NULL;
    size_t cap = 0;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (*n + 1 >= cap) {
            cap = cap ? cap * 2 : 32;
            char **nv = realloc(v, cap * sizeof(*v));
            if (!nv)
                break;
            v = nv;
        }
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (v)
        qsort(v, *n, sizeof(*v), name_cmp);
    return v;
}

static int walk_dir(walk *w, int dir, const char *rel, int depth)
{
    if (depth > SRCHASH_MAX_DEPTH)
        return -1;
    size_t n = 0;
    char **names = sorted_names(dir, &n);
    int r = names || n == 0 ? 0 : -1;
    for (size_t i = 0; i < n; i++) {
        if (r == 0 && (!names[i] || walk_entry(w, dir, rel, names[i], depth) < 0))
            r = -1;
        free(names[i]);
    }
    free(names);
    return r;
}

/* A new digest; false when the library cannot make one. */
static bool begin(walk *w)
{
    w->md = EVP_MD_CTX_new();
    return w->md && EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) == 1;
}

/* Ends the digest into out as hex (r: the walk's result so far); frees it. r, or -1 with out "". */
static int finish(walk *w, int r, char out[SRCHASH_HEX + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (r == 0 && (EVP_DigestFinal_ex(w->md, md, &len) != 1 || len * 2 > SRCHASH_HEX))
        r = -1;
    EVP_MD_CTX_free(w->md);
    out[0] = '\0';
    for (unsigned i = 0; r == 0 && i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return r;
}

int srchash_context(int ctx, const char *dockerfile, char *const *args, const char *target,
                    char out[SRCHASH_HEX + 1])
{
    walk w = {0};
    if (!begin(&w))
        return finish(&w, -1, out);
    feed_str(&w, dockerfile ? dockerfile : "");
    for (char *const *a = args; a && *a; a++)
        feed_str(&w, *a);
    feed_str(&w, target ? target : "");
    return finish(&w, walk_dir(&w, ctx, ".", 0), out);
}

int srchash_file(int fd, unsigned mode, char out[SRCHASH_HEX + 1])
{
    walk w = {0};
    if (!begin(&w))
        return finish(&w, -1, out);
    char meta[32];
    snprintf(meta, sizeof(meta), "file %o", mode & 07777);
    feed_str(&w, meta);
    return finish(&w, feed_file(&w, fd), out);
}
