/* wire.c - protobuf builders; see wire.h. */
#include "wire.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mem.h"

uint8_t *wire_pack(const ProtobufCMessage *m, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = xmalloc(n ? n : 1);
    *len = protobuf_c_message_pack(m, buf);
    return buf;
}

uint8_t *wire_task_update(node_id swarm, node_id node, node_id task, uint32_t iteration,
                          uint32_t circular, int status, size_t *len)
{
    Common__Tasks__TaskUpdate u = COMMON__TASKS__TASK_UPDATE__INIT;
    Common__System__PairId sw, me, id;
    wire_pair_id(&sw, swarm);
    wire_pair_id(&me, node);
    wire_pair_id(&id, task);
    u.swarm_id = &sw;
    u.node_id = &me;
    u.task_id = &id;
    u.iteration = iteration;
    u.circular = circular;
    u.task_status = (Common__Tasks__TaskStatus)status;
    return wire_pack(&u.base, len);
}

void wire_pair_id(Common__System__PairId *out, node_id id)
{
    common__system__pair_id__init(out);
    out->head = id.head;
    out->tail = id.tail;
}

node_id wire_node_id(const Common__System__PairId *p)
{
    node_id id = {0, 0};
    if (p) {
        id.head = p->head;
        id.tail = p->tail;
    }
    return id;
}

void wire_timestamp_now(Google__Protobuf__Timestamp *out)
{
    google__protobuf__timestamp__init(out);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    out->seconds = ts.tv_sec;
    out->nanos = (int32_t)ts.tv_nsec;
}

void wire_metrics_fill(wire_metrics *w, const cpu_metrics *c, const mem_metrics *m)
{
    memset(w, 0, sizeof(*w));
    common__informations__metrics_snapshot__init(&w->snap);
    common__informations__cpu_metrics__init(&w->cpu);
    common__informations__memory_metrics__init(&w->mem);
    wire_timestamp_now(&w->ts);
    w->cpu.usage_percent = c->usage_percent;
    w->cpu.user_percent = c->user_percent;
    w->cpu.system_percent = c->system_percent;
    w->cpu.idle_percent = c->idle_percent;
    w->cpu.count = c->count;
    w->cpu.physical_count = c->physical_count;
    if (c->count > 0) {
        w->per_cpu = xcalloc((size_t)c->count, sizeof(float));
        memcpy(w->per_cpu, c->per_cpu, (size_t)c->count * sizeof(float));
        w->cpu.n_per_cpu_percent = (size_t)c->count;
        w->cpu.per_cpu_percent = w->per_cpu;
    }
    w->mem.total_bytes = m->total;
    w->mem.available_bytes = m->available;
    w->mem.used_bytes = m->used;
    w->mem.free_bytes = m->free;
    w->mem.percent_used = m->percent_used;
    w->mem.swap_total_bytes = m->swap_total;
    w->mem.swap_used_bytes = m->swap_used;
    w->mem.swap_free_bytes = m->swap_free;
    w->mem.swap_percent_used = m->swap_percent_used;
    w->snap.cpu = &w->cpu;
    w->snap.memory = &w->mem;
    w->snap.timestamp = &w->ts;
}

void wire_metrics_release(wire_metrics *w)
{
    free(w->per_cpu);
    memset(w, 0, sizeof(*w));
}

void wire_overviews_fill(wire_overviews *w, const dataset_set *ds)
{
    memset(w, 0, sizeof(*w));
    common__informations__overviews__init(&w->ov);
    size_t n = ds ? ds->len : 0;
    w->items = xcalloc(n ? n : 1, sizeof(*w->items));
    w->ptrs = xcalloc(n ? n : 1, sizeof(*w->ptrs));
    for (size_t i = 0; i < n; i++) {
        common__informations__overview__init(&w->items[i]);
        w->items[i].name = ds->items[i].name;
        w->items[i].description = ds->items[i].description;
        w->items[i].dtype = (char *)ds->items[i].dtype;
        w->ptrs[i] = &w->items[i];
    }
    w->ov.n_content = n;
    w->ov.content = w->ptrs;
}

void wire_overviews_release(wire_overviews *w)
{
    free(w->items);
    free(w->ptrs);
    memset(w, 0, sizeof(*w));
}

void wire_platform(Common__Informations__PlatformInfo *out, platform_info *p)
{
    common__informations__platform_info__init(out);
    out->system = p->system;
    out->release = p->release;
    out->version = p->version;
    out->machine = p->machine;
    out->processor = p->processor;
    out->hostname = p->hostname;
}
