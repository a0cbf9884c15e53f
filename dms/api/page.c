/* page.c - paged list routes (see page.h). */
#include "page.h"

#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "<ns>.<id>", the id as dmsd makes them ([a-z0-9]); anything else is not a cursor of ours. */
static bool parse_time_id(const char *s, dmsd_cursor *c)
{
    const char *dot = strchr(s, '.');
    if (!dot || dot == s || (size_t)(dot - s) > 19)
        return false;
    char num[20];
    memcpy(num, s, (size_t)(dot - s));
    num[dot - s] = '\0';
    const char *id = dot + 1;
    size_t n = strlen(id);
    if ((c->n = dmsu_parse_i64(num)) < 0 || n == 0 || n >= sizeof(c->id) ||
        strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789") != n)
        return false;
    memcpy(c->id, id, n + 1);
    return true;
}

int api_page_parse(api_req *r, int default_limit, api_cursor_kind kind, dmsd_page *pg, dms_error *err)
{
    memset(pg, 0, sizeof(*pg));
    long long limit = 0;
    int rc = api_query_i64(r, "limit", API_PAGE_MAX, &limit, err);
    if (rc < 0)
        return rc;
    pg->limit = limit > 0 ? (int)limit : default_limit > 0 ? default_limit : API_PAGE_DEFAULT;
    const char *after = api_query(r, "after");
    if (!after)
        return 0;
    pg->has_after = true;
    bool ok = kind == API_CURSOR_NUMBER ? (pg->after.n = dmsu_parse_i64(after)) >= 0
                                        : parse_time_id(after, &pg->after);
    if (!ok)
        return dms_error_set(err, DMS_E_INVALID, "after",
                             "after must be the cursor a previous page gave in " API_NEXT_CURSOR " (%s)",
                             kind == API_CURSOR_NUMBER ? "a number" : "<ns>.<id>");
    return 0;
}

void api_page_trim(dmsd_page *pg, json_t *arr, const char *key)
{
    size_t n = json_array_size(arr);
    if (n <= (size_t)pg->limit)
        return;
    while (n > (size_t)pg->limit)
        json_array_remove(arr, --n);
    pg->more = n > 0;
    if (n > 0)
        pg->next.n = json_integer_value(json_object_get(json_array_get(arr, n - 1), key));
}

void api_page_cursor(const dmsd_page *pg, api_cursor_kind kind, char *buf, size_t size)
{
    if (!pg->more)
        snprintf(buf, size, "%s", "");
    else if (kind == API_CURSOR_NUMBER)
        snprintf(buf, size, "%lld", (long long)pg->next.n);
    else
        snprintf(buf, size, "%lld.%s", (long long)pg->next.n, pg->next.id);
}

void api_page_reply(api_req *r, const dmsd_page *pg, api_cursor_kind kind, json_t *body)
{
    char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!s) {
        api_reply_errorf(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL, "out of memory");
        return;
    }
    char cursor[API_CURSOR_TEXT_MAX];
    api_page_cursor(pg, kind, cursor, sizeof(cursor));
    api_reply_buf(r, MHD_HTTP_OK, "application/json", s, strlen(s), cursor[0] ? API_NEXT_CURSOR : NULL,
                  cursor[0] ? cursor : NULL);
}
