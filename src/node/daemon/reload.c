/* reload.c - SIGHUP: reopen the log and apply what a reloaded configuration may change. Which
 * keys may change live is the key table's business (CFG_RELOAD and an apply step,
 * node_config_keys.c); this file only holds the apply steps, indexed by enum node_apply. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "light.h"
#include "mem.h"
#include "node_config.h"

/* One live-apply step: take the new value(s) from `fresh` into the running node. May move
 * what it takes out of `fresh` (which is freed afterwards). */
typedef void (*apply_fn)(node *n, node_config *fresh);

static void apply_log_level(node *n, node_config *fresh)
{
    log_level lvl = LOG_INFO;
    log_level_parse(fresh->logging.level, &lvl);
    log_set_level(n->log, lvl);
    log_info(n->log, "agent", "Reloaded logging.level = %s", fresh->logging.level);
    free(n->cfg.logging.level);
    n->cfg.logging.level = xstrdup(fresh->logging.level);
}

static void apply_datasets(node *n, node_config *fresh)
{
    mt_error *e = NULL;
    dataset_set ds;
    if (datasets_scan(&fresh->datasets.mappings, &ds, &e) < 0) {
        log_error(n->log, "agent", "New dataset mappings rejected, keeping the old ones: %s",
                  mt_error_msg(e));
        mt_error_free(&e);
        return;
    }
    datasets_release(&n->datasets);
    n->datasets = ds;
    cfg_map tmp = n->cfg.datasets.mappings;
    n->cfg.datasets.mappings = fresh->datasets.mappings;
    fresh->datasets.mappings = tmp;
    log_info(n->log, "agent", "Reloaded datasets.mappings: %zu dataset(s)", ds.len);
    if (n->light)
        light_set_datasets(n->light, &n->datasets);
}

static const apply_fn apply_steps[NODE_APPLY_COUNT] = {
    [NODE_APPLY_LOG_LEVEL] = apply_log_level,
    [NODE_APPLY_DATASETS] = apply_datasets,
};

void agent_reload(node *n)
{
    mt_error *e = NULL;
    if (log_reopen(n->log, &e) < 0) {
        log_error(n->log, "agent", "Cannot reopen the log: %s", mt_error_msg(e));
        mt_error_free(&e);
    }
    log_info(n->log, "agent", "SIGHUP: log file reopened; reloading %s", n->cfg.path);
    node_config fresh;
    if (config_load_file(&fresh, n->cfg.path, 0, &e) < 0) {
        log_error(n->log, "agent", "Reload failed, keeping the running settings: %s",
                  mt_error_msg(e));
        mt_error_free(&e);
        config_free(&fresh);
        return;
    }
    config_finalize(&fresh, n->alias_override);
    uint32_t steps = 0;
    cleanup_free char *restart = config_reload_plan(&n->cfg, &fresh, &steps);
    for (unsigned i = 1; i < NODE_APPLY_COUNT; i++)
        if ((steps & (1u << i)) && apply_steps[i])
            apply_steps[i](n, &fresh);
    if (*restart)
        log_warn(n->log, "agent", "Changed settings that need a restart to take effect: %s",
                 restart);
    if (!steps && !*restart)
        log_info(n->log, "agent", "Reload: no setting changed");
    config_free(&fresh);
}
