/* runtime_fake.c - see runtime_fake.h. Thread-safe (tasks.c calls drivers from threads). */
#include "runtime_fake.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "strbuf.h"

struct fake_task {
    char *name, *handle;
    char **env;
    rt_state state;
    int code;
    bool oom;
    strbuf out;
};

struct fake {
    pthread_mutex_t mu;
    struct fake_task *v;
    size_t n;
    int created;
    int reclaims;
    char *reclaimed;
    char *fail_next;
    char *slow_image;
    bool released;
    pthread_cond_t cv;
    bool (*on_remove)(void *ctx, const char *handle);
    void *on_remove_ctx;
};

static struct fake *F(runtime *rt)
{
    return rt->impl;
}

static struct fake_task *by(struct fake *f, const char *key, bool handle)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(handle ? f->v[i].handle : f->v[i].name, key) == 0)
            return &f->v[i];
    return NULL;
}

static int fk_prepare(runtime *rt, const task_spec *s, mt_error **err)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    while (f->slow_image && s->image && !strcmp(s->image, f->slow_image) && !f->released)
        pthread_cond_wait(&f->cv, &f->mu);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

void runtime_fake_slow_image(runtime *rt, const char *image)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    free(f->slow_image);
    f->slow_image = xstrdup(image);
    f->released = false;
    pthread_mutex_unlock(&f->mu);
}

void runtime_fake_release_pulls(runtime *rt)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    f->released = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static int fk_create(runtime *rt, const task_spec *s, char **handle, mt_error **err)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    if (f->fail_next) {
        mt_error_set(err, MT_ERR_IO, "%s", f->fail_next);
        free(f->fail_next);
        f->fail_next = NULL;
        pthread_mutex_unlock(&f->mu);
        return -1;
    }
    f->v = xrealloc(f->v, (f->n + 1) * sizeof(*f->v));
    struct fake_task *t = &f->v[f->n++];
    memset(t, 0, sizeof(*t));
    t->name = xstrdup(s->name);
    t->handle = xasprintf("fake:%s", s->name);
    size_t ne = 0;
    while (s->env[ne])
        ne++;
    t->env = xcalloc(ne + 1, sizeof(char *));
    for (size_t i = 0; i < ne; i++)
        t->env[i] = xstrdup(s->env[i]);
    t->state = RT_CREATED;
    f->created++;
    *handle = xstrdup(t->handle);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int fk_start(runtime *rt, const char *h, mt_error **err)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    struct fake_task *t = by(f, h, true);
    if (t)
        t->state = RT_RUNNING;
    pthread_mutex_unlock(&f->mu);
    return t ? 0 : mt_error_set(err, MT_ERR_NOTFOUND, "no such task %s", h);
}

static int fk_stop(runtime *rt, const char *h, int grace, mt_error **err)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    struct fake_task *t = by(f, h, true);
    if (t && t->state == RT_RUNNING) {
        t->state = RT_EXITED;
        t->code = 143;
    }
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int fk_inspect(runtime *rt, const char *h, rt_status *st, mt_error **err)
{
    struct fake *f = F(rt);
    memset(st, 0, sizeof(*st));
    pthread_mutex_lock(&f->mu);
    struct fake_task *t = by(f, h, true);
    st->state = t ? t->state : RT_GONE;
    if (t) {
        st->exit_code = t->code;
        st->oom_killed = t->oom;
    }
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int fk_logs(runtime *rt, const char *h, uint64_t limit, uint8_t **out, size_t *len,
                   mt_error **err)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    struct fake_task *t = by(f, h, true);
    if (!t) {
        pthread_mutex_unlock(&f->mu);
        return mt_error_set(err, MT_ERR_NOTFOUND, "no such task %s", h);
    }
    const char *s = sb_str(&t->out);
    size_t n = t->out.len;
    if (limit && n > limit) {
        s += n - limit;
        n = limit;
    }
    *out = (uint8_t *)xstrndup(s, n);
    *len = n;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static void fake_task_free(struct fake_task *t)
{
    free(t->name);
    free(t->handle);
    for (char **e = t->env; e && *e; e++)
        free(*e);
    free(t->env);
    sb_free(&t->out);
}

static void fk_drop(struct fake *f, const char *h)
{
    pthread_mutex_lock(&f->mu);
    struct fake_task *t = by(f, h, true);
    if (t) {
        fake_task_free(t);
        size_t i = (size_t)(t - f->v);
        memmove(&f->v[i], &f->v[i + 1], (f->n - i - 1) * sizeof(*f->v));
        f->n--;
    }
    pthread_mutex_unlock(&f->mu);
}

static int fk_remove(runtime *rt, const char *h, mt_error **err)
{
    struct fake *f = F(rt);
    if (f->on_remove && !f->on_remove(f->on_remove_ctx, h))
        return mt_error_set(err, MT_ERR_IO, "the removal of %s was cut short", h);
    fk_drop(f, h);
    return 0;
}

static int fk_list(runtime *rt, const char *node, char ***handles, mt_error **err)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    *handles = xcalloc(f->n + 1, sizeof(char *));
    for (size_t i = 0; i < f->n; i++)
        (*handles)[i] = xstrdup(f->v[i].handle);
    pthread_mutex_unlock(&f->mu);
    return 0;
}

