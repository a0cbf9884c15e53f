/* registry.c - finds backend plugins (libdms-executor-<name>.so) in a directory, loads them with dlopen,
 * checks their ABI, and hands out one executor object per (backend, id): crun's handler manager is the model.
 */
#include <dms/plugin.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "registry.h"
#include "util.h"

#define PLUGIN_PREFIX    "libdms-executor-"
#define PLUGIN_SUFFIX    ".so"
#define BACKEND_NAME_MAX 32

#ifndef DMS_BUILD_PLUGIN_DIR
#define DMS_BUILD_PLUGIN_DIR ""
#endif
#ifndef DMS_INSTALL_PLUGIN_DIR
#define DMS_INSTALL_PLUGIN_DIR "/usr/local/lib/dms/plugins"
#endif

static bool is_dir(const char *p)
{
    struct stat st;
    return p && *p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool backend_name_valid(const char *s)
{
    if (!s || !*s || strlen(s) > BACKEND_NAME_MAX)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' || *p == '-'))
            return false;
    return true;
}

/* The plugins that belong to this very library: <build>/lib/libdms-executor.so has them in <build>/plugins,
 * an installed <libdir>/libdms-executor.so in <libdir>/dms/plugins. Found from where the library was loaded,
 * so a library installed with another PREFIX (or moved) does not reach for the build tree it was compiled in.
 */
static bool plugins_beside_library(char *buf, size_t size)
{
    Dl_info info;
    if (!dladdr((void *)plugins_beside_library, &info) || !info.dli_fname || !strchr(info.dli_fname, '/'))
        return false;
    char real[PATH_MAX];
    if (!realpath(info.dli_fname, real))
        return false;
    *strrchr(real, '/') = '\0'; /* the library's directory */
    static const char *const rel[] = {"/../plugins", "/dms/plugins"};
    for (size_t i = 0; i < sizeof(rel) / sizeof(rel[0]); i++) {
        char p[PATH_MAX + 16];
        snprintf(p, sizeof(p), "%s%s", real, rel[i]);
        if (is_dir(p) && realpath(p, buf) && strlen(buf) < size)
            return true;
    }
    return false;
}

int dms_registry_open(dms_registry **out, const char *plugin_dir, dms_error *err)
{
    const char *dir = plugin_dir;
    const char *why = "argument";
    if (!dir || !*dir) {
        dir = getenv("DMS_PLUGIN_DIR");
        why = "DMS_PLUGIN_DIR";
    }
    char beside[PATH_MAX];
    if (dir && *dir) {
        if (!is_dir(dir))
            return dms_error_set(err, DMS_E_PLUGIN, NULL, "plugin directory %s (from %s) does not exist", dir,
                                 why);
    } else if (plugins_beside_library(beside, sizeof(beside))) {
        dir = beside;
    } else if (is_dir(DMS_BUILD_PLUGIN_DIR)) {
        dir = DMS_BUILD_PLUGIN_DIR;
    } else if (is_dir(DMS_INSTALL_PLUGIN_DIR)) {
        dir = DMS_INSTALL_PLUGIN_DIR;
    } else {
        return dms_error_set(
            err, DMS_E_PLUGIN, NULL, "no plugin directory: set DMS_PLUGIN_DIR (looked in %s and %s)",
            *DMS_BUILD_PLUGIN_DIR ? DMS_BUILD_PLUGIN_DIR : "(no build dir)", DMS_INSTALL_PLUGIN_DIR);
    }
    dms_registry *reg = calloc(1, sizeof(*reg));
    if (!reg || !(reg->dir = strdup(dir))) {
        free(reg);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    pthread_mutex_init(&reg->lock, NULL);
    *out = reg;
    return 0;
}

const char *dms_registry_dir(const dms_registry *reg)
{
    return reg->dir;
}

void dms_registry_free(dms_registry *reg)
{
    dms_plugin *p = reg->plugins;
    while (p) {
        dms_plugin *next = p->next;
        if (p->dl)
            dlclose(p->dl);
        free(p->path);
        free(p);
        p = next;
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg->dir);
    free(reg);
}

void dms_registry_close(dms_registry *reg)
{
    if (!reg)
        return;
    /* Executors still open keep the registry (and their plugin's code) alive: it goes with the last of them.
     */
    pthread_mutex_lock(&reg->lock);
    reg->closed = true;
    bool in_use = reg->alive > 0;
    pthread_mutex_unlock(&reg->lock);
    if (!in_use)
        dms_registry_free(reg);
}

/* Loads and checks one plugin file. On success *ops and *dl are set; the caller dlcloses. */
static int load_file(const char *path, const char *expect_name, void **dl_out,
                     const dms_executor_ops **ops_out, dms_error *err)
{
    dlerror();
    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        const char *e = dlerror();
        return dms_error_set(err, DMS_E_PLUGIN, NULL, "cannot load plugin %s: %s", path,
                             e ? e : "unknown error");
    }
    dlerror();
    void *sym = dlsym(dl, DMS_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        dlclose(dl);
        return dms_error_set(
            err, DMS_E_PLUGIN, NULL,
            "plugin %s does not export %s: it is not a dms executor plugin (or was built with "
            "-fvisibility=hidden and no DMS_PLUGIN_EXPORT)",
            path, DMS_PLUGIN_ENTRY_SYMBOL);
    }
    dms_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof(entry)); /* object pointer to function pointer, the POSIX way */
    const dms_executor_ops *ops = entry();
    int r = 0;
    if (!ops)
        r = dms_error_set(err, DMS_E_PLUGIN, NULL, "plugin %s: %s() returned NULL", path,
                          DMS_PLUGIN_ENTRY_SYMBOL);
    else if (ops->abi_version != DMS_EXECUTOR_ABI_VERSION)
        r = dms_error_set(err, DMS_E_PLUGIN, NULL,
                          "plugin %s has ABI version %u, this dms needs %u: rebuild the plugin against this "
                          "dms (executor/interface/dms/plugin.h)",
                          path, ops->abi_version, DMS_EXECUTOR_ABI_VERSION);
    else if (ops->size < sizeof(dms_executor_ops))
        r = dms_error_set(err, DMS_E_PLUGIN, NULL,
                          "plugin %s has an ops table of %u bytes, this dms needs %zu: rebuild the plugin",
                          path, ops->size, sizeof(dms_executor_ops));
    else if (!ops->name || (expect_name && strcmp(ops->name, expect_name) != 0))
        r = dms_error_set(err, DMS_E_PLUGIN, NULL,
                          "plugin %s calls itself \"%s\", but its file name says \"%s\"", path,
                          ops->name ? ops->name : "(null)", expect_name ? expect_name : "?");
    else if (!ops->create || !ops->destroy || !ops->is_installed || !ops->start || !ops->subscribe ||
             !ops->cancel || !ops->log_stream || !ops->cleanup)
        r = dms_error_set(err, DMS_E_PLUGIN, NULL,
                          "plugin %s lacks a required operation (create, destroy, "
                          "is_installed, start, subscribe, cancel, log_stream, cleanup)",
                          path);
    if (r < 0) {
        dlclose(dl);
        return r;
    }
    *dl_out = dl;
    *ops_out = ops;
    return 0;
}

