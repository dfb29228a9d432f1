/* json.h - the cleanup idiom (mem.h) for jansson values. Only code that uses jansson includes
 * it, so that mem.h does not pull jansson into code that does not.
 *
 *     cleanup_json json_t *o = json_object();    released on every return
 *     return steal_ptr(o);                        ...unless handed on
 */
#ifndef MANTA_JSON_H
#define MANTA_JSON_H

#include <jansson.h>

/* json_decref(*jp): drops the reference the local owns; NULL is fine. */
static inline void json_free_ptr(json_t **jp)
{
    json_decref(*jp);
}

#define cleanup_json __attribute__((cleanup(json_free_ptr)))

#endif
