/* token.c - HS256 JWTs (RFC 7519 / 7515) with HMAC-SHA256 from libcrypto. */
#include "token.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "json.h"
#include "jwt.h"
#include "mem.h"

#define AUD_NODE "manta-node"
#define AUD_USER "manta-user"

int token_secret_load(const char *path, uint8_t secret[TOKEN_SECRET_LEN], mt_error **err)
{
    if (fs_exists(path)) {
        size_t len = 0;
        cleanup_free char *data = fs_read_file(path, 4096, &len, err);
        if (!data)
            return mt_error_wrap(err, "The manager's token secret could not be read");
        if (len != TOKEN_SECRET_LEN)
            return mt_error_set(err, MT_ERR_CONFIG,
                                "The token secret %s is %zu bytes long instead of %d: delete it "
                                "to make a new one (every token minted before becomes invalid).",
                                path, len, TOKEN_SECRET_LEN);
        memcpy(secret, data, TOKEN_SECRET_LEN);
        return 0;
    }
    if (fs_mkdir_parent(path, 0700, err) < 0)
        return -1;
    size_t got = 0;
    while (got < TOKEN_SECRET_LEN) {
        ssize_t r = getrandom(secret + got, TOKEN_SECRET_LEN - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return mt_error_sys(err, errno, "Could not draw random bytes for the token secret");
        got += (size_t)r;
    }
    return fs_write_atomic(path, secret, TOKEN_SECRET_LEN, 0600, err);
}

static char *b64_json(json_t *obj)
{
    cleanup_free char *text = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    return base64url_encode((const unsigned char *)text, strlen(text));
}

static void hs256(const uint8_t secret[TOKEN_SECRET_LEN], const char *msg, size_t len,
                  unsigned char out[32])
{
    unsigned int outlen = 32;
    HMAC(EVP_sha256(), secret, TOKEN_SECRET_LEN, (const unsigned char *)msg, len, out, &outlen);
}

/* A token for aud, with a jti when jti is not NULL. */
static char *mint(const uint8_t secret[TOKEN_SECRET_LEN], const char *aud, const char *subject,
                  int64_t ttl_s, int64_t now_s, const char *jti)
{
    cleanup_json json_t *hdr = json_pack("{s:s, s:s}", "alg", "HS256", "typ", "JWT");
    cleanup_json json_t *claims =
        json_pack("{s:s, s:I, s:s}", "sub", subject, "iat", (json_int_t)now_s, "aud", aud);
    if (ttl_s > 0)
        json_object_set_new(claims, "exp", json_integer(now_s + ttl_s));
    if (jti)
        json_object_set_new(claims, "jti", json_string(jti));
    cleanup_free char *h = b64_json(hdr);
    cleanup_free char *c = b64_json(claims);
    cleanup_free char *signing = xasprintf("%s.%s", h, c);
    unsigned char mac[32];
    hs256(secret, signing, strlen(signing), mac);
    cleanup_free char *sig = base64url_encode(mac, sizeof(mac));
    return xasprintf("%s.%s", signing, sig);
}

char *token_create(const uint8_t secret[TOKEN_SECRET_LEN], const char *subject, int64_t ttl_s,
                   int64_t now_s)
{
    return mint(secret, AUD_NODE, subject, ttl_s, now_s, NULL);
}

char *token_create_user(const uint8_t secret[TOKEN_SECRET_LEN], const char *user, int64_t ttl_s,
                        int64_t now_s, char jti[TOKEN_JTI_LEN + 1], mt_error **err)
{
    uint8_t raw[TOKEN_JTI_LEN / 2];
    size_t got = 0;
    while (got < sizeof(raw)) {
        ssize_t r = getrandom(raw + got, sizeof(raw) - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return mt_error_sys(err, errno, "Could not draw random bytes for a token id"), NULL;
        got += (size_t)r;
    }
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(jti + 2 * i, 3, "%02x", raw[i]);
    return mint(secret, AUD_USER, user, ttl_s, now_s, jti);
}

/* Check a token of audience aud; copies the subject and (user tokens) the jti. */
static int verify(const uint8_t secret[TOKEN_SECRET_LEN], const char *token, int64_t now_s,
                  bool user, char *sub, size_t sub_size, char *jti, mt_error **err)
{
    if (!token || !*token)
        return mt_error_set(err, MT_ERR_CONFIG, "No token was presented.");
    if (!strncmp(token, "Bearer ", 7))
        token += 7;
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot1 || !dot2 || strchr(dot2 + 1, '.'))
        return mt_error_set(err, MT_ERR_CONFIG, "The token is not a JWT (three parts).");
    size_t hlen = 0, clen = 0, slen = 0;
    cleanup_free unsigned char *hdr = base64url_decode(token, (size_t)(dot1 - token), &hlen);
    cleanup_free unsigned char *cl = base64url_decode(dot1 + 1, (size_t)(dot2 - dot1 - 1), &clen);
    cleanup_free unsigned char *sig = base64url_decode(dot2 + 1, strlen(dot2 + 1), &slen);
    if (!hdr || !cl || !sig)
        return mt_error_set(err, MT_ERR_CONFIG, "The token is not valid base64url.");
    cleanup_json json_t *h = json_loadb((const char *)hdr, hlen, 0, NULL);
    const char *alg = h ? json_string_value(json_object_get(h, "alg")) : NULL;
    bool hs = alg && !strcmp(alg, "HS256");
    if (!hs)
        return mt_error_set(err, MT_ERR_CONFIG, "The token is not signed with HS256.");
    unsigned char mac[32];
    hs256(secret, token, (size_t)(dot2 - token), mac);
    if (slen != sizeof(mac) || CRYPTO_memcmp(mac, sig, sizeof(mac)) != 0)
        return mt_error_set(err, MT_ERR_CONFIG,
                            "The token's signature does not match this manager's secret: it was "
                            "minted by another manager or altered.");
    cleanup_json json_t *c = json_loadb((const char *)cl, clen, 0, NULL);
    if (!json_is_object(c))
        return mt_error_set(err, MT_ERR_CONFIG, "The token's claims are not a JSON object.");
    const char *aud = json_string_value(json_object_get(c, "aud"));
    json_t *exp = json_object_get(c, "exp");
    const char *s = json_string_value(json_object_get(c, "sub"));
    const char *id = json_string_value(json_object_get(c, "jti"));
    int rc = 0;
    if (user && (!aud || strcmp(aud, AUD_USER) != 0))
        rc = mt_error_set(err, MT_ERR_CONFIG,
                          aud && !strcmp(aud, AUD_NODE)
                              ? "The token is a node token, and node tokens do not work on the "
                                "user services: sign in, or mint a user token with "
                                "`manta_manager token create --user NAME`."
                              : "The token is not a user token of this manager: sign in, or mint "
                                "one with `manta_manager token create --user NAME`.");
    else if (!user && (!aud || strcmp(aud, AUD_NODE) != 0))
        rc = mt_error_set(err, MT_ERR_CONFIG,
                          aud && !strcmp(aud, AUD_USER)
                              ? "The token is a user token, and user tokens do not work on the "
                                "node service: give the node a node token (`manta_manager token "
                                "create --node ALIAS`)."
                              : "The token is not a node token.");
    else if (user && (!id || strlen(id) != TOKEN_JTI_LEN))
        rc = mt_error_set(err, MT_ERR_CONFIG, "The user token has no valid token id (jti).");
    else if (user && exp && (!json_is_integer(exp) || json_integer_value(exp) <= now_s))
        rc = mt_error_set(err, MT_ERR_CONFIG,
                          "The user token has expired: sign in again, or mint a new one with "
                          "`manta_manager token create --user NAME`.");
    else if (exp && (!json_is_integer(exp) || json_integer_value(exp) <= now_s))
        rc = mt_error_set(err, MT_ERR_CONFIG,
                          "The token has expired: mint a new one with `manta_manager token "
                          "create --node %s`.",
                          s ? s : "ALIAS");
    else if (!s || !*s)
        rc = mt_error_set(err, MT_ERR_CONFIG,
                          "The token names no node (its subject is missing or empty): mint one "
                          "with `manta_manager token create --node ALIAS`.");
    else if (sub && sub_size && strlen(s) >= sub_size)
        /* never cut the subject: two aliases sharing a prefix would become one node */
        rc = mt_error_set(err, MT_ERR_CONFIG,
                          "The token's node alias is longer than %zu bytes, the most this manager "
                          "accepts: mint a token for a shorter alias.",
                          sub_size - 1);
    else if (sub && sub_size)
        memcpy(sub, s, strlen(s) + 1);
    if (rc == 0 && jti && id) /* id was checked: jti is asked for user tokens only */
        memcpy(jti, id, TOKEN_JTI_LEN + 1);
    return rc;
}

int token_verify(const uint8_t secret[TOKEN_SECRET_LEN], const char *token, int64_t now_s,
                 char *sub, size_t sub_size, mt_error **err)
{
    return verify(secret, token, now_s, false, sub, sub_size, NULL, err);
}

int token_verify_user(const uint8_t secret[TOKEN_SECRET_LEN], const char *token, int64_t now_s,
                      char *user, size_t user_size, char jti[TOKEN_JTI_LEN + 1], mt_error **err)
{
    return verify(secret, token, now_s, true, user, user_size, jti, err);
}
