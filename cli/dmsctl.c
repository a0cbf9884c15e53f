/* cli/dmsctl.c - the command line client of dmsd.
 *
 *   dmsctl [--json] <command> [options]      (dmsctl help, dmsctl <command> --help)
 *
 * Server: DMS_URL (default http://127.0.0.1:8080). Token: DMS_TOKEN, or minted from DMS_JWT_SECRET +
 * DMS_USER. A droid is named by its id or its name. Exit status: 0 done, 1 the server or the network said no,
 * 2 usage. */
#include <curl/curl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../dms/api/auth.h"
#include "dmsctl_http.h"

#define DEFAULT_URL   "http://127.0.0.1:8080"
#define TOKEN_TTL_SEC (24 * 3600)
#define EXIT_API      1
#define EXIT_USAGE    2
#define PAGE_ROWS     1000 /* rows asked of each page of a list (dmsd's most) */
#define LIST_PAGES    100  /* pages a list command reads before it says there is more and stops */

static ctl_conn conn;
static bool json_out;

typedef struct command {
    const char *name;
    const char *args;
    const char *summary;
    const char *help;
    int (*run)(int argc, char **argv);
    bool needs_server;
} command;

static const command *find_command(const char *name);

/* ---- output helpers ---- */

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("dmsctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s) {
        puts(s);
        free(s);
    }
}

static const char *str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "-";
}

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

static json_t *api(const char *method, const char *path, json_t *body, int *rc)
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
static json_t *api_list(const char *path, int *rc)
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
static int resolve(const char *ref, char *id, size_t size)
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

static void print_snooze(json_t *sn)
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

static void print_droid(json_t *d)
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
    json_t *sn = json_object_get(d, "snooze");
    if (json_is_object(sn))
        print_snooze(sn);
    printf("updated:    %s\n", str(d, "updated_at"));
}

static int finish(json_t *j, void (*human)(json_t *))
{
    if (json_out)
        print_json(j);
    else
        human(j);
    json_decref(j);
    return 0;
}

/* A --help anywhere in a command line asks for that command's help. */
static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

static int usage_of(const char *name, FILE *f, int code)
{
    const command *c = find_command(name);
    fprintf(f, "usage: dmsctl [--json] %s %s\n\n%s\n%s", c->name, c->args, c->summary, c->help);
    return code;
}

/* "K=V" into obj; returns -1 on a missing '='. */
static int put_kv(json_t *obj, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv)
        return -1;
    char *k = strndup(kv, (size_t)(eq - kv));
    json_object_set_new(obj, k, json_string(eq + 1));
    free(k);
    return 0;
}

/* ---- commands ---- */

static void human_ls(json_t *list)
{
    printf("%-14s %-20s %-9s %-7s %-24s %s\n", "ID", "NAME", "STATUS", "RELEASE", "URL", "REASON");
    size_t i;
    json_t *d;
    json_array_foreach(list, i, d)
    {
        char rel[16] = "-";
        if (json_is_integer(json_object_get(d, "release")))
            snprintf(rel, sizeof(rel), "%lld", (long long)json_integer_value(json_object_get(d, "release")));
        printf("%-14s %-20s %-9s %-7s %-24s %.60s\n", str(d, "id"), str(d, "name"), str(d, "status"), rel,
               str(d, "url"), str(d, "reason"));
    }
}

static int cmd_ls(int argc, char **argv)
{
    if (argc > 1)
        return usage_of("ls", stderr, EXIT_USAGE);
    (void)argv;
    int rc = 0;
    json_t *j = api_list("/droids", &rc);
    return j ? finish(j, human_ls) : rc;
}