static int fk_reclaim(runtime *rt, const char *workdir, mt_error **err)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    free(f->reclaimed);
    f->reclaimed = xstrdup(workdir);
    f->reclaims++;
    pthread_mutex_unlock(&f->mu);
    return 0;
}

const char *runtime_fake_reclaimed(runtime *rt, int *count)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    const char *w = f->reclaimed;
    if (count)
        *count = f->reclaims;
    pthread_mutex_unlock(&f->mu);
    return w;
}

static void fk_free(runtime *rt)
{
    struct fake *f = F(rt);
    for (size_t i = 0; i < f->n; i++)
        fake_task_free(&f->v[i]);
    free(f->v);
    free(f->fail_next);
    free(f->reclaimed);
    free(f->slow_image);
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
    free(rt);
}

static const runtime_ops fake_ops = {
    .name = "fake",
    .prepare = fk_prepare,
    .create = fk_create,
    .start = fk_start,
    .stop = fk_stop,
    .inspect = fk_inspect,
    .logs = fk_logs,
    .remove = fk_remove,
    .reclaim = fk_reclaim,
    .list = fk_list,
    .free = fk_free, /* no exit events: the node's periodic inspection finds exits */
};

runtime *runtime_fake_new(void)
{
    runtime *rt = xcalloc(1, sizeof(*rt));
    struct fake *f = xcalloc(1, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    rt->ops = &fake_ops;
    rt->impl = f;
    return rt;
}

bool runtime_fake_exit(runtime *rt, const char *name, int code, bool oom)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    struct fake_task *t = by(f, name, false);
    if (t) {
        t->state = RT_EXITED;
        t->code = code;
        t->oom = oom;
    }
    pthread_mutex_unlock(&f->mu);
    return t != NULL;
}

void runtime_fake_on_remove(runtime *rt, bool (*fn)(void *ctx, const char *handle), void *ctx)
{
    struct fake *f = F(rt);
    f->on_remove = fn;
    f->on_remove_ctx = ctx;
}

int runtime_fake_count(runtime *rt)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    int c = (int)f->n;
    pthread_mutex_unlock(&f->mu);
    return c;
}

bool runtime_fake_lose(runtime *rt, const char *name)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    struct fake_task *t = by(f, name, false);
    char *h = t ? xstrdup(t->handle) : NULL;
    pthread_mutex_unlock(&f->mu);
    if (h)
        fk_drop(f, h);
    free(h);
    return t != NULL;
}

int runtime_fake_running(runtime *rt)
{
    struct fake *f = F(rt);
    int c = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < f->n; i++)
        c += f->v[i].state == RT_RUNNING;
    pthread_mutex_unlock(&f->mu);
    return c;
}

int runtime_fake_created(runtime *rt)
{
    return F(rt)->created;
}

const char *runtime_fake_env(runtime *rt, const char *name, const char *key)
{
    struct fake *f = F(rt);
    struct fake_task *t = by(f, name, false);
    size_t kl = strlen(key);
    for (char **e = t ? t->env : NULL; e && *e; e++)
        if (strncmp(*e, key, kl) == 0 && (*e)[kl] == '=')
            return *e + kl + 1;
    return NULL;
}

void runtime_fake_fail_next(runtime *rt, const char *msg)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    free(f->fail_next);
    f->fail_next = xstrdup(msg);
    pthread_mutex_unlock(&f->mu);
}

void runtime_fake_output(runtime *rt, const char *name, const char *text)
{
    struct fake *f = F(rt);
    pthread_mutex_lock(&f->mu);
    struct fake_task *t = by(f, name, false);
    if (t)
        sb_puts(&t->out, text);
    pthread_mutex_unlock(&f->mu);
}
