/* users.c - user accounts of the user services; see users.h. */
#include "users.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "id.h"
#include "mem.h"
#include "utf8.h"

#define SALT_LEN 16
#define HASH_LEN 32

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static bool unhex(const char *s, uint8_t *out, size_t n)
{
    if (strlen(s) != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return false;
        out[i] = (uint8_t)v;
    }
    return true;
}

static int derive(const char *password, const uint8_t salt[SALT_LEN], int rounds,
                  uint8_t out[HASH_LEN], mt_error **err)
{
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, SALT_LEN, rounds, EVP_sha256(),
                          HASH_LEN, out) != 1)
        return mt_error_set(err, MT_ERR_IO, "The password could not be hashed (libcrypto).");
    return 0;
}

int users_check_name(const char *name, mt_error **err)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > USER_NAME_MAX)
        return mt_error_set(err, MT_ERR_USAGE, "A user name must be 1 to %d bytes long.",
                            USER_NAME_MAX);
    if (!utf8_valid(name, len))
        return mt_error_set(err, MT_ERR_USAGE, "A user name must be UTF-8 text.");
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x21 || *p == 0x7f || *p == '/')
            return mt_error_set(err, MT_ERR_USAGE,
                                "A user name may not hold spaces, control characters or '/'.");
    return 0;
}

int users_create(store *st, const char *name, const char *password, int64_t now_ms, char id[33],
                 mt_error **err)
{
    if (users_check_name(name, err) < 0)
        return -1;
    size_t plen = password ? strlen(password) : 0;
    if (plen < USER_PASSWORD_MIN || plen > USER_PASSWORD_MAX)
        return mt_error_set(err, MT_ERR_USAGE, "A password must be %d to %d bytes long.",
                            USER_PASSWORD_MIN, USER_PASSWORD_MAX);
    node_id uid;
    if (node_id_random(&uid, err) < 0)
        return -1;
    char uidx[33];
    snprintf(uidx, sizeof(uidx), "%016llx%016llx", (unsigned long long)uid.head,
             (unsigned long long)uid.tail);
    uint8_t salt[SALT_LEN], h[HASH_LEN];
    node_id rnd;
    if (node_id_random(&rnd, err) < 0)
        return -1;
    memcpy(salt, &rnd, SALT_LEN);
    if (derive(password, salt, USERS_PBKDF2_ROUNDS, h, err) < 0)
        return -1;
    char salthex[2 * SALT_LEN + 1], hashhex[2 * HASH_LEN + 1];
    hex(salt, SALT_LEN, salthex);
    hex(h, HASH_LEN, hashhex);
    cleanup_free char *rec =
        xasprintf("pbkdf2-sha256$%d$%s$%s", USERS_PBKDF2_ROUNDS, salthex, hashhex);
    if (store_object_put(st, "user", name, uidx, rec, strlen(rec), now_ms, false, err) < 0) {
        if ((*err)->code == MT_ERR_EXISTS) {
            mt_error_free(err);
            return mt_error_set(err, MT_ERR_EXISTS,
                                "A user named '%s' already exists: choose another name, or "
                                "delete that user first.",
                                name);
        }
        return mt_error_wrap(err, "The user '%s' could not be saved", name);
    }
    if (id)
        memcpy(id, uidx, sizeof(uidx));
    return 0;
}

int users_check_password(store *st, const char *name, const char *password, store_object *u,
                         mt_error **err)
{
    store_object o = {0};
    int r = store_object_get(st, "user", name, true, &o, err);
    if (r < 0)
        return -1;
    int rounds = USERS_PBKDF2_ROUNDS;
    uint8_t salt[SALT_LEN] = {0}, want[HASH_LEN] = {0}, got[HASH_LEN];
    bool parsed = false;
    if (r == 1) {
        cleanup_free char *rec = xstrndup((const char *)o.data, o.len);
        char *f[4] = {0};
        char *save = NULL;
        size_t k = 0;
        for (char *t = strtok_r(rec, "$", &save); t && k < 4; t = strtok_r(NULL, "$", &save))
            f[k++] = t;
        parsed = k == 4 && !strcmp(f[0], "pbkdf2-sha256") && (rounds = atoi(f[1])) > 0 &&
                 rounds <= 10000000 && unhex(f[2], salt, SALT_LEN) && unhex(f[3], want, HASH_LEN);
        if (!parsed)
            rounds = USERS_PBKDF2_ROUNDS;
    }
    /* an unknown user costs the same time as a wrong password */
    if (derive(password ? password : "", salt, rounds, got, err) < 0) {
        store_object_clear(&o);
        return -1;
    }
    bool ok = parsed && CRYPTO_memcmp(got, want, HASH_LEN) == 0;
    if (ok && u)
        *u = o;
    else
        store_object_clear(&o);
    return ok ? 1 : 0;
}

int users_delete(store *st, const char *name, mt_error **err)
{
    return store_object_delete(st, "user", name, err);
}