static int cmd_create(int argc, char **argv)
{
    static const struct option o[] = {{"repo", required_argument, NULL, 'r'},
                                      {"branch", required_argument, NULL, 'b'},
                                      {"commit", required_argument, NULL, 'c'},
                                      {"port", required_argument, NULL, 'p'},
                                      {"env", required_argument, NULL, 'e'},
                                      {"volume", required_argument, NULL, 'v'},
                                      {"language", required_argument, NULL, 'l'},
                                      {"follow", no_argument, NULL, 'F'},
                                      {NULL, 0, NULL, 0}};
    json_t *body = json_object(), *env = json_object(), *vols = json_array();
    int c, code = 0;
    while (!code && (c = getopt_long(argc, argv, "r:b:c:p:e:v:l:", o, NULL)) != -1) {
        switch (c) {
        case 'F':
            json_object_set_new(body, "follow", json_true());
            break;
        case 'r':
            json_object_set_new(body, "repo", json_string(optarg));
            break;
        case 'b':
            json_object_set_new(body, "branch", json_string(optarg));
            break;
        case 'c':
            json_object_set_new(body, "commit", json_string(optarg));
            break;
        case 'l':
            json_object_set_new(body, "language", json_string(optarg));
            break;
        case 'p': {
            char *end;
            long p = strtol(optarg, &end, 10);
            if (*end || !*optarg)
                code = fail(EXIT_USAGE, "--port needs a number");
            json_object_set_new(body, "port", json_integer(p));
            break;
        }
        case 'e':
            if (put_kv(env, optarg) < 0)
                code = fail(EXIT_USAGE, "--env needs KEY=VALUE");
            break;
        case 'v': {
            const char *colon = strchr(optarg, ':');
            if (!colon)
                code = fail(EXIT_USAGE, "--volume needs NAME:/mount/path");
            else {
                char *name = strndup(optarg, (size_t)(colon - optarg));
                json_array_append_new(vols, json_pack("{s:s, s:s}", "name", name, "mount_path", colon + 1));
                free(name);
            }
            break;
        }
        default:
            code = EXIT_USAGE;
        }
    }
    if (!code && optind != argc - 1)
        code = usage_of("create", stderr, EXIT_USAGE);
    if (!code && !json_object_get(body, "repo"))
        code = fail(EXIT_USAGE, "create needs --repo");
    json_t *j = NULL;
    if (!code) {
        json_object_set_new(body, "name", json_string(argv[optind]));
        if (json_object_size(env))
            json_object_set(body, "env", env);
        if (json_array_size(vols))
            json_object_set(body, "volumes", vols);
        j = api("POST", "/droids", body, &code);
    }
    json_decref(body);
    json_decref(env);
    json_decref(vols);
    if (j && !json_out && json_string_value(json_object_get(j, "hook_secret")))
        printf("hook secret (shown once): %s\nhook:       POST %s%s with header X-DMS-Hook-Secret\n",
               json_string_value(json_object_get(j, "hook_secret")), conn.url,
               json_string_value(json_object_get(json_object_get(j, "hook"), "url")));
    return j ? finish(j, print_droid) : code;
}

static int one_droid(const char *cmd, int argc, char **argv, char *id, size_t size)
{
    if (argc != 2)
        return usage_of(cmd, stderr, EXIT_USAGE);
    return resolve(argv[1], id, size);
}

static int cmd_status(int argc, char **argv)
{
    char id[64], path[128];
    int rc = one_droid("status", argc, argv, id, sizeof(id));
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/droids/%s", id);
    json_t *j = api("GET", path, NULL, &rc);
    return j ? finish(j, print_droid) : rc;
}

static void human_events(json_t *list)
{
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        printf("%s  %-8s -> %-8s  %s\n", str(e, "time"),
               json_is_string(json_object_get(e, "from")) ? str(e, "from") : "", str(e, "to"),
               str(e, "reason"));
    }
}

static int cmd_events(int argc, char **argv)
{
    char id[64], path[128];
    int rc = one_droid("events", argc, argv, id, sizeof(id));
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/droids/%s/events", id);
    json_t *j = api_list(path, &rc);
    return j ? finish(j, human_events) : rc;
}

static void human_releases(json_t *list)
{
    printf("%-7s %-12s %-8s %-9s %s\n", "RELEASE", "COMMIT", "CURRENT", "IMAGE", "CREATED");
    size_t i;
    json_t *r;
    json_array_foreach(list, i, r)
    {
        printf("%-7lld %-12.12s %-8s %-9s %s\n", (long long)json_integer_value(json_object_get(r, "release")),
               str(r, "commit_sha"), json_is_true(json_object_get(r, "current")) ? "yes" : "",
               json_is_true(json_object_get(r, "image_available")) ? "kept" : "removed",
               str(r, "created_at"));
    }
}

static int cmd_releases(int argc, char **argv)
{
    char id[64], path[128];
    int rc = one_droid("releases", argc, argv, id, sizeof(id));
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/droids/%s/releases", id);
    json_t *j = api_list(path, &rc);
    return j ? finish(j, human_releases) : rc;
}

static int lifecycle(const char *cmd, int argc, char **argv, const char *action, const char *query)
{
    char id[64], path[160];
    int rc = one_droid(cmd, argc, argv, id, sizeof(id));
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/droids/%s/%s%s", id, action, query ? query : "");
    json_t *j = api("POST", path, NULL, &rc);
    return j ? finish(j, print_droid) : rc;
}

static int cmd_start(int argc, char **argv)
{
    return lifecycle("start", argc, argv, "start", NULL);
}

static int cmd_stop(int argc, char **argv)
{
    return lifecycle("stop", argc, argv, "stop", NULL);
}

