/* runtime.c - choosing and releasing a runtime driver; see runtime.h. */
#include "runtime.h"

#include <string.h>

#include "node_config.h"
#include "mem.h"

runtime *runtime_open(const node_config *cfg, const char **chosen, mt_error **err)
{
    const char *want = cfg->containers.runtime ? cfg->containers.runtime : "auto";
    *chosen = NULL;
    if (strcmp(want, "docker") == 0) {
        *chosen = "docker";
        return runtime_docker_new(cfg, err);
    }
    if (strcmp(want, "runc") == 0) {
        *chosen = "runc";
        return runtime_runc_new(cfg, err);
    }
    if (strcmp(want, "process") == 0) {
        *chosen = "process";
        return runtime_process_new(cfg, err);
    }
    /* auto: docker, then runc */
    mt_error *de = NULL;
    runtime *rt = runtime_docker_new(cfg, &de);
    if (rt) {
        *chosen = "docker";
        return rt;
    }
    mt_error *re = NULL;
    rt = runtime_runc_new(cfg, &re);
    if (rt) {
        mt_error_free(&de);
        *chosen = "runc";
        return rt;
    }
    mt_error_set(err, MT_ERR_CONFIG,
                 "no container runtime is available (docker: %s; runc: %s); install one or set "
                 "containers.runtime = \"process\" to run tasks without isolation",
                 mt_error_msg(de), mt_error_msg(re));
    mt_error_free(&de);
    mt_error_free(&re);
    return NULL;
}
