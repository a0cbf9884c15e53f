/* cli/dmsctl_show.c - the commands that look at droids: ls, status, url, events, releases, logs, and whether
 * a name is free or a repository reachable. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmsctl.h"

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

int cmd_ls(int argc, char **argv)
{
    if (argc > 1)
        return usage_of("ls", stderr, EXIT_USAGE);
    (void)argv;
    int rc = 0;
    json_t *j = api_list("/droids", &rc);
    return j ? finish(j, human_ls) : rc;
}

int cmd_status(int argc, char **argv)
{
    char id[64], path[128];
    int rc = one_droid("status", argc, argv, id, sizeof(id));
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/droids/%s", id);
    json_t *j = api("GET", path, NULL, &rc);
    return j ? finish(j, print_droid) : rc;
}

static void human_url(json_t *d)
{
    puts(json_is_string(json_object_get(d, "route_url")) ? str(d, "route_url") : str(d, "url"));
}

int cmd_url(int argc, char **argv)
{
    char id[64], path[128];
    int rc = one_droid("url", argc, argv, id, sizeof(id));
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/droids/%s", id);
    json_t *j = api("GET", path, NULL, &rc);
    return j ? finish(j, human_url) : rc;
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

int cmd_events(int argc, char **argv)
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

int cmd_releases(int argc, char **argv)
{
    char id[64], path[128];
    int rc = one_droid("releases", argc, argv, id, sizeof(id));
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/droids/%s/releases", id);
    json_t *j = api_list(path, &rc);
    return j ? finish(j, human_releases) : rc;
}

/* What logs' options ask for. Strings borrowed from argv. */
typedef struct logs_opts {
    bool follow, build, errs, ts;
    const char *tail, *from, *limit, *run, *service;
} logs_opts;

/* logs' options into o; 0, or the exit code. */
static int parse_logs_opts(int argc, char **argv, logs_opts *o)
{
    static const struct option lo[] = {
        {"follow", no_argument, NULL, 'f'},        {"build", no_argument, NULL, 'B'},
        {"err", no_argument, NULL, 'E'},           {"tail", required_argument, NULL, 't'},
        {"from", required_argument, NULL, 'F'},    {"limit", required_argument, NULL, 'n'},
        {"timestamps", no_argument, NULL, 'T'},    {"run", required_argument, NULL, 'r'},
        {"service", required_argument, NULL, 's'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "fBEt:F:n:Tr:s:", lo, NULL)) != -1) {
        switch (c) {
        case 'f':
            o->follow = true;
            break;
        case 'B':
            o->build = true;
            break;
        case 'E':
            o->build = o->errs = true;
            break;
        case 't':
            o->tail = optarg;
            break;
        case 'F':
            o->from = optarg;
            break;
        case 'n':
            o->limit = optarg;
            break;
        case 'T':
            o->ts = true;
            break;
        case 'r':
            o->run = optarg;
            break;
        case 's':
            if (strspn(optarg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
                    strlen(optarg) ||
                !*optarg)
                return fail(EXIT_USAGE, "logs: --service takes a service name ([A-Za-z0-9._-])");
            o->service = optarg;
            break;
        default:
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1)
        return usage_of("logs", stderr, EXIT_USAGE);
    return 0;
}

/* The droid id's logs URL path, with o's query, into path (size bytes). */
/* Appends "<sep>key[=value]" to path; false once it would not fit (nothing is written past size). */
static bool add_query(char *path, size_t size, size_t *n, char *sep, const char *key, const char *value)
{
    int w = snprintf(path + *n, size - *n, "%c%s%s%s", *sep, key, value ? "=" : "", value ? value : "");
    if (w < 0 || (size_t)w >= size - *n)
        return false;
    *n += (size_t)w;
    *sep = '&';
    return true;
}

/* The logs route with the options' query; -1 when it does not fit in size (a value far too long). */
static int logs_path(const logs_opts *o, const char *id, char *path, size_t size)
{
    int w = snprintf(path, size, "/droids/%s/logs", id);
    if (w < 0 || (size_t)w >= size)
        return -1;
    size_t n = (size_t)w;
    char sep = '?';
    bool ok = true;
    if (o->build)
        ok = ok && add_query(path, size, &n, &sep, o->errs ? "build.err" : "build.out", NULL);
    if (o->follow)
        ok = ok && add_query(path, size, &n, &sep, "follow=1", NULL);
    if (o->ts && !o->build)
        ok = ok && add_query(path, size, &n, &sep, "timestamps=1", NULL);
    if (o->tail)
        ok = ok && add_query(path, size, &n, &sep, "tail", o->tail);
    if (o->from)
        ok = ok && add_query(path, size, &n, &sep, "from", o->from);
    if (o->limit)
        ok = ok && add_query(path, size, &n, &sep, "limit", o->limit);
    if (o->run)
        ok = ok && add_query(path, size, &n, &sep, "run", o->run);
    if (o->service)
        ok = ok && add_query(path, size, &n, &sep, "service", o->service);
    if (json_out && !o->build)
        ok = ok && add_query(path, size, &n, &sep, "format=json", NULL);
    return ok ? 0 : -1;
}

int cmd_logs(int argc, char **argv)
{
    logs_opts o = {0};
    int rc = parse_logs_opts(argc, argv, &o);
    if (rc)
        return rc;
    char id[64];
    rc = resolve(argv[optind], id, sizeof(id));
    if (rc)
        return rc;
    char path[512];
    if (logs_path(&o, id, path, sizeof(path)) < 0)
        return fail(EXIT_USAGE, "logs: the options are too long (a --run, --from, --tail or --limit value)");
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
    } else if (r.last_log_nano[0] && !o.follow && isatty(2)) {
        fprintf(stderr, "(next page: dmsctl logs --from %s %s)\n", r.last_log_nano, argv[optind]);
    }
    ctl_resp_clear(&r);
    return rc;
}

int cmd_available(int argc, char **argv)
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

int cmd_git_check(int argc, char **argv)
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