static int list_names(const char *dir, char ***names, dms_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return dms_error_set_errno(err, DMS_E_PLUGIN, errno, "open plugin directory %s", dir);
    char **v = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t n = strlen(de->d_name), pl = strlen(PLUGIN_PREFIX), sl = strlen(PLUGIN_SUFFIX);
        if (n <= pl + sl || strncmp(de->d_name, PLUGIN_PREFIX, pl) != 0 ||
            strcmp(de->d_name + n - sl, PLUGIN_SUFFIX) != 0)
            continue;
        char name[BACKEND_NAME_MAX + 1];
        size_t nl = n - pl - sl;
        if (nl > BACKEND_NAME_MAX)
            continue;
        memcpy(name, de->d_name + pl, nl);
        name[nl] = '\0';
        if (dmsu_strv_push(&v, name) < 0) {
            closedir(d);
            dmsu_strv_free(v);
            return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
        }
    }
    closedir(d);
    /* Sorted, for stable listings. */
    size_t n = dmsu_strv_len(v);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(v[j - 1], v[j]) > 0; j--) {
            char *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    *names = v;
    return 0;
}

int dms_registry_list(dms_registry *reg, dms_backend_info **out, size_t *n_out, dms_error *err)
{
    _cleanup_strv_ char **names = NULL;
    int r = list_names(reg->dir, &names, err);
    if (r < 0)
        return r;
    size_t n = dmsu_strv_len(names);
    dms_backend_info *infos = calloc(n ? n : 1, sizeof(*infos));
    if (!infos)
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < n; i++) {
        dms_backend_info *bi = &infos[i];
        snprintf(bi->name, sizeof(bi->name), "%s", names[i]);
        snprintf(bi->path, sizeof(bi->path), "%s/" PLUGIN_PREFIX "%s" PLUGIN_SUFFIX, reg->dir, names[i]);
        void *dl = NULL;
        const dms_executor_ops *ops = NULL;
        dms_error e = {0};
        if (load_file(bi->path, names[i], &dl, &ops, &e) == 0) {
            bi->loadable = true;
            bi->abi_version = ops->abi_version;
            snprintf(bi->description, sizeof(bi->description), "%s",
                     ops->description ? ops->description : "");
            dlclose(dl);
        } else {
            snprintf(bi->description, sizeof(bi->description), "%s", e.message);
        }
    }
    *out = infos;
    *n_out = n;
    return 0;
}

int dms_registry_load(dms_registry *reg, const char *name, dms_plugin **out, dms_error *err)
{
    if (!backend_name_valid(name))
        return dms_error_set(err, DMS_E_INVALID, "backend",
                             "backend name \"%.40s\" must be 1-%d characters of [a-z0-9_-]", name ? name : "",
                             BACKEND_NAME_MAX);
    for (dms_plugin *p = reg->plugins; p; p = p->next)
        if (strcmp(p->name, name) == 0) {
            *out = p;
            return 0;
        }
    char path[PATH_MAX];
    if (dmsu_snprintf_ok(path, sizeof(path), "%s/" PLUGIN_PREFIX "%s" PLUGIN_SUFFIX, reg->dir, name) < 0)
        return dms_error_set(err, DMS_E_INVALID, NULL, "plugin path too long");
    struct stat st;
    if (stat(path, &st) != 0) {
        _cleanup_strv_ char **names = NULL;
        dms_error e2;
        dmsu_buf found = {0};
        if (list_names(reg->dir, &names, &e2) == 0)
            for (size_t i = 0; names && names[i]; i++)
                dmsu_buf_printf(&found, "%s%s", i ? ", " : "", names[i]);
        int r = dms_error_set(err, DMS_E_NOT_FOUND, "backend",
                              "no backend \"%s\": %s does not exist (available: %s)", name, path,
                              found.data && *found.data ? found.data : "none");
        dmsu_buf_free(&found);
        return r;
    }
    dms_plugin *p = calloc(1, sizeof(*p));
    if (!p || !(p->path = strdup(path))) {
        free(p);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    int r = load_file(path, name, &p->dl, &p->ops, err);
    if (r < 0) {
        free(p->path);
        free(p);
        return r;
    }
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->next = reg->plugins;
    reg->plugins = p;
    *out = p;
    return 0;
}
