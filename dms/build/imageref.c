/* imageref.c - image references and the operator's allow-list (see imageref.h). */
#include "imageref.h"

#include <stdio.h>
#include <string.h>

#include <dms/backend.h>

#define NAME_MAX_BYTES 255 /* distribution/reference's NameTotalLengthMax */
#define TAG_MAX_BYTES  128

static bool lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return n > 0;
}

/* [a-z0-9]+((.|_|__|-+)[a-z0-9]+)* */
static bool path_component(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (!lower_alnum(s[i]))
            return false;
        while (i < n && lower_alnum(s[i]))
            i++;
        if (i == n)
            return true;
        size_t sep = i;
        while (i < n && s[i] == '-')
            i++;
        if (i == sep && s[i] == '_' && i + 1 < n && s[i + 1] == '_')
            i += 2;
        else if (i == sep && (s[i] == '.' || s[i] == '_'))
            i++;
        if (i == sep || i == n)
            return false;
    }
    return n > 0;
}

/* host[:port], host made of [A-Za-z0-9-] labels joined by dots. */
static bool domain_component(const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    size_t hn = colon ? (size_t)(colon - s) : n;
    if (!hn || s[0] == '.' || s[0] == '-' || s[hn - 1] == '.' || s[hn - 1] == '-')
        return false;
    for (size_t i = 0; i < hn; i++)
        if (!(lower_alnum(s[i]) || (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-' || s[i] == '.'))
            return false;
    if (!colon)
        return true;
    if (colon + 1 == s + n)
        return false;
    for (const char *p = colon + 1; p < s + n; p++)
        if (*p < '0' || *p > '9')
            return false;
    return true;
}

static bool tag_valid(const char *s, size_t n)
{
    if (!n || n > TAG_MAX_BYTES)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool word = lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '_';
        if (!word && (i == 0 || (c != '.' && c != '-')))
            return false;
    }
    return true;
}

/* The engine looks a reference up as an image id when no tag of that name exists: a bare hex string of any
 * length is an id prefix, and so is sha256:<hex> (read as name "sha256", tag "<hex>"). */
static bool looks_like_id(const char *ref)
{
    const char *colon = strchr(ref, ':');
    if (!colon)
        return all_hex(ref, strlen(ref));
    size_t n = (size_t)(colon - ref);
    return (n == 6 &&
            (!strncmp(ref, "sha256", 6) || !strncmp(ref, "sha384", 6) || !strncmp(ref, "sha512", 6)));
}

static bool is_domain(const char *s, size_t n)
{
    return memchr(s, '.', n) || memchr(s, ':', n) || (n == 9 && !strncmp(s, "localhost", 9));
}

static bool is_default_registry(const char *s, size_t n)
{
    return (n == 9 && !strncmp(s, "docker.io", 9)) || (n == 15 && !strncmp(s, "index.docker.io", 15));
}

bool imgref_parse(const char *ref, imgref *out)
{
    memset(out, 0, sizeof(*out));
    size_t len = strlen(ref);
    if (!len || len >= IMGREF_MAX)
        return false;
    if (strchr(ref, '@') || looks_like_id(ref)) {
        /* Pinned: only an exact entry may allow it, so its grammar matters less than that it names nothing
         * else; still, nothing but reference characters. */
        out->pinned = true;
        return strspn(ref, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:@+=") == len;
    }
    const char *slash = strrchr(ref, '/'), *colon = strrchr(ref, ':');
    const char *tag = colon && (!slash || colon > slash) ? colon + 1 : NULL;
    size_t name_len = tag ? (size_t)(tag - 1 - ref) : len;
    if (!name_len || name_len > NAME_MAX_BYTES || (tag && !tag_valid(tag, strlen(tag))))
        return false;
    const char *end = ref + name_len, *path = ref, *first = memchr(ref, '/', name_len);
    bool default_registry = true;
    if (first && is_domain(ref, (size_t)(first - ref))) {
        if (!domain_component(ref, (size_t)(first - ref)))
            return false;
        default_registry = is_default_registry(ref, (size_t)(first - ref));
        path = first + 1;
    }
    for (const char *p = path; p < end;) {
        const char *e = memchr(p, '/', (size_t)(end - p));
        if (!path_component(p, e ? (size_t)(e - p) : (size_t)(end - p)) || (e && e + 1 == end))
            return false;
        p = e ? e + 1 : end;
    }
    /* The familiar form: no default registry, and library/<name> there is <name> (docker.io/library/busybox
     * is busybox). Another registry stays part of the name. */
    if (default_registry) {
        size_t pl = (size_t)(end - path);
        if (pl > 8 && !strncmp(path, "library/", 8) && !memchr(path + 8, '/', pl - 8))
            path += 8;
    } else {
        path = ref;
    }
    snprintf(out->canon, sizeof(out->canon), "%.*s:%s", (int)(end - path), path, tag ? tag : "latest");
    return true;
}

/* Each entry of a comma-separated list, trimmed of blanks, empty ones skipped; fn returning true stops. */
static bool each_entry(const char *list, bool (*fn)(void *ud, const char *entry), void *ud)
{
    for (const char *p = list; p && *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        const char *s = p;
        while (n && (*s == ' ' || *s == '\t'))
            s++, n--;
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        char entry[IMGREF_MAX];
        if (n && n < sizeof(entry)) {
            memcpy(entry, s, n);
            entry[n] = '\0';
            if (fn(ud, entry))
                return true;
        } else if (n && fn(ud, "\x01")) { /* too long: not an entry that could match, but one to report */
            return true;
        }
        p = e ? e + 1 : NULL;
    }
    return false;
}

typedef struct match_args {
    const char *ref;
    const imgref *r;
} match_args;

static bool entry_matches(void *ud, const char *entry)
{
    const match_args *m = ud;
    size_t n = strlen(entry);
    if (entry[n - 1] == '*') {
        if (m->r->pinned)
            return false; /* an id or a digest is never allowed by a pattern */
        const char *prefix = entry;
        if (!strncmp(prefix, "docker.io/", 10))
            prefix += 10;
        return !strncmp(m->r->canon, prefix, strlen(prefix) - 1);
    }
    if (m->r->pinned)
        return strcmp(entry, m->ref) == 0;
    imgref er;
    return imgref_parse(entry, &er) && !er.pinned && strcmp(er.canon, m->r->canon) == 0;
}

bool imgref_listed(const char *list, const char *ref, const imgref *r)
{
    match_args m = {.ref = ref, .r = r};
    return each_entry(list, entry_matches, &m);
}

typedef struct bad_entry {
    char entry[IMGREF_MAX];
} bad_entry;

static bool entry_invalid(void *ud, const char *entry)
{
    bad_entry *b = ud;
    size_t n = strlen(entry);
    imgref r;
    bool ok;
    if (entry[n - 1] == '*')
        ok = strspn(entry, "abcdefghijklmnopqrstuvwxyz0123456789._-/:") == n - 1;
    else
        ok = imgref_parse(entry, &r);
    if (!ok)
        snprintf(b->entry, sizeof(b->entry), "%s", entry[0] == '\x01' ? "(an entry too long)" : entry);
    return !ok;
}

int imgref_list_validate(const char *list, dms_error *err)
{
    bad_entry b = {{0}};
    if (each_entry(list, entry_invalid, &b))
        return dms_error_set(
            err, DMS_E_INVALID, "DMS_BUILD_ALLOWED_IMAGES",
            "DMS_BUILD_ALLOWED_IMAGES: \"%.200s\" is neither an image reference (busybox:1.36, "
            "dms-test/web, an image id) nor a prefix ending in '*' (dms-test/*)",
            b.entry);
    return 0;
}
