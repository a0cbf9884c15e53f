/* executor/security.h - private to the framework and its backends (built with -Iexecutor): the security part
 * of a request (dms_security, dms/request.h) checked and turned into a capability mask. Thread-safe. */
#ifndef DMS_SECURITY_PRIV_H
#define DMS_SECURITY_PRIV_H

#include <stdbool.h>
#include <stdint.h>

#include <dms/request.h>

/* Known names only, no name twice in a list nor in both lists; err->field names the entry
 * ("security.cap_add[1]"). Called by dms_exec_request_validate(). */
int dms_security_validate(const dms_security *s, dms_error *err);

/* For the backends, in libdms-util.a (capmask.c) like util.h's helpers: not exported, not installed. */

/* The capability set a workload keeps: base (bit n = capability n) minus cap_drop plus cap_add, in Docker's
 * order ("ALL" in cap_drop clears base first). Only bits 0..DMS_CAP_LAST can be set. */
uint64_t dmsu_security_cap_mask(const dms_security *s, uint64_t base);

/* True if the request drops or adds any capability. */
bool dmsu_security_has_caps(const dms_security *s);

#endif
