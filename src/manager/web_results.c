/* web_results.c - a swarm's numeric results for the dashboard's training chart
 * (docs/dashboard.md): the keys found in its small results, and a key's series (one line per
 * node, the mean per iteration).
 *
 * Both are kept between requests, per swarm, and read on from the store's seq where the last
 * read stopped: a page load costs the results stored since, not every result of a long run
 * (20,000 of them for 200 nodes and 100 rounds). The series is written as JSON text directly
 * (a jansson value per point cost more than the rest of the answer). What is kept is bounded:
 * RESULTS_SWARMS swarms, SERIES_KEYS series each, least recently used dropped; a series holds
 * 24 bytes per node and iteration (about 0.5 MB for 200 nodes and 100 rounds).
 *
 * One mutex guards what is kept; it is held while reading the store, so two requests for the
 * same swarm never read the same rows twice (lock order: results, then the store). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "msgpack.h"
#include "strbuf.h"
#include "web_impl.h"

#define RESULT_SMALL_MAX 4096 /* bytes: results read for numbers (metrics, not weights) */
#define KEYS_MAX         256
#define RESULTS_SWARMS   8
#define SERIES_KEYS      3

_Static_assert(WEB_LRU_KEY >= MP_PATH_MAX, "a series key is a dotted path");

/* One node's value of the key in one iteration, from the result stored at seq. */
typedef struct point {
    uint32_t iteration;
    double value;
    int64_t seq;
} point;

typedef struct line { /* one node's points, by iteration */
    char node[NODE_XID_MAX + 1];
    point *v;
    size_t n, cap;
} line;

typedef struct series {
    web_lru_slot slot; /* the key (a dotted path, under MP_PATH_MAX bytes) */
    line *lines;       /* by node xid */
    size_t nlines;
    int64_t seq; /* the results of the key's tags are read up to here */
} series;

typedef struct entry {
    web_lru_slot slot; /* the swarm's xid */
    json_t *keys;      /* numeric key -> true, of the results up to keys_seq */
    int64_t keys_seq;
    series s[SERIES_KEYS];
} entry;

struct web_results {
    pthread_mutex_t mu;
    uint64_t tick;
    entry e[RESULTS_SWARMS];
};

