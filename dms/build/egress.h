/* build/egress.h - which network addresses dmsd's git may connect to (DMS_GIT_ALLOW_NETS).
 *
 * A repository URL is the user's: without a policy, dmsd would fetch from its own loopback services, the
 * host's private networks or a cloud metadata address on the user's behalf, and /git/check would tell open
 * ports from closed ones. So every address a git connection would use is checked here first: loopback,
 * link-local, private, shared (CGN), multicast, unspecified, documentation, benchmarking and reserved ranges
 * are refused, in both families, and an IPv6 address that carries an IPv4 one (IPv4-mapped, -compatible,
 * -translated, NAT64, 6to4) is judged by the IPv4 address it carries; Teredo and local-use NAT64 are refused
 * outright (their IPv4 address cannot be read back reliably). The operator allows networks explicitly with a
 * list of CIDRs, which wins over every refusal. Pure functions: thread-safe, no I/O.
 */
#ifndef DMSD_BUILD_EGRESS_H
#define DMSD_BUILD_EGRESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <dms/executor.h>

#define EGRESS_ALLOW_NETS_SETTING "DMS_GIT_ALLOW_NETS"
#define EGRESS_NETS_MAX           64 /* entries of DMS_GIT_ALLOW_NETS */

typedef struct egress_net {
    sa_family_t family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];   /* the network (the first 4 bytes for AF_INET), host bits zero */
    unsigned prefix;    /* 0-32 or 0-128 */
} egress_net;

/* Parses a comma-separated list of CIDRs ("127.0.0.0/8, fd00::/8"; a bare address is one host) into
 * *out (caller owns; free()) and *n. Empty or NULL: none. INVALID (field DMS_GIT_ALLOW_NETS) naming the
 * entry that is not a CIDR, or whose host bits are set (a typo that would allow more or less than meant). */
int egress_parse_nets(const char *spec, egress_net **out, size_t *n, dms_error *err);

/* NULL when dmsd may connect to sa (AF_INET or AF_INET6), else why not: the kind of range ("loopback",
 * "private", "link-local", ...), for the operator's log. An address inside one of allow[0..n) is allowed. */
const char *egress_refusal(const struct sockaddr *sa, const egress_net *allow, size_t n);

/* The same for an address in text (tests, literal hosts); "not an IP address" when it is none. */
const char *egress_refusal_text(const char *ip, const egress_net *allow, size_t n);

#endif
