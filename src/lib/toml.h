/* toml.h - TOML 1.1 (and strict 1.0) parser, value tree and writer.
 *
 * The parser builds a tree of toml_value nodes. Tables keep their keys in document order.
 * Every key/value pair and every table remembers where it was defined (line and column,
 * 1-based) so that configuration errors can point at the file position.
 *
 * Ownership: toml_parse*() returns a root table owned by the caller; toml_free() releases a
 * value and everything below it. Values added to a table or array with toml_table_set() /
 * toml_array_push() become owned by that container.
 */
#ifndef MANTA_TOML_H
#define MANTA_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef enum toml_version {
    TOML_1_1 = 0, /* default: TOML 1.1 (multi-line inline tables, \e, \xHH, optional seconds) */
    TOML_1_0 = 1, /* strict TOML 1.0 */
} toml_version;

typedef enum toml_type {
    TOML_TABLE,
    TOML_ARRAY,
    TOML_STRING,
    TOML_INTEGER,
    TOML_FLOAT,
    TOML_BOOL,
    TOML_DATETIME,       /* offset date-time */
    TOML_DATETIME_LOCAL, /* local date-time */
    TOML_DATE_LOCAL,     /* local date */
    TOML_TIME_LOCAL,     /* local time */
} toml_type;

typedef struct toml_datetime {
    int year, month, day;     /* unused for TOML_TIME_LOCAL */
    int hour, minute, second; /* unused for TOML_DATE_LOCAL */
    int nanosecond;           /* fractional seconds, truncated to 9 digits */
    int frac_digits;          /* number of fractional digits written (0..9) */
    int offset_minutes;       /* TOML_DATETIME only; Z -> 0 */
    bool offset_z;            /* TOML_DATETIME only: written as 'Z' (or -00:00 / +00:00 if false) */
} toml_datetime;

typedef struct toml_value toml_value;

typedef struct toml_kv {
    char *key; /* owned, NUL-terminated (a key may contain NUL via \u0000; keylen is exact) */
    size_t keylen;
    int line, col;   /* where the key was written (0 if built in code) */
    toml_value *val; /* owned */
} toml_kv;

struct toml_value {
    toml_type type;
    int line, col;  /* where the value (or table header) starts; 0 if built in code */
    unsigned flags; /* parser-internal bookkeeping (explicit/implicit/inline/array-of-tables) */
    union {
        struct {
            char *ptr; /* owned, NUL-terminated; may contain NUL bytes, len is exact */
            size_t len;
        } s;
        int64_t i;
        double f;
        bool b;
        toml_datetime dt;
        struct {
            toml_value **items; /* owned */
            size_t len, cap;
        } arr;
        struct {
            toml_kv *items; /* owned, document order */
            size_t len, cap;
        } tab;
    } u;
};

/* Parse `len` bytes of TOML. `name` is used in error messages ("name:line:col: reason");
 * NULL means "<input>". Returns an owned root table, or NULL with *err (code MT_ERR_PARSE). */
toml_value *toml_parse(const char *data, size_t len, const char *name, toml_version ver,
                       mt_error **err);

/* Read and parse a file. Error messages carry the path, line and column. */
toml_value *toml_parse_file(const char *path, toml_version ver, mt_error **err);

/* Release v and everything it owns. Safe on NULL. */
void toml_free(toml_value *v);
void toml_freep(toml_value **v); /* for cleanup_toml */
#define cleanup_toml __attribute__((cleanup(toml_freep)))

/* Look up a key (NUL-terminated) in a table. Returns a borrowed pointer or NULL. */
toml_value *toml_table_get(const toml_value *tab, const char *key);
/* The kv entry for a key, borrowed, or NULL. */
toml_kv *toml_table_get_kv(const toml_value *tab, const char *key);

/* Builders: each returns an owned value (line/col 0). */
toml_value *toml_new_table(void);
toml_value *toml_new_array(void);
toml_value *toml_new_string(const char *s);
toml_value *toml_new_stringn(const char *s, size_t len);
toml_value *toml_new_integer(int64_t i);
toml_value *toml_new_float(double f);
toml_value *toml_new_bool(bool b);

/* Set key in a table, taking ownership of val; an existing value for the key is freed and
 * replaced in place (keeps its position). New keys are appended. */
void toml_table_set(toml_value *tab, const char *key, toml_value *val);
/* Remove a key; returns true if it existed. */
bool toml_table_remove(toml_value *tab, const char *key);
/* Append to an array, taking ownership of val. */
void toml_array_push(toml_value *arr, toml_value *val);

/* Deep copy. Returns owned. */
toml_value *toml_clone(const toml_value *v);

/* Serialise a root table as TOML 1.0 text (readable by both modes). Order is stable: within
 * each table, plain keys (scalars, arrays of scalars, inline-able values) in insertion order
 * first, then sub-tables as [a.b] sections and arrays of tables as [[a.b]], recursively, in
 * insertion order. Keys are bare when possible, else quoted; strings escaped; floats written
 * so they read back to the same double (inf/nan as TOML spells them). Returns owned text. */
char *toml_write(const toml_value *root);

/* Format a scalar the way toml_write would write it (strings quoted, etc.). Returns owned. */
char *toml_format_value(const toml_value *v);

/* Format a date/time value as RFC 3339 text (without quotes): "1979-05-27T07:32:00Z",
 * "1979-05-27T07:32:00.999", "1979-05-27", "07:32:00". Fractional seconds are printed with
 * dt->frac_digits digits (none if 0). Returns owned. */
char *toml_format_datetime(const toml_value *v);

/* Name of a type for messages: "table", "array", "string", "integer", "float", "boolean",
 * "offset date-time", "local date-time", "local date", "local time". */
const char *toml_type_name(toml_type t);

#endif
