/* cli/dmsctl_change.c - the commands that create and change droids: create and update (one option parser
 * for both), rm, start, stop, restart, rollback, cancel-build and snooze. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmsctl.h"

int cmd_create(int argc, char **argv)
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

int cmd_update(int argc, char **argv)
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

int cmd_snooze(int argc, char **argv)
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
