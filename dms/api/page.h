/* api/page.h - paged list routes. Every list takes `limit` (absent or 0: the operator's default,
 * DMS_PAGE_LIMIT; at most API_PAGE_MAX) and `after` (the cursor a previous page gave). A page that is not the
 * last says where the next one starts in the X-Next-Cursor header: its value, passed as `after`, gives the
 * rows that follow, none missed or repeated while rows are added (positions are ids or creation times, which
 * a new row never takes before an old one). The body stays what it was (a JSON array, or koalaCI's {"data"}).
 */
#ifndef DMSD_API_PAGE_H
#define DMSD_API_PAGE_H

#include <jansson.h>

#include <dms/error.h>

#include "../common.h"
#include "http.h"

#define API_PAGE_MAX        1000 /* rows of one page, whatever is asked */
#define API_PAGE_DEFAULT    100  /* DMS_PAGE_LIMIT's default */
#define API_NEXT_CURSOR     "X-Next-Cursor"
#define API_CURSOR_TEXT_MAX 96 /* "<ns>.<id>" */

typedef enum api_cursor_kind {
    API_CURSOR_NUMBER,  /* "<n>": an event id, a build id, a release number */
    API_CURSOR_TIME_ID, /* "<created ns>.<id>": droids, jobs */
} api_cursor_kind;

/* limit and after of the request into *pg (more and next cleared): 0, or INVALID naming the key. */
int api_page_parse(api_req *r, int default_limit, api_cursor_kind kind, dmsd_page *pg, dms_error *err);
/* A list read with pg->limit + 1 rows (the extra one tells whether more follow): trims arr to pg->limit and,
 * when it was longer, sets pg->more and pg->next.n from the integer member key of the last row kept. */
void api_page_trim(dmsd_page *pg, json_t *arr, const char *key);
/* pg->next as a cursor into buf (API_CURSOR_TEXT_MAX bytes), or "" when no page follows. */
void api_page_cursor(const dmsd_page *pg, api_cursor_kind kind, char *buf, size_t size);
/* Replies 200 with body (stolen) and, when more rows follow, X-Next-Cursor. */
void api_page_reply(api_req *r, const dmsd_page *pg, api_cursor_kind kind, json_t *body);

#endif
