/* executor/registry.h - private: the registry's structures, shared by registry.c and executor.c. */
#ifndef DMS_REGISTRY_PRIV_H
#define DMS_REGISTRY_PRIV_H

#include <pthread.h>

#include <dms/plugin.h>

typedef struct dms_plugin {
    char name[64];
    char *path;
    void *dl;
    const dms_executor_ops *ops;
    int users; /* open executors using it; dlclose only when 0 */
    struct dms_plugin *next;
} dms_plugin;

struct dms_registry {
    char *dir;
    pthread_mutex_t lock; /* guards plugins, executors and their refcounts */
    dms_plugin *plugins;
    dms_executor *executors; /* open ones, for the one-object-per-id rule */
    int alive;               /* executors opened and not yet destroyed (counted until destroy has returned) */
    bool closed;             /* dms_registry_close() was called: freed when the last executor is destroyed */
};

/* Frees the registry and unloads its plugins; no executor may be open. */
void dms_registry_free(dms_registry *reg);

/* Finds or loads a plugin by backend name; registry lock held by the caller. */
int dms_registry_load(dms_registry *reg, const char *name, dms_plugin **out, dms_error *err);

#endif
