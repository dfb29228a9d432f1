/* mem.h - allocation that never returns NULL (aborts on out-of-memory) and the cleanup idiom.
 *
 * The cleanup idiom: declare locals with one of the cleanup_* attributes so that early returns
 * release them; hand ownership on by nulling the local (`*out = p; p = NULL;`).
 */
#ifndef MANTA_MEM_H
#define MANTA_MEM_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n);                 /* returns owned memory */
void *xcalloc(size_t n, size_t size);    /* returns owned zeroed memory */
void *xrealloc(void *p, size_t n);       /* takes p, returns owned memory */
char *xstrdup(const char *s);            /* returns owned copy; NULL in -> NULL out */
char *xstrndup(const char *s, size_t n); /* returns owned NUL-terminated copy of n bytes */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2))); /* owned */
char *xvasprintf(const char *fmt, va_list ap);                               /* owned */

void mem_free_ptr(void *pp);  /* free(*(void **)pp) */
void mem_close_fd(int *fd);   /* close(*fd) if >= 0 */
void mem_fclose(void *fpp);   /* fclose(*(FILE **)fpp) if non-NULL */
void mem_free_strv(void *pp); /* free a NULL-terminated char ** and its strings */
void mem_closedir(void *dpp); /* closedir(*(DIR **)dpp) if non-NULL */

#define cleanup_free   __attribute__((cleanup(mem_free_ptr)))
#define cleanup_close  __attribute__((cleanup(mem_close_fd)))
#define cleanup_fclose __attribute__((cleanup(mem_fclose)))
#define cleanup_strv   __attribute__((cleanup(mem_free_strv)))
#define cleanup_dir    __attribute__((cleanup(mem_closedir)))

/* Take ownership out of a cleanup_* local: `return steal_ptr(p);` */
#define steal_ptr(p)                                                                               \
    ({                                                                                             \
        __typeof__(p) steal_tmp_ = (p);                                                            \
        (p) = NULL;                                                                                \
        steal_tmp_;                                                                                \
    })

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
