/* dms-bench - benchmarks of the Docker executor against a bare Engine API client and the docker CLI.
 *
 *   dms-bench [--json FILE] [--results DIR] lifecycle|logs|concurrency|dmsd|all
 *
 * Sizes come from the environment (BENCH_N, BENCH_LOG_MIB, BENCH_CONC_K, ...; see bench/README.md). Each run
 * opens the docker executor "bench", removes what an earlier run left, runs, cleans up, and checks through
 * the engine that no container, network or volume labelled io.dms.executor=bench is left. Exit status: 0 when
 * every benchmark ran, every byte count was exact and nothing was left behind; 1 otherwise. Missed targets
 * are reported, not failed: timing never fails anything. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: dms-bench [--json FILE] [--results DIR] lifecycle|logs|concurrency|dmsd|all\n"
            "\n"
            "  --json FILE     merge the figures into FILE under the benchmark's name\n"
            "  --results DIR   where the executor keeps its state while running (default bench/results)\n"
            "\n"
            "Environment: BENCH_N, BENCH_WARMUP, BENCH_MAX_SECONDS (lifecycle); BENCH_LOG_MIB, "
            "BENCH_LOG_ROUNDS,\n"
            "BENCH_LOG_HISTORY_ROUNDS (logs); BENCH_CONC_K, BENCH_CONC_ROUNDS (concurrency); BENCH_DMSD_N,\n"
            "BENCH_DMSD_CLIENTS (dmsd); BENCH_IMAGE. See bench/README.md.\n");
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"json", required_argument, NULL, 'j'},
                                       {"results", required_argument, NULL, 'r'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    const char *json_path = NULL, *results_dir = "bench/results";
    int c;
    while ((c = getopt_long(argc, argv, "j:r:h", lo, NULL)) != -1) {
        switch (c) {
        case 'j':
            json_path = optarg;
            break;
        case 'r':
            results_dir = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *which = argv[optind];
    static const struct {
        const char *name;
        int (*fn)(bench_env *, const char *);
    } benches[] = {{"lifecycle", bench_lifecycle},
                   {"logs", bench_logs},
                   {"concurrency", bench_concurrency},
                   {"dmsd", bench_dmsd}};
    bool all = strcmp(which, "all") == 0, known = all;
    for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
        known = known || strcmp(which, benches[i].name) == 0;
    if (!known) {
        fprintf(stderr, "dms-bench: unknown benchmark \"%s\"\n", which);
        usage(stderr);
        return 2;
    }

    dms_error err = {0};
    if (dms_global_init(&err) < 0) {
        fprintf(stderr, "dms-bench: %s\n", err.message);
        return 1;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    bench_env env;
    if (bench_env_open(&env, results_dir) < 0) {
        dms_global_cleanup();
        return 1;
    }
    int failed = 0;
    for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
        if (all || strcmp(which, benches[i].name) == 0)
            failed += benches[i].fn(&env, json_path) < 0;
    int warnings = atomic_load(&env.log_warnings);
    if (warnings)
        printf("note: the executor logged %d warnings or errors during the run (above, on stderr)\n",
               warnings);
    if (bench_env_close(&env) < 0)
        failed++;
    dms_global_cleanup();
    if (failed)
        fprintf(stderr, "dms-bench: %d problem(s): see the messages above\n", failed);
    return failed ? 1 : 0;
}