static int cmd_restart(int argc, char **argv)
{
    bool force = false;
    int n = 0;
    char *args[3] = {argv[0], NULL, NULL};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0)
            force = true;
        else if (n < 1)
            args[1 + n++] = argv[i];
        else
            return usage_of("restart", stderr, EXIT_USAGE);
    }
    return lifecycle("restart", 1 + n, args, "restart", force ? "?force=1" : NULL);
}

static int cmd_rm(int argc, char **argv)
{
    bool keep = false;
    int n = 0;
    char *ref = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--keep-volumes") == 0)
            keep = true;
        else if (n++ == 0)
            ref = argv[i];
    }
    if (n != 1)
        return usage_of("rm", stderr, EXIT_USAGE);
    char id[64], path[160];
    int rc = resolve(ref, id, sizeof(id));
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/droids/%s%s", id, keep ? "?keep_volumes=1" : "");
    json_t *j = api("DELETE", path, NULL, &rc);
    if (!j)
        return rc;
    if (json_out)
        print_json(j);
    else
        printf("deleted %s\n", id);
    json_decref(j);
    return 0;
}

static int cmd_update(int argc, char **argv)
{
    static const struct option o[] = {
        {"name", required_argument, NULL, 'n'},   {"port", required_argument, NULL, 'p'},
        {"env", required_argument, NULL, 'e'},    {"unset-env", required_argument, NULL, 'u'},
        {"branch", required_argument, NULL, 'b'}, {"commit", required_argument, NULL, 'c'},
        {"unpin", no_argument, NULL, 'U'},        {NULL, 0, NULL, 0}};
    json_t *body = json_object(), *set = json_object(), *unset = json_array();
    int c, code = 0;
    while (!code && (c = getopt_long(argc, argv, "n:p:e:u:b:c:U", o, NULL)) != -1) {
        switch (c) {
        case 'n':
            json_object_set_new(body, "name", json_string(optarg));
            break;
        case 'p': {
            char *end;
            long p = strtol(optarg, &end, 10);
            if (*end || !*optarg)
                code = fail(EXIT_USAGE, "--port needs a number");
            json_object_set_new(body, "port", json_integer(p));
            break;
        }
        case 'e':
            if (put_kv(set, optarg) < 0)
                code = fail(EXIT_USAGE, "--env needs KEY=VALUE");
            break;
        case 'u':
            json_array_append_new(unset, json_string(optarg));
            break;
        case 'b':
            json_object_set_new(body, "branch", json_string(optarg));
            break;
        case 'c':
            json_object_set_new(body, "commit", json_string(optarg));
            break;
        case 'U':
            json_object_set_new(body, "commit", json_null());
            break;
        default:
            code = EXIT_USAGE;
        }
    }
    if (!code && optind != argc - 1)
        code = usage_of("update", stderr, EXIT_USAGE);
    char id[64] = "", path[128];
    if (!code)
        code = resolve(argv[optind], id, sizeof(id));
    snprintf(path, sizeof(path), "/droids/%s", id);
    json_t *j = NULL;
    if (!code && (json_object_size(set) || json_array_size(unset))) {
        /* env in the API replaces the whole map: start from the droid's current env. */
        json_t *cur = api("GET", path, NULL, &code);
        if (cur) {
            json_t *env = json_deep_copy(json_object_get(cur, "env"));
            json_object_update(env, set);
            size_t i;
            json_t *k;
            json_array_foreach(unset, i, k)
            {
                json_object_del(env, json_string_value(k));
            }
            json_object_set_new(body, "env", env);
            json_decref(cur);
        }
    }
    if (!code && json_object_size(body) == 0)
        code =
            fail(EXIT_USAGE,
                 "nothing to update: give --name, --port, --env, --unset-env, --branch, --commit or --unpin");
    if (!code)
        j = api("PATCH", path, body, &code);
    json_decref(body);
    json_decref(set);
    json_decref(unset);
    return j ? finish(j, print_droid) : code;
}

static int cmd_rollback(int argc, char **argv)
{
    if (argc != 3)
        return usage_of("rollback", stderr, EXIT_USAGE);
    char id[64], path[128], *end;
    long rel = strtol(argv[2], &end, 10);
    if (*end || rel < 1)
        return fail(EXIT_USAGE, "RELEASE must be a release number (see dmsctl releases)");
    int rc = resolve(argv[1], id, sizeof(id));
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/droids/%s/rollback", id);
    json_t *body = json_pack("{s:I}", "release", (json_int_t)rel);
    json_t *j = api("POST", path, body, &rc);
    json_decref(body);
    return j ? finish(j, print_droid) : rc;
}

