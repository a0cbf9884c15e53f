/* releaseprune.c - old releases' images removed, and what a compose build leaves (see releaseprune.h). */
#include "releaseprune.h"

#include <stdlib.h>
#include <string.h>

#include <dms/backend.h>

#include "../common.h"
#include "../compose/release.h"

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

/* Removes images of releases beyond the newest keep_releases, never the one that runs or is wanted, nor one a
 * kept release still uses. */
void releaseprune_run(const builder_deps *dep, const char *droid_id)
{
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
    store_releases_free(rel, n);
    droid_free(d);
    if (gc && dep->runner)
        runner_collect_images(dep->runner);
}
