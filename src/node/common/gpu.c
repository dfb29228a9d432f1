/* gpu.c - NVML through dlopen; see gpu.h. Only the handful of NVML entry points needed are
 * declared here, with NVML's documented C signatures. */
#include "gpu.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

typedef void *nvml_device;
typedef struct {
    unsigned int gpu, memory;
} nvml_utilization;
typedef struct {
    unsigned long long total, free, used;
} nvml_memory;

struct nvml_api {
    int (*init)(void);
    int (*shutdown)(void);
    int (*count)(unsigned int *);
    int (*handle)(unsigned int, nvml_device *);
    int (*name)(nvml_device, char *, unsigned int);
    int (*uuid)(nvml_device, char *, unsigned int);
    int (*util)(nvml_device, nvml_utilization *);
    int (*memory)(nvml_device, nvml_memory *);
    int (*temperature)(nvml_device, int, unsigned int *);
    int (*power)(nvml_device, unsigned int *);
    int (*power_limit)(nvml_device, unsigned int *);
};

static void *sym(void *lib, const char *a, const char *b)
{
    void *p = dlsym(lib, a);
    return p || !b ? p : dlsym(lib, b);
}

void gpu_probe(const char *library, gpu_report *out)
{
    memset(out, 0, sizeof(*out));
    if (!library)
        library = getenv("MANTA_NVML_LIBRARY");
    if (!library || !*library)
        library = "libnvidia-ml.so.1";
    void *lib = dlopen(library, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(out->note, sizeof(out->note), "NVML not found (%s): no GPUs", library);
        return;
    }
    struct nvml_api n = {0};
    *(void **)&n.init = sym(lib, "nvmlInit_v2", "nvmlInit");
    *(void **)&n.shutdown = sym(lib, "nvmlShutdown", NULL);
    *(void **)&n.count = sym(lib, "nvmlDeviceGetCount_v2", "nvmlDeviceGetCount");
    *(void **)&n.handle = sym(lib, "nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex");
    *(void **)&n.name = sym(lib, "nvmlDeviceGetName", NULL);
    *(void **)&n.uuid = sym(lib, "nvmlDeviceGetUUID", NULL);
    *(void **)&n.util = sym(lib, "nvmlDeviceGetUtilizationRates", NULL);
    *(void **)&n.memory = sym(lib, "nvmlDeviceGetMemoryInfo", NULL);
    *(void **)&n.temperature = sym(lib, "nvmlDeviceGetTemperature", NULL);
    *(void **)&n.power = sym(lib, "nvmlDeviceGetPowerUsage", NULL);
    *(void **)&n.power_limit = sym(lib, "nvmlDeviceGetEnforcedPowerLimit", NULL);
    unsigned int count = 0;
    if (!n.init || !n.count || !n.handle) {
        snprintf(out->note, sizeof(out->note), "%s is not a usable NVML library", library);
    } else if (n.init() != 0) {
        snprintf(out->note, sizeof(out->note), "NVML could not initialise (no driver?)");
    } else {
        if (n.count(&count) != 0)
            count = 0;
        if (count > 64)
            count = 64;
        out->devices = xcalloc(count ? count : 1, sizeof(gpu_device));
        for (unsigned int i = 0; i < count; i++) {
            nvml_device h = NULL;
            if (n.handle(i, &h) != 0)
                continue;
            gpu_device *d = &out->devices[out->count++];
            if (n.name)
                n.name(h, d->name, sizeof(d->name));
            if (n.uuid)
                n.uuid(h, d->uuid, sizeof(d->uuid));
            d->name[sizeof(d->name) - 1] = d->uuid[sizeof(d->uuid) - 1] = '\0';
            nvml_utilization u = {0};
            if (n.util && n.util(h, &u) == 0)
                d->usage_percent = (float)u.gpu;
            nvml_memory m = {0};
            if (n.memory && n.memory(h, &m) == 0) {
                d->memory_total = m.total;
                d->memory_used = m.used;
                d->memory_percent_used = m.total ? (float)(m.used * 100.0 / m.total) : 0;
            }
            unsigned int t = 0;
            if (n.temperature && n.temperature(h, 0 /* NVML_TEMPERATURE_GPU */, &t) == 0)
                d->temperature = (float)t;
            unsigned int mw = 0;
            if (n.power && n.power(h, &mw) == 0)
                d->power_draw = (int)(mw / 1000);
            if (n.power_limit && n.power_limit(h, &mw) == 0)
                d->power_limit = (int)(mw / 1000);
        }
        if (n.shutdown)
            n.shutdown();
        if (!out->count)
            snprintf(out->note, sizeof(out->note), "NVML reports no GPUs");
    }
    dlclose(lib);
}

void gpu_report_release(gpu_report *r)
{
    free(r->devices);
    memset(r, 0, sizeof(*r));
}