static void human_ok(json_t *j)
{
    (void)j;
    printf("build cancelled\n");
}

static int cmd_cancel_build(int argc, char **argv)
{
    char id[64], path[128];
    int rc = one_droid("cancel-build", argc, argv, id, sizeof(id));
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/droids/%s/build/cancel", id);
    json_t *j = api("POST", path, NULL, &rc);
    return j ? finish(j, human_ok) : rc;
}

static int cmd_logs(int argc, char **argv)
{
    static const struct option o[] = {{"follow", no_argument, NULL, 'f'},
                                      {"build", no_argument, NULL, 'B'},
                                      {"err", no_argument, NULL, 'E'},
                                      {"tail", required_argument, NULL, 't'},
                                      {"from", required_argument, NULL, 'F'},
                                      {"limit", required_argument, NULL, 'n'},
                                      {"timestamps", no_argument, NULL, 'T'},
                                      {"run", required_argument, NULL, 'r'},
                                      {NULL, 0, NULL, 0}};
    bool follow = false, build = false, errs = false, ts = false;
    const char *tail = NULL, *from = NULL, *limit = NULL, *run = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "fBEt:F:n:Tr:", o, NULL)) != -1) {
        switch (c) {
        case 'f':
            follow = true;
            break;
        case 'B':
            build = true;
            break;
        case 'E':
            build = errs = true;
            break;
        case 't':
            tail = optarg;
            break;
        case 'F':
            from = optarg;
            break;
        case 'n':
            limit = optarg;
            break;
        case 'T':
            ts = true;
            break;
        case 'r':
            run = optarg;
            break;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1)
        return usage_of("logs", stderr, EXIT_USAGE);
    char id[64];
    int rc = resolve(argv[optind], id, sizeof(id));
    if (rc)
        return rc;
    char path[512];
    int n = snprintf(path, sizeof(path), "/droids/%s/logs", id);
    char sep = '?';
#define ADD(fmt, ...)                                                                                        \
    (n += snprintf(path + n, sizeof(path) - (size_t)n, "%c" fmt, sep, __VA_ARGS__), sep = '&')
    if (build)
        ADD("%s", errs ? "build.err" : "build.out");
    if (follow)
        ADD("%s", "follow=1");
    if (ts && !build)
        ADD("%s", "timestamps=1");
    if (tail)
        ADD("tail=%s", tail);
    if (from)
        ADD("from=%s", from);
    if (limit)
        ADD("limit=%s", limit);
    if (run)
        ADD("run=%s", run);
    if (json_out && !build)
        ADD("%s", "format=json");
#undef ADD
    ctl_resp r;
    /* A 2xx body goes straight to stdout as it arrives; an error body is kept and reported. */
    if (ctl_request(&conn, "GET", path, NULL, true, &r) < 0) {
        rc = fail(EXIT_API, "%s", r.error);
    } else if (r.status >= 400) {
        json_t *j = json_loadb(r.body, r.len, 0, NULL);
        const char *msg = json_string_value(json_object_get(j, "error"));
        const char *field = json_string_value(json_object_get(j, "field"));
        rc = fail(EXIT_API, "%s%s%s%s (HTTP %ld)", msg ? msg : r.body, field ? " [" : "", field ? field : "",
                  field ? "]" : "", r.status);
        json_decref(j);
    } else if (r.last_log_nano[0] && !follow && isatty(2)) {
        fprintf(stderr, "(next page: dmsctl logs --from %s %s)\n", r.last_log_nano, argv[optind]);
    }
    ctl_resp_clear(&r);
    return rc;
}

static int cmd_available(int argc, char **argv)
{
    if (argc != 2)
        return usage_of("available", stderr, EXIT_USAGE);
    char *e = ctl_escape(argv[1]);
    char path[256];
    snprintf(path, sizeof(path), "/droids/available?name=%s", e ? e : "");
    free(e);
    int rc = 0;
    json_t *j = api("GET", path, NULL, &rc);
    if (!j)
        return rc;
    bool ok = json_is_true(json_object_get(j, "available"));
    if (json_out)
        print_json(j);
    else
        printf("%s is %s\n", argv[1], ok ? "available" : "taken");
    json_decref(j);
    return ok ? 0 : EXIT_API;
}

static void human_git(json_t *j)
{
    printf("repo:           %s\nreachable:      %s\n", str(j, "repo"),
           json_is_true(json_object_get(j, "reachable")) ? "yes" : "no");
    if (json_object_get(j, "error"))
        printf("error:          %s\n", str(j, "error"));
    printf("default branch: %s\nbranches:      ", str(j, "default_branch"));
    size_t i;
    json_t *b;
    json_array_foreach(json_object_get(j, "branches"), i, b)
    {
        printf(" %s", json_string_value(b));
    }
    printf("\n");
    if (json_object_get(j, "branch"))
        printf("branch %s:%*s%s\n", str(j, "branch"), 1, "",
               json_is_true(json_object_get(j, "branch_exists")) ? "exists" : "does not exist");
}

