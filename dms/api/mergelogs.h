/* api/mergelogs.h - GET /droids/:id/logs of a compose droid without ?service= and ?run=: the latest run of
 * each of its services (at most LOGMERGE_MAX_SOURCES), merged by time and tagged with the service
 * (logmerge.h says how, and why its paging neither repeats nor skips a line). */
#ifndef DMSD_API_MERGELOGS_H
#define DMSD_API_MERGELOGS_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"
#include "logpage.h"

struct app;

/* The runtime logs query, as logs.c parsed and checked it. */
typedef struct logs_query {
    long long tail;  /* < 0: all history */
    long long from;  /* exclusive; 0: none */
    long long limit; /* lines of a page (no follow) */
    bool follow;
    log_fmt fmt;
    const char *ctype;
    size_t max_bytes; /* of a page */
} logs_query;

/* Replies to r with the merged logs when droid id is a compose droid (it has services, or its latest run is a
 * service's): 1. 0 when it is not (nothing replied: the caller serves its one run). */
int mergelogs_reply(struct app *a, api_req *r, const char *id, const logs_query *q);

#endif
