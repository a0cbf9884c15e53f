/* cli/dmsctl_change.c - the commands that create and change droids: create and update (one option parser
 * for both), rm, start, stop, restart, rollback, cancel-build and snooze. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmsctl.h"

/* ---- create and update: one parser for the options they share ---- */

/* What create's and update's options give: the request's body, and the parts it is completed with. */
typedef struct droid_opts {
    json_t *body;  /* --repo, --name, --branch, --commit, --unpin, --port, --language, --follow */
    json_t *env;   /* --env K=V */
    json_t *vols;  /* --volume NAME:/PATH (create) */
    json_t *unset; /* --unset-env K (update) */
} droid_opts;

/* Each command accepts its own options (short ones included, as before); the parser is shared. */
static const struct option create_opts[] = {
    {"repo", required_argument, NULL, 'r'},         {"branch", required_argument, NULL, 'b'},
    {"commit", required_argument, NULL, 'c'},       {"port", required_argument, NULL, 'p'},
    {"env", required_argument, NULL, 'e'},          {"volume", required_argument, NULL, 'v'},
    {"language", required_argument, NULL, 'l'},     {"follow", no_argument, NULL, 'F'},
    {"compose-file", required_argument, NULL, 'C'}, {NULL, 0, NULL, 0}};
#define CREATE_SHORT_OPTS "r:b:c:p:e:v:l:"
static const struct option update_opts[] = {
    {"name", required_argument, NULL, 'n'},   {"port", required_argument, NULL, 'p'},
    {"env", required_argument, NULL, 'e'},    {"unset-env", required_argument, NULL, 'u'},
    {"branch", required_argument, NULL, 'b'}, {"commit", required_argument, NULL, 'c'},
    {"unpin", no_argument, NULL, 'U'},        {NULL, 0, NULL, 0}};
#define UPDATE_SHORT_OPTS "n:p:e:u:b:c:U"

static void droid_opts_clear(droid_opts *d)
{
    json_decref(d->body);
    json_decref(d->env);
    json_decref(d->vols);
    json_decref(d->unset);
}

static int port_opt(json_t *body, const char *arg)
{
    char *end;
    long p = strtol(arg, &end, 10);
    int code = 0;
    if (*end || !*arg)
        code = fail(EXIT_USAGE, "--port needs a number");
    json_object_set_new(body, "port", json_integer(p));
    return code;
}

static int volume_opt(json_t *vols, const char *arg)
{
    const char *colon = strchr(arg, ':');
    if (!colon)
        return fail(EXIT_USAGE, "--volume needs NAME:/mount/path");
    char *name = strndup(arg, (size_t)(colon - arg));
    json_array_append_new(vols, json_pack("{s:s, s:s}", "name", name, "mount_path", colon + 1));
    free(name);
    return 0;
}

/* One option (c as getopt_long returned it, arg its value) into d; 0, or the exit code (error printed). */
static int droid_opt(droid_opts *d, int c, const char *arg)
{
    switch (c) {
    case 'F':
        json_object_set_new(d->body, "follow", json_true());
        break;
    case 'r':
        json_object_set_new(d->body, "repo", json_string(arg));
        break;
    case 'n':
        json_object_set_new(d->body, "name", json_string(arg));
        break;
    case 'b':
        json_object_set_new(d->body, "branch", json_string(arg));
        break;
    case 'c':
        json_object_set_new(d->body, "commit", json_string(arg));
        break;
    case 'U':
        json_object_set_new(d->body, "commit", json_null());
        break;
    case 'l':
        json_object_set_new(d->body, "language", json_string(arg));
        break;
    case 'C':
        json_object_set_new(d->body, "compose_file", json_string(arg));
        break;
    case 'p':
        return port_opt(d->body, arg);
    case 'e':
        if (put_kv(d->env, arg) < 0)
            return fail(EXIT_USAGE, "--env needs KEY=VALUE");
        break;
    case 'u':
        json_array_append_new(d->unset, json_string(arg));
        break;
    case 'v':
        return volume_opt(d->vols, arg);
    default:
        return EXIT_USAGE;
    }
    return 0;
}

/* The options of create or update (shortopts and longopts: those it accepts) into d, up to the first bad one.
 * 0, or the exit code (error printed). The caller clears d. */