static int cmd_git_check(int argc, char **argv)
{
    if (argc < 2 || argc > 3)
        return usage_of("git-check", stderr, EXIT_USAGE);
    char *repo = ctl_escape(argv[1]), *branch = argc == 3 ? ctl_escape(argv[2]) : NULL;
    char path[2048];
    snprintf(path, sizeof(path), "/git/check?repo=%s%s%s", repo ? repo : "", branch ? "&branch=" : "",
             branch ? branch : "");
    free(repo);
    free(branch);
    int rc = 0;
    json_t *j = api("GET", path, NULL, &rc);
    return j ? finish(j, human_git) : rc;
}

static int cmd_token(int argc, char **argv)
{
    if (argc != 2)
        return usage_of("token", stderr, EXIT_USAGE);
    const char *secret = getenv("DMS_JWT_SECRET");
    char *tok = NULL;
    dms_error err = {0};
    if (auth_mint(secret, argv[1], TOKEN_TTL_SEC, &tok, &err) < 0)
        return fail(EXIT_USAGE, "%s", err.message);
    puts(tok);
    free(tok);
    return 0;
}

static void human_url(json_t *d)
{
    puts(json_is_string(json_object_get(d, "route_url")) ? str(d, "route_url") : str(d, "url"));
}

static int cmd_url(int argc, char **argv)
{
    char id[64], path[128];
    int rc = one_droid("url", argc, argv, id, sizeof(id));
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/droids/%s", id);
    json_t *j = api("GET", path, NULL, &rc);
    return j ? finish(j, human_url) : rc;
}

/* "22:00-07:00" or "22:00-07:00@Europe/Paris" into a window object. */
static json_t *parse_window(const char *s)
{
    const char *dash = strchr(s, '-'), *at = strchr(s, '@');
    if (!dash || (at && at < dash))
        return NULL;
    char *from = strndup(s, (size_t)(dash - s));
    char *to = at ? strndup(dash + 1, (size_t)(at - dash - 1)) : strdup(dash + 1);
    json_t *w = json_pack("{s:s, s:s}", "from", from, "to", to);
    if (w && at)
        json_object_set_new(w, "tz", json_string(at + 1));
    free(from);
    free(to);
    return w;
}

static int cmd_snooze(int argc, char **argv)
{
    static const struct option o[] = {{"window", required_argument, NULL, 'w'},
                                      {"idle", required_argument, NULL, 'i'},
                                      {"clear", no_argument, NULL, 'c'},
                                      {NULL, 0, NULL, 0}};
    json_t *body = json_object(), *wins = json_array();
    bool clear = false, set = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "w:i:c", o, NULL)) != -1) {
        json_t *w;
        switch (c) {
        case 'w':
            if (!(w = parse_window(optarg))) {
                json_decref(body);
                json_decref(wins);
                return fail(EXIT_USAGE, "--window %s: expected HH:MM-HH:MM or HH:MM-HH:MM@Zone/Name", optarg);
            }
            json_array_append_new(wins, w);
            set = true;
            break;
        case 'i': {
            char *end = NULL;
            long long v = strtoll(optarg, &end, 10);
            if (!*optarg || *end) {
                json_decref(body);
                json_decref(wins);
                return fail(EXIT_USAGE, "--idle %s: expected a number of seconds", optarg);
            }
            json_object_set_new(body, "idle_timeout_s", json_integer(v)); /* dmsd checks the range */
            set = true;
            break;
        }
        case 'c':
            clear = true;
            break;
        default:
            json_decref(body);
            json_decref(wins);
            return usage_of("snooze", stderr, EXIT_USAGE);
        }
    }
    if (optind != argc - 1 || (clear && set)) {
        json_decref(body);
        json_decref(wins);
        return usage_of("snooze", stderr, EXIT_USAGE);
    }
    if (json_array_size(wins))
        json_object_set(body, "windows", wins);
    json_decref(wins);
    char id[64], path[160];
    int rc = resolve(argv[optind], id, sizeof(id));
    if (rc) {
        json_decref(body);
        return rc;
    }
    snprintf(path, sizeof(path), "/droids/%s%s", id, set || clear ? "/snooze" : "");
    json_t *j = api(clear ? "DELETE" : set ? "PUT" : "GET", path, set ? body : NULL, &rc);
    json_decref(body);
    if (!j)
        return rc;
    json_t *sn = json_incref(json_object_get(j, "snooze"));
    json_decref(j);
    if (json_out) {
        json_t *out = sn ? sn : json_null();
        char *txt = json_dumps(out, JSON_INDENT(2) | JSON_ENCODE_ANY);
        if (txt)
            puts(txt);
        free(txt);
    } else {
        print_snooze(sn);
    }
    json_decref(sn);
    return 0;
}

