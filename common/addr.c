/* Address parsing and formatting (see addr.h). */
#include "common/addr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int split(const char *s, char *host, size_t host_cap, int *port, int min_port, merr *e)
{
    if (!s || !*s) return merr_set(e, MERR_INVALID, "empty address");
    const char *colon;
    const char *h = s;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return merr_set(e, MERR_INVALID, "bad address '%s': want [IPV6]:PORT", s);
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon) return merr_set(e, MERR_INVALID, "bad address '%s': want HOST:PORT", s);
        if (memchr(s, ':', (size_t)(colon - s)))
            return merr_set(e, MERR_INVALID, "bad address '%s': write IPv6 as [ADDR]:PORT", s);
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= host_cap)
        return merr_set(e, MERR_INVALID, "bad address '%s': empty or overlong host", s);
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end || p < min_port || p > 65535)
        return merr_set(e, MERR_INVALID, "bad address '%s': port must be %d..65535", s, min_port);
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

int maddr_split(const char *s, char *host, size_t host_cap, int *port, merr *e)
{
    return split(s, host, host_cap, port, 1, e);
}

static int parse(const char *s, struct sockaddr_storage *out, int min_port, merr *e)
{
    char host[MADDR_STR_MAX];
    int port = 0;
    int rc = split(s, host, sizeof(host), &port, min_port, e);
    if (rc) return rc;
    memset(out, 0, sizeof(*out));
    if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return 0;
    }
    return merr_set(e, MERR_INVALID, "bad address '%s': host must be an IP address or localhost",
                    s);
}

int maddr_parse(const char *s, struct sockaddr_storage *out, merr *e)
{
    return parse(s, out, 1, e);
}

int maddr_parse_listen(const char *s, struct sockaddr_storage *out, merr *e)
{
    return parse(s, out, 0, e);
}

void maddr_format(const struct sockaddr *sa, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
        snprintf(buf, cap, "%s:%u", ip, ntohs(v4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, cap, "[%s]:%u", ip, ntohs(v6->sin6_port));
    } else {
        snprintf(buf, cap, "?");
    }
}

int maddr_parse_list(const char *s, struct sockaddr_storage *out, int max, merr *e)
{
    if (!s || !*s) return merr_set(e, MERR_INVALID, "empty address list");
    int n = 0;
    const char *p = s;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char one[MADDR_STR_MAX + 8];
        if (len == 0 || len >= sizeof(one))
            return merr_set(e, MERR_INVALID, "bad address list '%s'", s);
        if (n == max) return merr_set(e, MERR_INVALID, "more than %d addresses in '%s'", max, s);
        memcpy(one, p, len);
        one[len] = '\0';
        int rc = maddr_parse(one, &out[n], e);
        if (rc) return rc;
        n++;
        p += len;
        if (*p == ',') p++;
    }
    return n;
}