static int parse_droid_opts(int argc, char **argv, const char *shortopts, const struct option *longopts,
                            droid_opts *d)
{
    *d = (droid_opts){
        .body = json_object(), .env = json_object(), .vols = json_array(), .unset = json_array()};
    int c, code = 0;
    while (!code && (c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1)
        code = droid_opt(d, c, optarg);
    return code;
}

int cmd_create(int argc, char **argv)
{
    droid_opts d;
    int code = parse_droid_opts(argc, argv, CREATE_SHORT_OPTS, create_opts, &d);
    if (!code && optind != argc - 1)
        code = usage_of("create", stderr, EXIT_USAGE);
    if (!code && !json_object_get(d.body, "repo"))
        code = fail(EXIT_USAGE, "create needs --repo");
    json_t *j = NULL;
    if (!code) {
        json_object_set_new(d.body, "name", json_string(argv[optind]));
        if (json_object_size(d.env))
            json_object_set(d.body, "env", d.env);
        if (json_array_size(d.vols))
            json_object_set(d.body, "volumes", d.vols);
        j = api("POST", "/droids", d.body, &code);
    }
    droid_opts_clear(&d);
    if (j && !json_out && json_string_value(json_object_get(j, "hook_secret")))
        printf("hook secret (shown once): %s\nhook:       POST %s%s with header X-DMS-Hook-Secret\n",
               json_string_value(json_object_get(j, "hook_secret")), conn.url,
               json_string_value(json_object_get(json_object_get(j, "hook"), "url")));
    return j ? finish(j, print_droid) : code;
}

/* --env and --unset-env change single variables, but env in the API replaces the whole map: start from the
 * droid's current env (path is the droid's). 0, or the exit code. */
static int merge_env(droid_opts *d, const char *path)
{
    int code = 0;
    json_t *cur = api("GET", path, NULL, &code);
    if (cur) {
        json_t *env = json_deep_copy(json_object_get(cur, "env"));
        json_object_update(env, d->env);
        size_t i;
        json_t *k;
        json_array_foreach(d->unset, i, k)
        {
            json_object_del(env, json_string_value(k));
        }
        json_object_set_new(d->body, "env", env);
        json_decref(cur);
    }
    return code;
}

int cmd_update(int argc, char **argv)
{
    droid_opts d;
    int code = parse_droid_opts(argc, argv, UPDATE_SHORT_OPTS, update_opts, &d);
    if (!code && optind != argc - 1)
        code = usage_of("update", stderr, EXIT_USAGE);
    char id[64] = "", path[128];
    if (!code)
        code = resolve(argv[optind], id, sizeof(id));
    snprintf(path, sizeof(path), "/droids/%s", id);
    json_t *j = NULL;
    if (!code && (json_object_size(d.env) || json_array_size(d.unset)))
        code = merge_env(&d, path);
    if (!code && json_object_size(d.body) == 0)
        code =
            fail(EXIT_USAGE,
                 "nothing to update: give --name, --port, --env, --unset-env, --branch, --commit or --unpin");
    if (!code)
        j = api("PATCH", path, d.body, &code);
    droid_opts_clear(&d);
    return j ? finish(j, print_droid) : code;
}

int cmd_rm(int argc, char **argv)
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

int cmd_start(int argc, char **argv)
{
    return lifecycle("start", argc, argv, "start", NULL);
}

int cmd_stop(int argc, char **argv)
{
    return lifecycle("stop", argc, argv, "stop", NULL);
}

int cmd_restart(int argc, char **argv)
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

int cmd_rollback(int argc, char **argv)
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

int cmd_cancel_build(int argc, char **argv)
{
    char id[64], path[128];
    int rc = one_droid("cancel-build", argc, argv, id, sizeof(id));
    if (rc)
        return rc;
    snprintf(path, sizeof(path), "/droids/%s/build/cancel", id);
    json_t *j = api("POST", path, NULL, &rc);
    return j ? finish(j, human_ok) : rc;
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

static int window_opt(json_t *wins, const char *arg)
{
    json_t *w = parse_window(arg);
    if (!w)
        return fail(EXIT_USAGE, "--window %s: expected HH:MM-HH:MM or HH:MM-HH:MM@Zone/Name", arg);
    json_array_append_new(wins, w);
    return 0;
}

static int idle_opt(json_t *body, const char *arg)
{
    char *end = NULL;
    long long v = strtoll(arg, &end, 10);
    if (!*arg || *end)
        return fail(EXIT_USAGE, "--idle %s: expected a number of seconds", arg);
    json_object_set_new(body, "idle_timeout_s", json_integer(v)); /* dmsd checks the range */
    return 0;
}

/* snooze's options into body (its windows and idle timeout); *set and *clear say what was asked. 0, or the
 * exit code (error printed). */
static int parse_snooze_opts(int argc, char **argv, json_t *body, bool *set, bool *clear)
{
    static const struct option o[] = {{"window", required_argument, NULL, 'w'},
                                      {"idle", required_argument, NULL, 'i'},
                                      {"clear", no_argument, NULL, 'c'},
                                      {NULL, 0, NULL, 0}};
    json_t *wins = json_array();
    int c, code = 0;
    optind = 1;
    while (!code && (c = getopt_long(argc, argv, "w:i:c", o, NULL)) != -1) {
        switch (c) {
        case 'w':
            code = window_opt(wins, optarg);
            *set = true;
            break;
        case 'i':
            code = idle_opt(body, optarg);
            *set = true;
            break;
        case 'c':
            *clear = true;
            break;
        default:
            code = usage_of("snooze", stderr, EXIT_USAGE);
        }
    }
    if (!code && (optind != argc - 1 || (*clear && *set)))
        code = usage_of("snooze", stderr, EXIT_USAGE);
    if (!code && json_array_size(wins))
        json_object_set(body, "windows", wins);
    json_decref(wins);
    return code;
}

/* The snooze of the droid j: as JSON (null when it has none) with --json. */
static void show_snooze(json_t *j)
{
    json_t *sn = json_incref(json_object_get(j, "snooze"));
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
}

int cmd_snooze(int argc, char **argv)
{
    json_t *body = json_object();
    bool clear = false, set = false;
    int rc = parse_snooze_opts(argc, argv, body, &set, &clear);
    char id[64], path[160];
    if (!rc)
        rc = resolve(argv[optind], id, sizeof(id));
    if (rc) {
        json_decref(body);
        return rc;
    }
    snprintf(path, sizeof(path), "/droids/%s%s", id, set || clear ? "/snooze" : "");
    json_t *j = api(clear ? "DELETE" : set ? "PUT" : "GET", path, set ? body : NULL, &rc);
    json_decref(body);
    if (!j)
        return rc;
    show_snooze(j);
    json_decref(j);
    return 0;
}
