/* egress.c - the address policy of git connections (see egress.h). */
#include "egress.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common.h"

#define EGRESS_ENTRY_MAX 64 /* characters of one entry: an IPv6 CIDR is at most 43 */
#define V4_BITS          32
#define V6_BITS          128
#define V4_BYTES         4
#define V6_BYTES         16

typedef struct special_range {
    uint8_t addr[V6_BYTES];
    unsigned prefix;
    const char *kind;
} special_range;

/* IANA's special-purpose registries (RFC 6890 and successors): nothing a git server on the internet lives in.
 */
static const special_range special_v4[] = {
    {{0, 0, 0, 0}, 8, "this network"},
    {{10, 0, 0, 0}, 8, "private"},
    {{100, 64, 0, 0}, 10, "shared address space"},
    {{127, 0, 0, 0}, 8, "loopback"},
    {{169, 254, 0, 0}, 16, "link-local"},
    {{172, 16, 0, 0}, 12, "private"},
    {{192, 0, 0, 0}, 24, "IETF protocol assignments"},
    {{192, 0, 2, 0}, 24, "documentation"},
    {{192, 88, 99, 0}, 24, "6to4 relay anycast"},
    {{192, 168, 0, 0}, 16, "private"},
    {{198, 18, 0, 0}, 15, "benchmarking"},
    {{198, 51, 100, 0}, 24, "documentation"},
    {{203, 0, 113, 0}, 24, "documentation"},
    {{224, 0, 0, 0}, 4, "multicast"},
    {{240, 0, 0, 0}, 4, "reserved"}, /* and the broadcast address */
};

static const special_range special_v6[] = {
    {{0}, 128, "unspecified"},
    {{[15] = 1}, 128, "loopback"},
    {{0, 0x64, 0xff, 0x9b, 0, 1}, 48, "local-use NAT64"},
    {{0x01, 0x00}, 64, "discard"},
    {{0x20, 0x01, 0, 0}, 32, "Teredo"},
    {{0x20, 0x01, 0x0d, 0xb8}, 32, "documentation"},
    {{0x20, 0x01, 0, 0}, 23, "IETF protocol assignments"},
    {{0xfc}, 7, "unique local (private)"},
    {{0xfe, 0x80}, 10, "link-local"},
    {{0xfe, 0xc0}, 10, "site-local"},
    {{0xff}, 8, "multicast"},
};

/* IPv6 forms that carry an IPv4 address, and where: such an address reaches (or is translated to) that IPv4
 * address, so it is judged as that address. */
typedef struct embedding {
    uint8_t prefix_bytes[V6_BYTES];
    unsigned prefix;
    unsigned v4_offset;
} embedding;

static const embedding embeddings[] = {
    {{[10] = 0xff, [11] = 0xff}, 96, 12}, /* ::ffff:0:0/96, IPv4-mapped */
    {{[8] = 0xff, [9] = 0xff}, 96, 12},   /* ::ffff:0:0:0/96, IPv4-translated (SIIT) */
    {{0, 0x64, 0xff, 0x9b}, 96, 12},      /* 64:ff9b::/96, NAT64 */
    {{0x20, 0x02}, 16, 2},                /* 2002::/16, 6to4 */
    {{0}, 96, 12},                        /* ::/96, IPv4-compatible (deprecated) */
};

static bool prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, whole) != 0)
        return false;
    if (!rest)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (net[whole] & mask);
}

static bool allowed_by(int family, const uint8_t *a, const egress_net *allow, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (allow[i].family == family && prefix_match(a, allow[i].addr, allow[i].prefix))
            return true;
    return false;
}

static const char *judge_v4(const uint8_t *a, const egress_net *allow, size_t n)
{
    if (allowed_by(AF_INET, a, allow, n))
        return NULL;
    for (size_t i = 0; i < DMS_ARRAY_SIZE(special_v4); i++)
        if (prefix_match(a, special_v4[i].addr, special_v4[i].prefix))
            return special_v4[i].kind;
    return NULL;
}

static const char *judge_v6(const uint8_t *a, const egress_net *allow, size_t n)
{
    if (allowed_by(AF_INET6, a, allow, n))
        return NULL;
    for (size_t i = 0; i < DMS_ARRAY_SIZE(special_v6); i++)
        if (prefix_match(a, special_v6[i].addr, special_v6[i].prefix))
            return special_v6[i].kind;
    for (size_t i = 0; i < DMS_ARRAY_SIZE(embeddings); i++)
        if (prefix_match(a, embeddings[i].prefix_bytes, embeddings[i].prefix))
            return judge_v4(a + embeddings[i].v4_offset, allow, n);
    return NULL;
}

