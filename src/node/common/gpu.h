/* gpu.h - GPUs through NVML, loaded at run time (libnvidia-ml.so.1). No library, no driver or
 * no device simply means no GPUs: never an error that stops the node. */
#ifndef MANTA_GPU_H
#define MANTA_GPU_H

#include <stddef.h>
#include <stdint.h>

typedef struct gpu_device {
    char name[96];
    char uuid[96];
    float usage_percent;
    uint64_t memory_total, memory_used;
    float memory_percent_used;
    float temperature; /* Celsius */
    int power_draw;    /* watts */
    int power_limit;   /* watts */
} gpu_device;

typedef struct gpu_report {
    size_t count;
    gpu_device *devices; /* owned */
    char note[160];      /* why there are none ("NVML not found"), "" otherwise */
} gpu_report;

/* Probe the GPUs. library: NULL = $MANTA_NVML_LIBRARY, else "libnvidia-ml.so.1". */
void gpu_probe(const char *library, gpu_report *out);
void gpu_report_release(gpu_report *r);

#endif
