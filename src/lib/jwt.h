/* jwt.h - inspecting a JWT on the node side: shape, header and claims, expiry. The node never
 * verifies signatures (the manager does); it only reads what it needs to warn the operator. */
#ifndef MANTA_JWT_H
#define MANTA_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct jwt_info {
    char alg[16]; /* header "alg", "" if absent */
    bool has_exp;
    int64_t exp; /* claims "exp" (seconds since the epoch) */
    bool has_iat;
    int64_t iat;
    char sub[128]; /* claims "sub", truncated; "" if absent */
} jwt_info;

/* Number of '.'-separated parts of a token (a JWT has 3). */
size_t jwt_count_parts(const char *token);

/* Decode header and claims of a compact JWS. Errors say what is wrong with the shape, never
 * quoting the token. */
int jwt_inspect(const char *token, jwt_info *info, mt_error **err);

/* base64url (no padding required) decode. Returns owned bytes (NUL-terminated) or NULL if
 * malformed. */
unsigned char *base64url_decode(const char *in, size_t inlen, size_t *outlen);

/* base64url encode without padding. Returns owned text. */
char *base64url_encode(const unsigned char *in, size_t len);

#endif
