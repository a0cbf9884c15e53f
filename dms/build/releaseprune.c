/* releaseprune.c - old releases' images removed, and what a compose build leaves (see releaseprune.h). */
#include "releaseprune.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dms/backend.h>

#include "../common.h"
#include "../compose/release.h"
#include "srchash.h"

/* Removes image of a pruned release unless a kept one still uses it (a compose service reuses its image while
 * its inputs do not change: srchash.h); what the engine refuses goes to the collector. True when it went
 * there. */
bool releaseprune_remove(const builder_deps *dep, const char *droid_id, const char *image,
                         char *const *in_use)
{
    if (!image || dmsu_strv_contains(in_use, image))
        return false;
    dms_error e = {0};
    int r = dms_executor_remove_image(dep->ex, image, &e);
    if (r == 0 || r == -DMS_E_NOT_FOUND || r == -DMS_E_NOT_OURS)
        return false;
    log_warn("droid=%s op=prune image=%s error=\"%s\" note=\"retried by the image collector\"", droid_id,
             image, e.message);
    store_gc_add(dep->st, image, droid_id, NULL);
    return true;
}

/* An orphaned compose build's images (its droid is being deleted, which removes the releases' others). */
void releaseprune_built_of(const builder_deps *dep, const char *droid_id, const char *compose_json)
{
    char **built = compose_release_built(compose_json);
    for (size_t i = 0; built && built[i]; i++)
        releaseprune_remove(dep, droid_id, built[i], NULL);
    dmsu_strv_free(built);
}

/* Every image a release uses: its own and, for a compose release, every service's it built. */
static void add_images(char ***v, const store_release *rel)
{
    if (rel->image_id)
        dmsu_strv_push(v, rel->image_id);
    char **built = rel->compose_json ? compose_release_built(rel->compose_json) : NULL;
    for (size_t i = 0; built && built[i]; i++)
        dmsu_strv_push(v, built[i]);
    dmsu_strv_free(built);
}

/* The copies of repository paths a release's services mount (bindcopy.h), by their digest (the directory
 * name beneath binds/). */
static void add_binds(char ***v, const store_release *rel)
{
    json_t *doc = rel->compose_json ? json_loads(rel->compose_json, 0, NULL) : NULL;
    const char *name;
    json_t *svc, *p;
    size_t i;
    json_object_foreach(json_object_get(doc, "services"), name, svc)
    {
        json_array_foreach(json_object_get(svc, "binds"), i, p)
        {
            const char *at = json_string_value(p) ? strstr(json_string_value(p), "/binds/") : NULL;
            char hex[SRCHASH_HEX + 1];
            if (at && strlen(at + 7) >= SRCHASH_HEX) {
                snprintf(hex, sizeof(hex), "%s", at + 7);
                dmsu_strv_push(v, hex);
            }
        }
    }
    json_decref(doc);
}

/* Removes the copies no kept release mounts any more (and a copy a crashed build left half made). */
static void sweep_binds(const builder_deps *dep, const char *droid_id, char *const *in_use)
{
    char dir[PATH_MAX], path[PATH_MAX + 80];
    if (dmsd_droid_dir(dep->data_dir, droid_id, dir, sizeof(dir)) < 0)
        return;
    size_t n = strlen(dir);
    snprintf(dir + n, sizeof(dir) - n, "/binds");
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
            dmsu_strv_contains(in_use, e->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        dms_rm_rf(path, NULL);
        log_info("droid=%s op=prune bind=%s", droid_id, e->d_name);
    }
    if (d)
        closedir(d);
}

/* Removes images of releases beyond the newest keep_releases, never the one that runs or is wanted, nor one a
 * kept release still uses. */
void releaseprune_run(const builder_deps *dep, const char *droid_id)
{
    _cleanup_strv_ char **binds_in_use = calloc(1, sizeof(char *));
    droid *d = core_get_copy(dep->core, droid_id);
    store_release *rel = NULL;
    size_t n = 0;
    if (!d || store_releases_list(dep->st, droid_id, &rel, &n, NULL) < 0) {
        droid_free(d);
        return;
    }
    bool *prune = calloc(n + 1, sizeof(*prune));
    _cleanup_strv_ char **in_use = calloc(1, sizeof(char *));
    size_t kept = 0;
    for (size_t i = 0; prune && in_use && i < n; i++) {
        if (rel[i].image_removed)
            continue;
        bool protected_ = rel[i].seq == d->want_release || (d->run_id && rel[i].seq == d->run_release);
        if (kept < (size_t)dep->cfg.keep_releases || protected_) {
            kept++;
            add_images(&in_use, &rel[i]);
            add_binds(&binds_in_use, &rel[i]);
        } else {
            prune[i] = true;
        }
    }
    bool gc = false;
    for (size_t i = 0; prune && in_use && i < n; i++) {
        if (!prune[i])
            continue;
        char **mine = calloc(1, sizeof(char *));
        if (mine)
            add_images(&mine, &rel[i]);
        for (size_t k = 0; mine && mine[k]; k++)
            gc |= releaseprune_remove(dep, droid_id, mine[k], in_use);
        dmsu_strv_free(mine);
        /* Marked removed even if the engine refused (the release cannot be rolled back to any more); the
         * collector retries. */
        store_release_mark_removed(dep->st, droid_id, rel[i].seq, NULL);
        log_info("droid=%s op=prune release=%lld image=%s", droid_id, (long long)rel[i].seq, rel[i].image_id);
    }
    free(prune);
    if (in_use && binds_in_use)
        sweep_binds(dep, droid_id, binds_in_use);
    store_releases_free(rel, n);
    droid_free(d);
    if (gc && dep->runner)
        runner_collect_images(dep->runner);
}
