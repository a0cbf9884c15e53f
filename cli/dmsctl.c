/* cli/dmsctl.c - the command line client of dmsd.
 *
 *   dmsctl [--json] <command> [options]      (dmsctl help, dmsctl <command> --help)
 *
 * Server: DMS_URL (default http://127.0.0.1:8080). Token: DMS_TOKEN, or minted from DMS_JWT_SECRET +
 * DMS_USER (with DMS_JWT_AUDIENCE / DMS_JWT_ISSUER as aud / iss when set, as dmsd then requires them). A
 * droid is named by its id or its name. Exit status: 0 done, 1 the server or the network said no, 2 usage.
 *
 * This file holds the table of commands, their help, the set-up of the connection and `token`; the commands
 * live in dmsctl_show.c (looking at droids), dmsctl_change.c (creating and changing them) and dmsctl_jobs.c
 * (build jobs), over dmsctl_api.c (the calls to dmsd) and dmsctl_http.c (libcurl). */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../dms/api/auth.h"
#include "dmsctl.h"

#define DEFAULT_URL   "http://127.0.0.1:8080"
#define TOKEN_TTL_SEC (24 * 3600)

typedef struct command {
    const char *name;
    const char *args;
    const char *summary;
    const char *help;
    int (*run)(int argc, char **argv);
    bool needs_server;
} command;

static const command *find_command(const char *name);

/* A --help anywhere in a command line asks for that command's help. */
static bool wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            return true;
    return false;
}

int usage_of(const char *name, FILE *f, int code)
{
    const command *c = find_command(name);
    fprintf(f, "usage: dmsctl [--json] %s %s\n\n%s\n%s", c->name, c->args, c->summary, c->help);
    return code;
}

/* What a minted token must satisfy: dmsd's own settings, read from the same environment. */
static auth_policy mint_policy(void)
{
    return (auth_policy){.secret = getenv("DMS_JWT_SECRET"),
                         .require_exp = true,
                         .audience = getenv("DMS_JWT_AUDIENCE"),
                         .issuer = getenv("DMS_JWT_ISSUER")};
}

static int cmd_token(int argc, char **argv)
{
    if (argc != 2)
        return usage_of("token", stderr, EXIT_USAGE);
    auth_policy pol = mint_policy();
    char *tok = NULL;
    dms_error err = {0};
    if (auth_mint(&pol, argv[1], TOKEN_TTL_SEC, &tok, &err) < 0)
        return fail(EXIT_USAGE, "%s", err.message);
    puts(tok);
    free(tok);
    return 0;
}

static int cmd_help(int argc, char **argv);

static const command commands[] = {
    {"create",
     "NAME --repo REPO [--branch B] [--commit SHA] [--port P] [--env K=V]... [--volume NAME:/PATH]...\n"
     "       [--compose-file PATH]",
     "Create a droid; it is built from the repo's Dockerfile (or its compose file) and started.",
     "  --repo REPO        git URL (https://, ssh://, file://, user@host:path) or a local repository path\n"
     "  --branch B         branch to deploy (default: the repository's default branch)\n"
     "  --commit SHA       pin a commit of that branch\n"
     "  --port P           port the app listens on in its container ($PORT; default 8080)\n"
     "  --env K=V          environment variable (repeatable)\n"
     "  --volume NAME:/P   a named volume mounted at /P, kept across rebuilds (repeatable)\n"
     "  --language L       node, python, static or shell: the stack of a repository without a Dockerfile\n"
     "                     (default: detected from its files)\n"
     "  --follow           rebuild when the branch moves (polling and a push hook; the hook secret is shown\n"
     "                     once)\n"
     "  --compose-file P   the compose file of a multi-container droid, relative to the repository's root\n"
     "                     (default: compose.yaml, compose.yml, docker-compose.yaml or docker-compose.yml\n"
     "                     at the root makes one; see GET /droids/ID for its services)\n",
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
    {"logs",
     "DROID [-f] [--build|--err] [--tail N] [--from NS --limit N] [--timestamps] [--run ID]\n"
     "       [--service NAME]",
     "Print a droid's logs (runtime logs of its current container, or build logs).",
     "  -f, --follow       keep printing as lines arrive (until the container or build ends)\n"
     "  --build, --err     build output (build.out) or build errors (build.err)\n"
     "  --tail N           only the last N lines\n"
     "  --from NS          only lines after this timestamp (ns); the next page starts at the printed cursor\n"
     "  --limit N          at most N lines\n"
     "  --timestamps       prefix each line with its time\n"
     "  --run ID           an earlier container run (see events)\n"
     "  --service NAME     one service of a compose droid (default: all of them, each line tagged)\n",
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
    {"token", "USER", "Mint a bearer token for USER from DMS_JWT_SECRET (valid 24 h).",
     "The token carries DMS_JWT_AUDIENCE as aud and DMS_JWT_ISSUER as iss when they are set.\n", cmd_token,
     false},
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
    auth_policy pol = mint_policy();
    if (auth_mint(&pol, user, TOKEN_TTL_SEC, &conn.token, &err) < 0)
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
    /* Output that could not be written (a full disk, a closed pipe) is a failed command. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "dmsctl: could not write all of the output to stdout\n");
        return rc ? rc : EXIT_API;
    }
    return rc;
}
