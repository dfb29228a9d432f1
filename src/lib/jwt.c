/* jwt.c - JWT inspection; see jwt.h. */
#include "jwt.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mem.h"

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-' || c == '+')
        return 62;
    if (c == '_' || c == '/')
        return 63;
    return -1;
}

unsigned char *base64url_decode(const char *in, size_t inlen, size_t *outlen)
{
    while (inlen && in[inlen - 1] == '=')
        inlen--;
    if (inlen % 4 == 1)
        return NULL;
    unsigned char *out = xmalloc(inlen * 3 / 4 + 3);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < inlen; i++) {
        int v = b64val((unsigned char)in[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    out[o] = '\0';
    if (outlen)
        *outlen = o;
    return out;
}

char *base64url_encode(const unsigned char *in, size_t len)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = xmalloc(len * 4 / 3 + 4);
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = tab[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = tab[(acc << (6 - bits)) & 63];
    out[o] = '\0';
    return out;
}

size_t jwt_count_parts(const char *token)
{
    size_t n = 1;
    for (const char *p = token; *p; p++)
        n += *p == '.';
    return n;
}

static json_t *decode_part(const char *s, size_t len)
{
    size_t n = 0;
    cleanup_free unsigned char *raw = base64url_decode(s, len, &n);
    if (!raw)
        return NULL;
    cleanup_json json_t *j = json_loadb((const char *)raw, n, 0, NULL);
    return json_is_object(j) ? steal_ptr(j) : NULL;
}

static bool json_int_member(json_t *obj, const char *name, int64_t *out)
{
    json_t *v = json_object_get(obj, name);
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        *out = (int64_t)json_real_value(v);
        return true;
    }
    return false;
}

int jwt_inspect(const char *token, jwt_info *info, mt_error **err)
{
    memset(info, 0, sizeof(*info));
    size_t parts = jwt_count_parts(token);
    if (parts != 3)
        return mt_error_set(err, MT_ERR_PARSE,
                            "the token is not a JWT (%zu part%s, expected 3 separated by '.')",
                            parts, parts == 1 ? "" : "s");
    const char *d1 = strchr(token, '.');
    const char *d2 = strchr(d1 + 1, '.');
    cleanup_json json_t *hdr = decode_part(token, (size_t)(d1 - token));
    if (!hdr)
        return mt_error_set(err, MT_ERR_PARSE,
                            "the token is not a JWT (its header is not base64url-encoded JSON)");
    cleanup_json json_t *claims = decode_part(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!claims)
        return mt_error_set(err, MT_ERR_PARSE,
                            "the token is not a JWT (its payload is not base64url-encoded JSON)");
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    if (alg)
        snprintf(info->alg, sizeof(info->alg), "%s", alg);
    info->has_exp = json_int_member(claims, "exp", &info->exp);
    info->has_iat = json_int_member(claims, "iat", &info->iat);
    const char *sub = json_string_value(json_object_get(claims, "sub"));
    if (sub)
        snprintf(info->sub, sizeof(info->sub), "%s", sub);
    return 0;
}
