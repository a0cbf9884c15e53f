/* cli/dmsctl_api.c - dmsctl's calls to dmsd and what they print (see dmsctl.h). */
#include "dmsctl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PAGE_ROWS  1000 /* rows asked of each page of a list (dmsd's most) */
#define LIST_PAGES 100  /* pages a list command reads before it says there is more and stops */

ctl_conn conn;
bool json_out;

/* ---- output helpers ---- */

int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dmsctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        puts(s);
        free(s);
    }
}

const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

int finish(json_t *j, void (*human)(json_t *))
{
    if (json_out)
        print_json(j);
    else
        human(j);
    json_decref(j);
    return 0;
}

/* "K=V" into obj; returns -1 on a missing '='. */
int put_kv(json_t *obj, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return -1;
    char *k = strndup(kv, (size_t)(eq - kv));
    json_object_set_new(obj, k, json_string(eq + 1));
    free(k);
    return 0;
}

void print_snooze(json_t *sn)
{
    if (!json_is_object(sn)) {
        printf("snooze:     none\n");
        return;
    }
    printf("snooze:     %s", json_is_true(json_object_get(sn, "asleep")) ? "asleep" : "awake");
    size_t i;
    json_t *w;
    json_array_foreach(json_object_get(sn, "windows"), i, w)
    {
        printf("%s %s-%s %s", i ? "," : "; windows", str(w, "from"), str(w, "to"), str(w, "tz"));
    }
    printf("; idle timeout %llds\n", (long long)json_integer_value(json_object_get(sn, "idle_timeout_s")));
    if (json_is_string(json_object_get(sn, "next_wake_at")))
        printf("next wake:  %s\n", str(sn, "next_wake_at"));
    if (json_is_string(json_object_get(sn, "next_sleep_at")))
        printf("next sleep: %s\n", str(sn, "next_sleep_at"));
}

void print_droid(json_t *d)
{
    printf("id:         %s\nname:       %s\nstatus:     %s\nreason:     %s\nrepo:       %s\nbranch:     %s\n",
           str(d, "id"), str(d, "name"), str(d, "status"), str(d, "reason"), str(d, "repo"),
           str(d, "branch"));
    json_t *rel = json_object_get(d, "release");
    if (json_is_integer(rel))
        printf("release:    %lld (commit %.12s)\n", (long long)json_integer_value(rel), str(d, "commit_sha"));
    else
        printf("release:    -\n");
    printf("port:       %lld\nurl:        %s\n", (long long)json_integer_value(json_object_get(d, "port")),
           str(d, "url"));
    if (json_is_string(json_object_get(d, "route_url")))
        printf("route:      %s\n", str(d, "route_url"));
    json_t *env = json_object_get(d, "env");
    if (json_object_size(env)) {
        printf("env:       ");
        const char *k;
        json_t *v;
        json_object_foreach(env, k, v)
        {
            printf(" %s=%s", k, json_string_value(v));
        }
        printf("\n");
    }
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(d, "volumes"), i, v)
    {
        printf("volume:     %s -> %s\n", str(v, "name"), str(v, "mount_path"));
    }
    json_array_foreach(json_object_get(d, "services"), i, v)
    {
        json_t *code = json_object_get(v, "exit_code");
        printf("service:    %-20s %-10s restarts %lld", str(v, "name"), str(v, "status"),
               (long long)json_integer_value(json_object_get(v, "restarts")));
        if (json_is_integer(code))
            printf(", exit code %lld", (long long)json_integer_value(code));
        printf("%s\n", json_is_true(json_object_get(v, "routed")) ? " (routed)" : "");
    }
    json_t *sn = json_object_get(d, "snooze");
    if (json_is_object(sn))
        print_snooze(sn);
    printf("updated:    %s\n", str(d, "updated_at"));
}

/* ---- the API ---- */

/* One API call; on an error status prints {"error","field"} and returns NULL with *rc set. next (may be
 * NULL) gets the X-Next-Cursor of a list's page, or "". */
static json_t *api_page(const char *method, const char *path, json_t *body, int *rc, char *next, size_t size)
{
    char *b = body ? json_dumps(body, JSON_COMPACT) : NULL;
    ctl_resp r;
    int t = ctl_request(&conn, method, path, b, false, &r);
    if (next)
        snprintf(next, size, "%s", r.next_cursor);
    free(b);
    if (t < 0) {
        *rc = fail(EXIT_API, "%s (is dmsd running? DMS_URL=%s)", r.error, conn.url);
        ctl_resp_clear(&r);
        return NULL;
    }
    json_t *j = r.len ? json_loadb(r.body, r.len, 0, NULL) : json_object();
    if (r.status >= 400) {
        const char *field = json_string_value(json_object_get(j, "field"));
        const char *msg = json_string_value(json_object_get(j, "error"));
        *rc = fail(EXIT_API, "%s%s%s%s (HTTP %ld)", msg ? msg : r.body, field ? " [" : "", field ? field : "",
                   field ? "]" : "", r.status);
        json_decref(j);
        ctl_resp_clear(&r);
        return NULL;
    }
    ctl_resp_clear(&r);
    if (!j)
        *rc = fail(EXIT_API, "the server's answer is not JSON");
    return j;
}

json_t *api(const char *method, const char *path, json_t *body, int *rc)
{
    return api_page(method, path, body, rc, NULL, 0);
}

/* A page's rows: the array itself, or koalaCI's "data" (GET /jobs). */
static json_t *rows_of(json_t *page)
{
    return json_is_array(page) ? page : json_object_get(page, "data");
}

/* A whole list: page after page, each from the cursor the one before gave (X-Next-Cursor), its rows added to
 * the first page's. After LIST_PAGES pages it says there is more and stops. */
json_t *api_list(const char *path, int *rc)
{
    char url[512], next[128];
    snprintf(url, sizeof(url), "%s?limit=%d", path, PAGE_ROWS);
    json_t *all = api_page("GET", url, NULL, rc, next, sizeof(next));
    for (int pages = 1; all && next[0]; pages++) {
        if (pages == LIST_PAGES) {
            fprintf(stderr, "dmsctl: showing the first %d rows; there are more\n", LIST_PAGES * PAGE_ROWS);
            break;
        }
        char *after = ctl_escape(next);
        snprintf(url, sizeof(url), "%s?limit=%d&after=%s", path, PAGE_ROWS, after ? after : "");
        free(after);
        json_t *page = api_page("GET", url, NULL, rc, next, sizeof(next));
        if (!page || !json_is_array(rows_of(page)) || !json_is_array(rows_of(all))) {
            json_decref(page);
            json_decref(all);
            return NULL;
        }
        json_array_extend(rows_of(all), rows_of(page));
        json_decref(page);
    }
    if (json_is_object(all))
        json_object_del(all, "next_cursor"); /* it said where the first page ended */
    return all;
}

/* An id ("d" + 12 hex) as it is, else a name looked up in the user's droids. */
int resolve(const char *ref, char *id, size_t size)
{
    int rc = 0;
    json_t *list = api_list("/droids", &rc);
    if (!list)
        return rc;
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d)
    {
        if (strcmp(str(d, "id"), ref) == 0 || strcmp(str(d, "name"), ref) == 0) {
            snprintf(id, size, "%s", str(d, "id"));
            json_decref(list);
            return 0;
        }
    }
    json_decref(list);
    return fail(EXIT_API, "no droid named or with id \"%s\"", ref);
}

int one_droid(const char *cmd, int argc, char **argv, char *id, size_t size)
{
    if (argc != 2)
        return usage_of(cmd, stderr, EXIT_USAGE);
    return resolve(argv[1], id, size);
}
