/* dms/settings.h - dmsd's settings: the command line (--listen, --data-dir, --backend, --port-file, --routes,
 * --help, --version) and the DMS_* environment, each with its default and range, checked together before
 * anything starts (settings.c lists every variable). */
#ifndef DMSD_SETTINGS_H
#define DMSD_SETTINGS_H

#include "app.h"

/* Fills cfg from the environment, then argv (an option wins over its variable). --help and --version print
 * to stdout and exit 0; --routes prints the route table as JSON and exits (0, or 1 when it cannot be
 * written); a variable out of its range, or one the checks refuse, prints why on stderr and exits 2. Returns
 * 0, or -1 after printing why on stderr (a bad option or argument, a missing DMS_JWT_SECRET, settings that
 * contradict each other): the caller exits 2. What it sets is freed by settings_free. */
int settings_parse(int argc, char **argv, dmsd_config *cfg);
/* Frees every string in cfg (data_dir too, once main has made it absolute); accepts a cfg never parsed. */
void settings_free(dmsd_config *cfg);

#endif