const char *egress_refusal(const struct sockaddr *sa, const egress_net *allow, size_t n)
{
    if (sa->sa_family == AF_INET)
        return judge_v4((const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr, allow, n);
    if (sa->sa_family == AF_INET6)
        return judge_v6(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr, allow, n);
    return "not an IP address";
}

const char *egress_refusal_text(const char *ip, const egress_net *allow, size_t n)
{
    uint8_t a[V6_BYTES];
    if (inet_pton(AF_INET, ip, a) == 1)
        return judge_v4(a, allow, n);
    if (inet_pton(AF_INET6, ip, a) == 1)
        return judge_v6(a, allow, n);
    return "not an IP address";
}

/* One "address[/prefix]" into *net. */
static int parse_one(const char *entry, egress_net *net, dms_error *err)
{
    char text[EGRESS_ENTRY_MAX];
    if (strlen(entry) >= sizeof(text))
        return dms_error_set(err, DMS_E_INVALID, EGRESS_ALLOW_NETS_SETTING,
                             "%s: \"%.20s...\" is too long for a CIDR", EGRESS_ALLOW_NETS_SETTING, entry);
    snprintf(text, sizeof(text), "%s", entry);
    char *slash = strchr(text, '/');
    if (slash)
        *slash = '\0';
    memset(net, 0, sizeof(*net));
    unsigned bits;
    if (inet_pton(AF_INET, text, net->addr) == 1) {
        net->family = AF_INET;
        bits = V4_BITS;
    } else if (inet_pton(AF_INET6, text, net->addr) == 1) {
        net->family = AF_INET6;
        bits = V6_BITS;
    } else {
        return dms_error_set(err, DMS_E_INVALID, EGRESS_ALLOW_NETS_SETTING,
                             "%s: \"%s\" is not an IPv4 or IPv6 network (e.g. 127.0.0.0/8, fd00::/8)",
                             EGRESS_ALLOW_NETS_SETTING, entry);
    }
    net->prefix = bits;
    if (slash) {
        const char *p = slash + 1;
        char *end = NULL;
        unsigned long v = strtoul(p, &end, 10);
        if (!isdigit((unsigned char)*p) || *end || v > bits)
            return dms_error_set(err, DMS_E_INVALID, EGRESS_ALLOW_NETS_SETTING,
                                 "%s: \"%s\" has a prefix length that is not 0-%u", EGRESS_ALLOW_NETS_SETTING,
                                 entry, bits);
        net->prefix = (unsigned)v;
    }
    uint8_t masked[V6_BYTES] = {0};
    unsigned whole = net->prefix / 8, rest = net->prefix % 8;
    memcpy(masked, net->addr, whole);
    if (rest)
        masked[whole] = (uint8_t)(net->addr[whole] & (0xff << (8 - rest)));
    if (memcmp(masked, net->addr, bits / 8) != 0)
        return dms_error_set(err, DMS_E_INVALID, EGRESS_ALLOW_NETS_SETTING,
                             "%s: \"%s\" has host bits set: write the network's first address",
                             EGRESS_ALLOW_NETS_SETTING, entry);
    return 0;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int egress_parse_nets(const char *spec, egress_net **out, size_t *n, dms_error *err)
{
    *out = NULL;
    *n = 0;
    if (!spec)
        return 0;
    _cleanup_free_ char *copy = strdup(spec);
    egress_net *nets = calloc(EGRESS_NETS_MAX, sizeof(*nets));
    if (!copy || !nets) {
        free(nets);
        return dms_error_set(err, DMS_E_NOMEM, NULL, "out of memory");
    }
    size_t count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *entry = trim(tok);
        if (!*entry)
            continue;
        int r = count >= EGRESS_NETS_MAX ? dms_error_set(err, DMS_E_INVALID, EGRESS_ALLOW_NETS_SETTING,
                                                         "%s lists more than %d networks",
                                                         EGRESS_ALLOW_NETS_SETTING, EGRESS_NETS_MAX)
                                         : parse_one(entry, &nets[count], err);
        if (r < 0) {
            free(nets);
            return r;
        }
        count++;
    }
    if (!count) {
        free(nets);
        return 0;
    }
    *out = nets;
    *n = count;
    return 0;
}