/* ---- build jobs ---- */

static void human_job(json_t *r)
{
    json_t *j = json_object_get(r, "data");
    printf("id:         %s\nstatus:     %s\nstep:       %s\nreason:     %s\nproject:    %s\n"
           "deployment: %s\nrepo:       %s (%s)\ncommit:     %s\nartifact:   %s\n",
           str(j, "id"), str(j, "status"), str(j, "step"), str(j, "reason"), str(j, "project_id"),
           str(j, "deployment_id"), str(j, "project_repo_url"), str(j, "project_branch"),
           str(j, "commit_sha"), str(json_object_get(j, "artifact"), "url"));
}

static void human_jobs(json_t *r)
{
    printf("%-14s %-10s %-8s %-16s %-16s %s\n", "ID", "STATUS", "STEP", "PROJECT", "DEPLOYMENT", "REASON");
    size_t i;
    json_t *j;
    json_array_foreach(json_object_get(r, "data"), i, j)
    {
        printf("%-14s %-10s %-8s %-16s %-16s %.60s\n", str(j, "id"), str(j, "status"), str(j, "step"),
               str(j, "project_id"), str(j, "deployment_id"), str(j, "reason"));
    }
}

static void human_created(json_t *r)
{
    printf("%s\n", str(r, "id"));
}

static int cmd_job_create(int argc, char **argv)
{
    static const struct option o[] = {
        {"project", required_argument, NULL, 'P'}, {"deployment", required_argument, NULL, 'D'},
        {"repo", required_argument, NULL, 'r'},    {"branch", required_argument, NULL, 'b'},
        {"command", required_argument, NULL, 'c'}, {"pm", required_argument, NULL, 'm'},
        {"dist", required_argument, NULL, 'd'},    {NULL, 0, NULL, 0}};
    static const char *const keys[] = {['P'] = "project_id",
                                       ['D'] = "deployment_id",
                                       ['r'] = "project_repo_url",
                                       ['b'] = "project_branch",
                                       ['c'] = "project_build_command",
                                       ['m'] = "project_package_manager",
                                       ['d'] = "project_dist_directory"};
    json_t *body = json_pack("{s:s, s:s}", "project_package_manager", "none", "project_dist_directory", ".");
    int c, code = 0;
    while (!code && (c = getopt_long(argc, argv, "r:b:c:d:", o, NULL)) != -1) {
        if (c > 0 && (size_t)c < sizeof(keys) / sizeof(keys[0]) && keys[c])
            json_object_set_new(body, keys[c], json_string(optarg));
        else
            code = EXIT_USAGE;
    }
    if (!code && optind != argc)
        code = usage_of("job-create", stderr, EXIT_USAGE);
    json_t *j = code ? NULL : api("POST", "/job/create", body, &code);
    json_decref(body);
    return j ? finish(j, human_created) : code;
}

static int cmd_jobs(int argc, char **argv)
{
    (void)argv;
    int rc = 0;
    if (argc != 1)
        return usage_of("jobs", stderr, EXIT_USAGE);
    json_t *j = api_list("/jobs", &rc);
    return j ? finish(j, human_jobs) : rc;
}

static int job_path(const char *cmd, int argc, char **argv, const char *fmt, char *path, size_t size)
{
    if (argc != 2)
        return usage_of(cmd, stderr, EXIT_USAGE);
    snprintf(path, size, fmt, argv[1]);
    return 0;
}

static int cmd_job(int argc, char **argv)
{
    char path[256];
    int rc = job_path("job", argc, argv, "/job/%s", path, sizeof(path));
    json_t *j = rc ? NULL : api("GET", path, NULL, &rc);
    return j ? finish(j, human_job) : rc;
}

static void human_cancel(json_t *r)
{
    printf("%s\n", str(r, "data"));
}

static int cmd_job_cancel(int argc, char **argv)
{
    char path[256];
    int rc = job_path("job-cancel", argc, argv, "/job/%s/cancel", path, sizeof(path));
    json_t *j = rc ? NULL : api("PATCH", path, NULL, &rc);
    return j ? finish(j, human_cancel) : rc;
}

