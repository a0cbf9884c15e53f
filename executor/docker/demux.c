/* demux.c - the multiplexed stream parser and Docker's log timestamps. A state machine that accepts any
 * split: an older C log parser assumed each 8-byte header arrives in one piece, and lost frames when it did
 * not. */
#include "demux.h"

#include <string.h>
#include <time.h>

int docker_demux_feed(docker_demux *d, const char *data, size_t len, docker_demux_fn fn, void *ud)
{
    if (d->raw)
        return len ? fn(ud, DOCKER_FRAME_STDOUT, data, len, true) : 0;
    while (len > 0) {
        if (!d->in_frame) {
            size_t take = DOCKER_FRAME_HDR_BYTES - d->hdr_len;
            if (take > len)
                take = len;
            memcpy(d->hdr + d->hdr_len, data, take);
            d->hdr_len += take;
            data += take;
            len -= take;
            if (d->hdr_len < DOCKER_FRAME_HDR_BYTES)
                return 0;
            if (d->hdr[0] > DOCKER_FRAME_SYSTEMERR || d->hdr[1] || d->hdr[2] || d->hdr[3])
                return -1;
            d->stream = d->hdr[0] == 0 ? DOCKER_FRAME_STDOUT : d->hdr[0];
            d->remaining = (uint32_t)d->hdr[4] << 24 | (uint32_t)d->hdr[5] << 16 | (uint32_t)d->hdr[6] << 8 |
                           (uint32_t)d->hdr[7];
            d->hdr_len = 0;
            d->in_frame = true;
            if (d->remaining == 0) {
                d->in_frame = false;
                int r = fn(ud, d->stream, data, 0, true);
                if (r < 0)
                    return r;
            }
            continue;
        }
        size_t take = d->remaining < len ? d->remaining : len;
        d->remaining -= (uint32_t)take;
        bool end = d->remaining == 0;
        if (end)
            d->in_frame = false;
        int r = fn(ud, d->stream, data, take, end);
        if (r < 0)
            return r;
        data += take;
        len -= take;
    }
    return 0;
}

void docker_demux_reset(docker_demux *d)
{
    bool raw = d->raw;
    memset(d, 0, sizeof(*d));
    d->raw = raw;
}

bool docker_demux_at_boundary(const docker_demux *d)
{
    return d->raw || (!d->in_frame && d->hdr_len == 0);
}

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

size_t docker_parse_timestamp(const char *s, size_t len, int64_t *ns)
{
    /* YYYY-MM-DDTHH:MM:SS */
    int Y, M, D, h, m, sec;
    if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
        digits(s, 4, &Y) || digits(s + 5, 2, &M) || digits(s + 8, 2, &D) || digits(s + 11, 2, &h) ||
        digits(s + 14, 2, &m) || digits(s + 17, 2, &sec))
        return 0;
    size_t i = 19;
    int64_t frac = 0;
    int nd = 0;
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (nd < 9) {
                frac = frac * 10 + (s[i] - '0');
                nd++;
            }
            i++;
        }
    }
    for (; nd < 9; nd++)
        frac *= 10;
    int64_t offset_s = 0;
    if (i < len && s[i] == 'Z') {
        i++;
    } else if (i + 6 <= len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om))
            return 0;
        offset_s = (int64_t)(oh * 3600 + om * 60) * (s[i] == '+' ? 1 : -1);
        i += 6;
    } else {
        return 0;
    }
    if (i >= len || s[i] != ' ')
        return 0;
    struct tm tm = {
        .tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec};
    time_t t = timegm(&tm);
    *ns = ((int64_t)t - offset_s) * 1000000000LL + frac;
    return i + 1;
}
