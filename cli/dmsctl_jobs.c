/* cli/dmsctl_jobs.c - the commands on build jobs (koalaCI's API: /job/create, /jobs, /job/ID ...). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dmsctl.h"

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

int cmd_job_create(int argc, char **argv)
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

int cmd_jobs(int argc, char **argv)
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

int cmd_job(int argc, char **argv)
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

int cmd_job_cancel(int argc, char **argv)
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

int cmd_job_log(int argc, char **argv)
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

int cmd_job_artifact(int argc, char **argv)
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
