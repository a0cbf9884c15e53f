/* build/buildopts.h - what bounds a droid's build: the operator's settings, parsed from the environment in
 * main.c into dmsd_config; their defaults and ranges are here so that main.c and the builder agree.
 */
#ifndef DMSD_BUILD_BUILDOPTS_H
#define DMSD_BUILD_BUILDOPTS_H

#define BUILD_LOG_MAX_MB_DEFAULT 8 /* DMS_BUILD_LOG_MAX_MB: per file (build.out, build.err) */
#define BUILD_LOG_MAX_MB_CEILING 1024

#endif
