/* droids/droid_priv.h - what droid.c, validate.c and parse.c share. Private to droids/. */
#ifndef DMSD_DROIDS_DROID_PRIV_H
#define DMSD_DROIDS_DROID_PRIV_H

#include "droid.h"

#define DROID_PORT_MAX 65535

/* droid.c: frees n volumes and the array (accepts NULL). */
void droid_volumes_free(droid_volume *v, size_t n);
/* validate.c: replaces d's volumes with the array's [{name, mount_path}], each checked; on an error d keeps
 * those parsed before it. */
int droid_parse_volumes(json_t *arr, droid *d, dms_error *err);

#endif