/* GET a raw body (a followed log, an artifact) to stdout as it arrives; an error body is reported. */
static int stream_get(const char *path)
{
    ctl_resp r;
    int rc = 0;
    if (ctl_request(&conn, "GET", path, NULL, true, &r) < 0) {
        rc = fail(EXIT_API, "%s", r.error);
    } else if (r.status >= 400) {
        json_t *j = json_loadb(r.body, r.len, 0, NULL);
        const char *msg = json_string_value(json_object_get(j, "error"));
        rc = fail(EXIT_API, "%s (HTTP %ld)", msg ? msg : r.body, r.status);
        json_decref(j);
    }
    ctl_resp_clear(&r);
    return rc;
}

static void human_log(json_t *r)
{
    fputs(str(r, "data"), stdout);
}

static int cmd_job_log(int argc, char **argv)
{
    bool follow = argc == 3 && (strcmp(argv[1], "-f") == 0 || strcmp(argv[1], "--follow") == 0);
    char path[256];
    if (argc != 2 && !follow)
        return usage_of("job-log", stderr, EXIT_USAGE);
    snprintf(path, sizeof(path), "/job/%s/log%s", argv[argc - 1], follow ? "?follow=1" : "");
    if (follow)
        return stream_get(path);
    int rc = 0;
    json_t *j = api("GET", path, NULL, &rc);
    return j ? finish(j, human_log) : rc;
}

static int cmd_job_artifact(int argc, char **argv)
{
    char path[256];
    int rc = job_path("job-artifact", argc, argv, "/job/%s/artifact", path, sizeof(path));
    if (rc)
        return rc;
    if (isatty(1))
        return fail(EXIT_USAGE, "the artifact is a tar: redirect it (dmsctl job-artifact %s > out.tar)",
                    argv[1]);
    return stream_get(path);
}

static int cmd_help(int argc, char **argv);

static const command commands[] = {
    {"create",
     "NAME --repo REPO [--branch B] [--commit SHA] [--port P] [--env K=V]... [--volume NAME:/PATH]...",
     "Create a droid; it is built from the repo's Dockerfile and started.",
     "  --repo REPO        git URL (https://, ssh://, file://, user@host:path) or a local repository path\n"
     "  --branch B         branch to deploy (default: the repository's default branch)\n"
     "  --commit SHA       pin a commit of that branch\n"
     "  --port P           port the app listens on in its container ($PORT; default 8080)\n"
     "  --env K=V          environment variable (repeatable)\n"
     "  --volume NAME:/P   a named volume mounted at /P, kept across rebuilds (repeatable)\n"
     "  --language L       node, python, static or shell: the stack of a repository without a Dockerfile\n"
     "                     (default: detected from its files)\n"
     "  --follow           rebuild when the branch moves (polling and a push hook; the hook secret is shown\n"
     "                     once)\n",
     cmd_create, true},
    {"ls", "", "List your droids.", "", cmd_ls, true},
    {"status", "DROID", "Show a droid: status, reason, release, URL, config.", "", cmd_status, true},
    {"url", "DROID", "Print the droid's URL: its route, http://<name>.localhost:<proxy port>/.", "", cmd_url,
     true},
    {"snooze", "DROID [--window HH:MM-HH:MM[@TZ]]... [--idle SECONDS] | --clear",
     "Show or set the droid's snooze schedule.",
     "  --window A-B[@TZ]  a daily window in which it sleeps once nothing is connected (repeatable; TZ\n"
     "                     defaults to UTC, e.g. 22:00-07:00@Europe/Paris); a request wakes it\n"
     "  --idle SECONDS     sleep after this long without a connection (with windows: inside them; default\n"
     "                     600); alone: at any time of day\n"
     "  --clear            no snooze (wakes it if it sleeps)\n"
     "  Without options: show the schedule, whether it sleeps, and its next wake or sleep.\n",
     cmd_snooze, true},
    {"logs", "DROID [-f] [--build|--err] [--tail N] [--from NS --limit N] [--timestamps] [--run ID]",
     "Print a droid's logs (runtime logs of its current container, or build logs).",
     "  -f, --follow       keep printing as lines arrive (until the container or build ends)\n"
     "  --build, --err     build output (build.out) or build errors (build.err)\n"
     "  --tail N           only the last N lines\n"
     "  --from NS          only lines after this timestamp (ns); the next page starts at the printed cursor\n"
     "  --limit N          at most N lines\n"
     "  --timestamps       prefix each line with its time\n"
     "  --run ID           an earlier container run (see events)\n",
     cmd_logs, true},
    {"start", "DROID", "Start a stopped or failed droid.", "", cmd_start, true},
    {"stop", "DROID", "Stop a droid (waits until its container is gone).", "", cmd_stop, true},
    {"restart", "DROID [--force]", "Restart a droid: a new container, then the old one goes.",
     "  --force            stop the old container first\n", cmd_restart, true},
    {"update",
     "DROID [--name N] [--port P] [--env K=V]... [--unset-env K]... [--branch B] [--commit SHA|--unpin]",
     "Change a droid's name, port, env, branch or commit.",
     "  env/port changes restart it with the new config; branch/commit changes rebuild it, and the old "
     "container\n"
     "  serves until the new one runs. --branch with the current branch deploys its latest commit.\n"
     "  --env K=V / --unset-env K change single variables of the current env.\n",
     cmd_update, true},
    {"rm", "DROID [--keep-volumes]", "Delete a droid: its containers, images and data.", "", cmd_rm, true},
    {"events", "DROID", "A droid's history: every state change with its time and reason.", "", cmd_events,
     true},
    {"releases", "DROID", "A droid's releases (one per successful build).", "", cmd_releases, true},
    {"rollback", "DROID RELEASE", "Run an earlier release again (its image and env).", "", cmd_rollback,
     true},
    {"cancel-build", "DROID", "Cancel the droid's running or queued build.", "", cmd_cancel_build, true},
    {"available", "NAME", "Is a droid name free? (exit 0 if so)", "", cmd_available, true},
    {"git-check", "REPO [BRANCH]", "Can dmsd reach a repository; its branches and default branch.", "",
     cmd_git_check, true},
    {"job-create", "--project P --deployment D --repo R --branch B --command CMD [--pm PM] [--dist DIR]",
     "Queue a build job (koalaCI's /job/create); prints its id.",
     "  --pm PM            npm, yarn, pnpm, pip or none (default none)\n"
     "  --dist DIR         the directory kept as the job's artifact (default: the whole tree)\n",
     cmd_job_create, true},
    {"jobs", "", "List your build jobs, newest first.", "", cmd_jobs, true},
    {"job", "JOB", "Show a build job (JOB: its id or its deployment id).", "", cmd_job, true},
    {"job-log", "[-f] JOB", "Print a build job's log; -f follows it until the job ends.", "", cmd_job_log,
     true},
    {"job-cancel", "JOB", "Cancel a queued or running build job.", "", cmd_job_cancel, true},
    {"job-artifact", "JOB > FILE.tar", "Write a build job's artifact (a tar) to stdout.", "",
     cmd_job_artifact, true},
    {"token", "USER", "Mint a bearer token for USER from DMS_JWT_SECRET (valid 24 h).", "", cmd_token, false},
    {"help", "[COMMAND]", "Show help.", "", cmd_help, false},
};

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: dmsctl [--json] COMMAND [ARGS]\n\nCommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-13s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\nDROID is an id or a name. --json prints the server's JSON instead of tables.\n"
               "Environment: DMS_URL (default " DEFAULT_URL
               "), DMS_TOKEN, or DMS_JWT_SECRET + DMS_USER to mint one.\n"
               "`dmsctl COMMAND --help` describes a command.\n");
}

