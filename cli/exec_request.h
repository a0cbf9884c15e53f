/* cli/exec_request.h - the request of `dms-exec run` and `dms-exec start`, from their flags or a --spec file:
 * one parser for both commands. */
#ifndef DMS_EXEC_REQUEST_H
#define DMS_EXEC_REQUEST_H

#include "exec_cli.h"

#define MAX_MOUNTS 64
#define MAX_PORTS  64

/* The request and the storage its arrays point into. Strings are borrowed from argv. */
typedef struct req_builder {
    dms_exec_request req;
    char *env[MAX_LIST + 1];
    size_t n_env;
    char *labels[MAX_LIST + 1];
    size_t n_labels;
    dms_mount mounts[MAX_MOUNTS];
    dms_port ports[MAX_PORTS];
    char *entry[2];
    char exec_id[DMS_ID_MAX + 1];
    char *cap_drop[MAX_LIST + 1], *cap_add[MAX_LIST + 1];
    size_t n_cap_drop, n_cap_add;
    char *aliases[MAX_LIST + 1];
    size_t n_aliases;
    dms_healthcheck health; /* --health-*, --no-healthcheck; in the request only when one was given */
    char *health_test[2];
    const char *health_timing_flag; /* the first --health-* timing flag given, for messages */
    bool health_given;
    dms_exec_request *from_json; /* --spec: the parsed request; caller frees with dms_exec_request_free */
} req_builder;

/* Fills b from the options of cmd ("run" or "start"; it names the command in messages and --help) and the
 * workload's command after them. Exits 2 on a usage error, 0 after --help, 125 on a --spec the library
 * refuses. Generates the execution id when none is given; the job id defaults to it. argv is modified (the
 * values of --bind, --publish ... are split in place). */
void build_request(req_builder *b, const char *cmd, int argc, char **argv);
/* The request built: --spec's, else the flags'. Borrowed from b. */
const dms_exec_request *the_request(const req_builder *b);

#endif
