/* fake_nvml.c - a stand-in for libnvidia-ml.so.1 with two fixed GPUs, for tests on machines
 * without NVIDIA hardware. FAKE_NVML_FAIL_INIT=1 makes nvmlInit fail (no driver). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned int gpu, memory;
} util_t;
typedef struct {
    unsigned long long total, free, used;
} mem_t;

int nvmlInit_v2(void);
int nvmlShutdown(void);
int nvmlDeviceGetCount_v2(unsigned int *n);
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **h);
int nvmlDeviceGetName(void *h, char *buf, unsigned int len);
int nvmlDeviceGetUUID(void *h, char *buf, unsigned int len);
int nvmlDeviceGetUtilizationRates(void *h, util_t *u);
int nvmlDeviceGetMemoryInfo(void *h, mem_t *m);
int nvmlDeviceGetTemperature(void *h, int sensor, unsigned int *t);
int nvmlDeviceGetPowerUsage(void *h, unsigned int *mw);
int nvmlDeviceGetEnforcedPowerLimit(void *h, unsigned int *mw);

static int idx(void *h)
{
    return (int)(long)h - 1;
}

int nvmlInit_v2(void)
{
    const char *f = getenv("FAKE_NVML_FAIL_INIT");
    return f && *f == '1' ? 9 /* NVML_ERROR_DRIVER_NOT_LOADED */ : 0;
}
int nvmlShutdown(void)
{
    return 0;
}
int nvmlDeviceGetCount_v2(unsigned int *n)
{
    *n = 2;
    return 0;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void **h)
{
    if (i >= 2)
        return 2;
    *h = (void *)(long)(i + 1);
    return 0;
}
int nvmlDeviceGetName(void *h, char *buf, unsigned int len)
{
    snprintf(buf, len, "Fake GPU %d", idx(h));
    return 0;
}
int nvmlDeviceGetUUID(void *h, char *buf, unsigned int len)
{
    snprintf(buf, len, "GPU-fake-%04d", idx(h));
    return 0;
}
int nvmlDeviceGetUtilizationRates(void *h, util_t *u)
{
    u->gpu = 30u + 10u * (unsigned)idx(h);
    u->memory = 5;
    return 0;
}
int nvmlDeviceGetMemoryInfo(void *h, mem_t *m)
{
    m->total = 16ull << 30;
    m->used = 4ull << 30;
    m->free = m->total - m->used;
    return 0;
}
int nvmlDeviceGetTemperature(void *h, int sensor, unsigned int *t)
{
    *t = 60;
    return 0;
}
int nvmlDeviceGetPowerUsage(void *h, unsigned int *mw)
{
    *mw = 120000;
    return 0;
}
int nvmlDeviceGetEnforcedPowerLimit(void *h, unsigned int *mw)
{
    *mw = 250000;
    return 0;
}