static int cmd_help(int argc, char **argv)
{
    if (argc == 2 && find_command(argv[1]))
        return usage_of(argv[1], stdout, 0);
    usage(stdout);
    return 0;
}

static int setup_conn(void)
{
    const char *url = getenv("DMS_URL");
    conn.url = strdup(url && *url ? url : DEFAULT_URL);
    size_t n = strlen(conn.url);
    while (n && conn.url[n - 1] == '/')
        conn.url[--n] = '\0';
    const char *tok = getenv("DMS_TOKEN");
    if (tok && *tok) {
        conn.token = strdup(tok);
        return 0;
    }
    const char *secret = getenv("DMS_JWT_SECRET"), *user = getenv("DMS_USER");
    if (!secret || !*secret || !user || !*user)
        return fail(EXIT_USAGE, "no token: set DMS_TOKEN, or DMS_JWT_SECRET and DMS_USER to mint one");
    dms_error err = {0};
    if (auth_mint(secret, user, TOKEN_TTL_SEC, &conn.token, &err) < 0)
        return fail(EXIT_USAGE, "%s", err.message);
    return 0;
}

int main(int argc, char **argv)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json_out = true;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const command *c = find_command(argv[i]);
    if (!c)
        return fail(EXIT_USAGE, "unknown command \"%s\" (dmsctl help)", argv[i]);
    int cargc = argc - i;
    char **cargv = argv + i;
    if (wants_help(cargc, cargv))
        return usage_of(c->name, stdout, 0);
    if (c->needs_server) {
        int rc = setup_conn();
        if (rc)
            return rc;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    optind = 1;
    int rc = c->run(cargc, cargv);
    curl_global_cleanup();
    free(conn.url);
    free(conn.token);
    return rc;
}
