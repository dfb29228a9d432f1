/* users.h - the users of the user services (user_service.c): names, ids and password hashes
 * kept in the store as objects of kind "user" (id = name, meta = the user id, 32 hex digits,
 * value = the hash). Passwords are kept only as PBKDF2-HMAC-SHA256 (libcrypto) with a random
 * 16-byte salt and USERS_PBKDF2_ROUNDS rounds: "pbkdf2-sha256$ROUNDS$SALT$HASH" (hex). */
#ifndef MANTA_MGR_USERS_H
#define MANTA_MGR_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

#define USER_NAME_MAX       64 /* bytes */
#define USER_PASSWORD_MIN   8
#define USER_PASSWORD_MAX   1024
#define USERS_PBKDF2_ROUNDS 210000

/* A name is 1..USER_NAME_MAX bytes of UTF-8 without control characters, spaces or '/'. */
int users_check_name(const char *name, mt_error **err);
/* Create a user; EXISTS error if the name is taken. id (may be NULL) receives the user id. */
int users_create(store *st, const char *name, const char *password, int64_t now_ms, char id[33],
                 mt_error **err);
/* 1 when the user exists and the password matches (*u filled, owned, when u is not NULL),
 * 0 when the user is unknown or the password wrong (same time either way), -1 on error. */
int users_check_password(store *st, const char *name, const char *password, store_object *u,
                         mt_error **err);
/* 1 deleted, 0 unknown, -1 error. */
int users_delete(store *st, const char *name, mt_error **err);

#endif
