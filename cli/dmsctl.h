/* cli/dmsctl.h - what the files of dmsctl share: the connection, the calls to dmsd's API (one page, a whole
 * list, a droid's id from its name) and their errors, the printing of a droid; and the commands, one file per
 * group. A tool, not a library: errors are printed here (fail) and become the process's exit code. */
#ifndef DMSCTL_H
#define DMSCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "dmsctl_http.h"

#define EXIT_API   1
#define EXIT_USAGE 2

/* The server and the token (set up by main), and --json. */
extern ctl_conn conn;
extern bool json_out;

/* ---- errors and output (dmsctl_api.c) ---- */

/* "dmsctl: <message>" on stderr; returns code. */
int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void print_json(json_t *j);
/* o's string member k, or "-". Borrowed. */
const char *str(json_t *o, const char *k);
/* Prints j (as JSON with --json, else with human) and frees it; returns 0. */
int finish(json_t *j, void (*human)(json_t *));
/* A droid, one field a line; print_snooze its snooze schedule. */
void print_droid(json_t *d);
void print_snooze(json_t *sn);
/* "K=V" into obj; returns -1 on a missing '='. */
int put_kv(json_t *obj, const char *kv);

/* ---- the API (dmsctl_api.c) ---- */

/* One call; the answer (caller frees), or NULL with the error printed and *rc set to EXIT_API. body may be
 * NULL. */
json_t *api(const char *method, const char *path, json_t *body, int *rc);
/* A whole list, page after page (as api; path without a query). */
json_t *api_list(const char *path, int *rc);
/* The id of the droid ref names (an id or a name) into id; 0, or the exit code (error printed). */
int resolve(const char *ref, char *id, size_t size);
/* A command whose only argument is a droid: its id, or the exit code (usage or not found, printed). */
int one_droid(const char *cmd, int argc, char **argv, char *id, size_t size);

/* ---- usage (dmsctl.c) ---- */

/* Prints command name's usage to f; returns code. */
int usage_of(const char *name, FILE *f, int code);

/* ---- the commands: argv[0] is the command's name; each returns the process's exit code ---- */

/* dmsctl_show.c: looking at droids */
int cmd_ls(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_url(int argc, char **argv);
int cmd_events(int argc, char **argv);
int cmd_releases(int argc, char **argv);
int cmd_logs(int argc, char **argv);
int cmd_available(int argc, char **argv);
int cmd_git_check(int argc, char **argv);
/* dmsctl_change.c: creating and changing droids */
int cmd_create(int argc, char **argv);
int cmd_update(int argc, char **argv);
int cmd_rm(int argc, char **argv);
int cmd_start(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_restart(int argc, char **argv);
int cmd_rollback(int argc, char **argv);
int cmd_cancel_build(int argc, char **argv);
int cmd_snooze(int argc, char **argv);
/* dmsctl_jobs.c: build jobs (koalaCI's API) */
int cmd_job_create(int argc, char **argv);
int cmd_jobs(int argc, char **argv);
int cmd_job(int argc, char **argv);
int cmd_job_log(int argc, char **argv);
int cmd_job_cancel(int argc, char **argv);
int cmd_job_artifact(int argc, char **argv);

#endif