web_results *web_results_new(void)
{
    web_results *r = xcalloc(1, sizeof(*r));
    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void series_clear(void *slot)
{
    series *s = slot;
    for (size_t i = 0; i < s->nlines; i++)
        free(s->lines[i].v);
    free(s->lines);
    memset(s, 0, sizeof(*s));
}

static void entry_clear(void *slot)
{
    entry *e = slot;
    json_decref(e->keys);
    for (size_t i = 0; i < SERIES_KEYS; i++)
        series_clear(&e->s[i]);
    memset(e, 0, sizeof(*e));
}

void web_results_free(web_results *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < RESULTS_SWARMS; i++)
        entry_clear(&r->e[i]);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

/* The entry of a swarm, made (replacing the least recently used) if needed. r->mu held. */
static entry *entry_get(web_results *r, const char *xid)
{
    entry *e = web_lru_get(r->e, RESULTS_SWARMS, sizeof(r->e[0]), xid, &r->tick, entry_clear);
    if (!e->keys)
        e->keys = json_object();
    return e;
}

/* The series of key in e, made (replacing the least recently used) if needed. r->mu held. */
static series *series_get(web_results *r, entry *e, const char *key)
{
    return web_lru_get(e->s, SERIES_KEYS, sizeof(e->s[0]), key, &r->tick, series_clear);
}

/* ---- reading the store ---------------------------------------------------------------------- */

/* Can the tag of a result be a path prefix? */
static bool tag_ok(const char *tag)
{
    return *tag && strlen(tag) < MP_PATH_MAX;
}

/* The small results of a swarm after seq `after`, oldest first: of every tag (key NULL), or of
 * the tags that may hold key (its dotted prefixes: "a.b.c" is in a result "a", "a.b" or "a.b.c").
 */
static int cmp_seq(const void *a, const void *b)
{
    const store_result *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int read_small(web_req *rq, const char *xid, const char *key, int64_t after,
                      store_result **rows, size_t *n, json_t **out)
{
    mt_error *err = NULL;
    *rows = NULL;
    *n = 0;
    size_t klen = key ? strlen(key) : 0;
    for (size_t end = 1; key && end <= klen; end++) {
        if (end < klen && key[end] != '.')
            continue;
        char tag[MP_PATH_MAX];
        snprintf(tag, sizeof(tag), "%.*s", (int)end, key);
        store_result *part = NULL;
        size_t np = 0;
        if (store_result_small(rq->m->st, xid, tag, after, RESULT_SMALL_MAX, &part, &np, &err) <
            0) {
            store_results_free(*rows, *n);
            *rows = NULL;
            *n = 0;
            int st = web_error(out, 500, "The results could not be read: %s", mt_error_msg(err));
            mt_error_free(&err);
            return st;
        }
        if (!*n) {
            *rows = part;
            *n = np;
        } else if (np) {
            *rows = xrealloc(*rows, (*n + np) * sizeof(**rows));
            memcpy(*rows + *n, part, np * sizeof(*part));
            *n += np;
            free(part);
        } else {
            free(part);
        }
    }
    if (key) {
        if (*n > 1) /* several tags: in the order they were stored, so later ones replace */
            qsort(*rows, *n, sizeof(**rows), cmp_seq);
        return 0;
    }
    if (store_result_small(rq->m->st, xid, NULL, after, RESULT_SMALL_MAX, rows, n, &err) < 0) {
        int st = web_error(out, 500, "The results could not be read: %s", mt_error_msg(err));
        mt_error_free(&err);
        return st;
    }
    return 0;
}

/* ---- keys ----------------------------------------------------------------------------------- */

static void key_seen(void *ctx, const char *path, double v)
{
    json_t *keys = ctx; /* an object used as a set */
    if (isfinite(v) && json_object_size(keys) < KEYS_MAX)
        json_object_set_new(keys, path, json_true());
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int api_keys(web_req *rq, json_t **out)
{
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1];
    int found = web_find_swarm(rq, &sw, xid, out);
    store_swarm_clear(&sw);
    if (found != 1)
        return found;
    /* the keys seen so far, then the results stored since */
    pthread_mutex_lock(&rq->results->mu);
    entry *e = entry_get(rq->results, xid);
    store_result *rows = NULL;
    size_t n = 0;
    int st = read_small(rq, xid, NULL, e->keys_seq, &rows, &n, out);
    if (st) {
        pthread_mutex_unlock(&rq->results->mu);
        return st;
    }
    for (size_t i = 0; i < n; i++) {
        if (tag_ok(rows[i].tag))
            mp_numbers(rows[i].data, rows[i].len, rows[i].tag, key_seen, e->keys);
        e->keys_seq = rows[i].seq > e->keys_seq ? rows[i].seq : e->keys_seq;
    }
    store_results_free(rows, n);
    size_t nk = json_object_size(e->keys), k = 0;
    const char **sorted = xcalloc(nk + 1, sizeof(char *));
    const char *key;
    json_t *v;
    json_object_foreach(e->keys, key, v) sorted[k++] = key;
    qsort(sorted, nk, sizeof(char *), cmp_str);
    json_t *list = json_array();
    for (size_t i = 0; i < nk; i++)
        json_array_append_new(list, json_string(sorted[i]));
    free(sorted);
    pthread_mutex_unlock(&rq->results->mu);
    *out = json_pack("{s:o}", "keys", list);
    return 200;
}

/* ---- series --------------------------------------------------------------------------------- */

typedef struct key_hit {
    const char *key;
    bool found;
    double value;
} key_hit;

static void key_value(void *ctx, const char *path, double v)
{
    key_hit *f = ctx;
    if (!strcmp(path, f->key) && isfinite(v)) {
        f->found = true;
        f->value = v;
    }
}

/* Does a result of this tag hold the key (the tag is the key or its first dotted parts)? */
static bool tag_of_key(const char *tag, const char *key)
{
    size_t tl = strlen(tag);
    return tag_ok(tag) && !strncmp(tag, key, tl) && (key[tl] == '\0' || key[tl] == '.');
}

/* The line of a node, made in its place (by xid) if needed. */
static line *line_of(series *s, const char *node)
{
    size_t lo = 0, hi = s->nlines;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(s->lines[mid].node, node);
        if (!c)
            return &s->lines[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    s->lines = xrealloc(s->lines, (s->nlines + 1) * sizeof(*s->lines));
    memmove(s->lines + lo + 1, s->lines + lo, (s->nlines - lo) * sizeof(*s->lines));
    s->nlines++;
    line *l = &s->lines[lo];
    memset(l, 0, sizeof(*l));
    snprintf(l->node, sizeof(l->node), "%s", node);
    return l;
}

/* A node's value of an iteration; a later one of the same iteration replaces it. */
static void line_put(line *l, point p)
{
    size_t k = l->n;
    while (k > 0 && l->v[k - 1].iteration > p.iteration) /* appending is the usual case */
        k--;
    if (k > 0 && l->v[k - 1].iteration == p.iteration) {
        l->v[k - 1] = p;
        return;
    }
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    memmove(l->v + k + 1, l->v + k, (l->n - k) * sizeof(*l->v));
    l->v[k] = p;
    l->n++;
}

/* Take in the rows (oldest first) that hold the series' key. */
static void series_take(series *s, const store_result *rows, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const store_result *r = &rows[i];
        if (r->seq > s->seq)
            s->seq = r->seq;
        if (!tag_of_key(r->tag, s->slot.key))
            continue;
        key_hit f = {.key = s->slot.key};
        mp_numbers(r->data, r->len, r->tag, key_value, &f);
        if (f.found)
            line_put(line_of(s, r->node), (point){r->iteration, f.value, r->seq});
    }
}

typedef struct it_sum {
    uint32_t iteration;
    double sum;
    size_t count;
} it_sum;

static int cmp_it_sum(const void *a, const void *b)
{
    const it_sum *x = a, *y = b;
    return x->iteration < y->iteration ? -1 : x->iteration > y->iteration;
}

static it_sum *it_find(it_sum *v, size_t n, uint32_t iteration)
{
    it_sum k = {.iteration = iteration};
    return bsearch(&k, v, n, sizeof(*v), cmp_it_sum);
}

/* The mean per iteration over every node's value: of every iteration (after 0), or of those
 * that the points stored after `after` touch. *n entries, by iteration (owned). */
static it_sum *series_means(const series *s, int64_t after, size_t *n)
{
    size_t cap = 0, k = 0;
    for (size_t i = 0; i < s->nlines; i++)
        cap += s->lines[i].n;
    it_sum *v = cap ? xcalloc(cap, sizeof(*v)) : NULL;
    for (size_t i = 0; i < s->nlines; i++) /* the iterations wanted */
        for (size_t j = 0; j < s->lines[i].n; j++)
            if (s->lines[i].v[j].seq > after)
                v[k++].iteration = s->lines[i].v[j].iteration;
    if (k)
        qsort(v, k, sizeof(*v), cmp_it_sum);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (!u || v[u - 1].iteration != v[i].iteration)
            v[u++] = v[i];
    for (size_t i = 0; i < s->nlines; i++)
        for (size_t j = 0; j < s->lines[i].n; j++) {
            it_sum *m = it_find(v, u, s->lines[i].v[j].iteration);
            if (m) {
                m->sum += s->lines[i].v[j].value;
                m->count++;
            }
        }
    *n = u;
    return v;
}

static void put_point(strbuf *sb, uint32_t iteration, double v, bool first)
{
    sb_printf(sb, "%s[%u,%.8g]", first ? "" : ",", iteration, v);
}

static void put_string(strbuf *sb, const char *s)
{
    json_t *j = json_string(s); /* NULL if s is not UTF-8 */
    cleanup_free char *text = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    json_decref(j);
    sb_puts(sb, text ? text : "\"\"");
}

/* The answer: every node's points stored after `after`, and the means they touch. */
static char *series_text(const series *s, int64_t after, int64_t seq, const web_names *aliases)
{
    cleanup_strbuf strbuf sb = STRBUF_INIT;
    sb_puts(&sb, "{\"key\":");
    put_string(&sb, s->slot.key);
    sb_printf(&sb, ",\"seq\":%lld,\"nodes\":[", (long long)seq);
    bool first_line = true;
    for (size_t i = 0; i < s->nlines; i++) {
        const line *l = &s->lines[i];
        bool first = true;
        for (size_t j = 0; j < l->n; j++) {
            if (l->v[j].seq <= after) /* the page has it */
                continue;
            if (first) {
                char hex[33];
                web_hex_of_xid(l->node, hex);
                sb_printf(&sb, "%s{\"node\":\"%s\",\"alias\":", first_line ? "" : ",", hex);
                put_string(&sb, web_names_get(aliases, l->node));
                sb_puts(&sb, ",\"points\":[");
                first_line = false;
            }
            put_point(&sb, l->v[j].iteration, l->v[j].value, first);
            first = false;
        }
        if (!first)
            sb_puts(&sb, "]}");
    }
    sb_puts(&sb, "],\"mean\":[");
    size_t nm = 0;
    it_sum *means = series_means(s, after, &nm);
    for (size_t i = 0; i < nm; i++)
        put_point(&sb, means[i].iteration, means[i].sum / (double)means[i].count, i == 0);
    free(means);
    sb_puts(&sb, "]}");
    return sb_steal(&sb);
}

int api_series(web_req *rq, json_t **out)
{
    const char *key = web_arg(rq, "key"), *after_s = web_arg(rq, "after");
    if (!key || !*key || strlen(key) >= MP_PATH_MAX)
        return web_error(out, 400,
                         "Name the result to draw: ?key=TAG.KEY (e.g. metrics.val_acc; "
                         "GET /api/swarms/ID/keys lists them).");
    char *end = NULL;
    long long after = after_s ? strtoll(after_s, &end, 10) : 0;
    if (after_s && (!*after_s || *end || after < 0))
        return web_error(out, 400, "after is the seq of an earlier answer (a whole number).");
    store_swarm sw = {0};
    char xid[NODE_XID_MAX + 1];
    int found = web_find_swarm(rq, &sw, xid, out);
    store_swarm_clear(&sw);
    if (found != 1)
        return found;
    web_names aliases = {0};
    web_node_names(rq->m, &aliases); /* before the lock: it takes m->lock and the store */
    pthread_mutex_lock(&rq->results->mu);
    series *s = series_get(rq->results, entry_get(rq->results, xid), key);
    store_result *rows = NULL;
    size_t n = 0;
    int st = read_small(rq, xid, key, s->seq, &rows, &n, out);
    if (!st) {
        series_take(s, rows, n);
        rq->body = series_text(s, after, s->seq > after ? s->seq : after, &aliases);
        st = 200;
    }
    pthread_mutex_unlock(&rq->results->mu);
    store_results_free(rows, n);
    web_names_free(&aliases);
    return st;
}
