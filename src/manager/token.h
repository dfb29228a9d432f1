/* token.h - node tokens: HS256 JSON Web Tokens minted and verified by the manager.
 *
 * Claims: {"sub": <node alias>, "iat": <now>, "exp": <now + ttl> (absent when ttl is 0),
 * "aud": "manta-node"}. The secret is 32 random bytes kept in a 0600 file beside the store;
 * rotating it (deleting the file) invalidates every token. */
#ifndef MANTA_MGR_TOKEN_H
#define MANTA_MGR_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define TOKEN_SECRET_LEN 32

/* Read the secret at path, or create it (0600, directory 0700) when missing. */
int token_secret_load(const char *path, uint8_t secret[TOKEN_SECRET_LEN], mt_error **err);

/* Mint a token for subject (an alias). ttl_s 0 = never expires. Returns owned text. */
char *token_create(const uint8_t secret[TOKEN_SECRET_LEN], const char *subject, int64_t ttl_s,
                   int64_t now_s);

/* Check shape, algorithm (HS256 only), signature (constant-time), audience, expiry and the
 * subject (present, not empty). On success copies the subject to sub (may be NULL) and returns
 * 0; otherwise -1 with *err saying what is wrong, never quoting the token. A subject that does
 * not fit in sub_size is refused, never cut (the subject is the node's identity). A leading
 * "Bearer " is accepted. */
int token_verify(const uint8_t secret[TOKEN_SECRET_LEN], const char *token, int64_t now_s,
                 char *sub, size_t sub_size, mt_error **err);

/* User tokens (the user services, user_service.c): claims {"sub": <user name>, "iat",
 * "exp" (absent when ttl is 0), "aud": "manta-user", "jti": <32 hex, random>}. A node token is
 * refused where a user token is expected and the other way round, with a sentence saying so.
 * The jti lets Logout revoke one token. */
#define TOKEN_JTI_LEN 32
/* Returns owned text and writes the jti, or NULL with *err (no randomness). */
char *token_create_user(const uint8_t secret[TOKEN_SECRET_LEN], const char *user, int64_t ttl_s,
                        int64_t now_s, char jti[TOKEN_JTI_LEN + 1], mt_error **err);
/* As token_verify, for user tokens; copies the user name and the jti. */
int token_verify_user(const uint8_t secret[TOKEN_SECRET_LEN], const char *token, int64_t now_s,
                      char *user, size_t user_size, char jti[TOKEN_JTI_LEN + 1], mt_error **err);

#endif
