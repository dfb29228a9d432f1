/* reload.c - SIGHUP: reopen the log and apply what a reloaded configuration may change. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "light.h"
#include "mem.h"
#include "strbuf.h"

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
    size_t nk;
    const cfg_key *keys = config_keys(&nk);
    strbuf restart = STRBUF_INIT;
    bool level_changed = false, datasets_changed = false;
    for (size_t i = 0; i < nk; i++) {
        if (keys[i].alias_of)
            continue;
        cleanup_free char *a = config_format_value(&n->cfg, (int)i);
        cleanup_free char *b = config_format_value(&fresh, (int)i);
        bool secret_changed = false;
        if (keys[i].flags & CFG_SECRET) { /* masked text: compare the values themselves */
            const char *x = *(char *const *)config_field_const(&n->cfg, &keys[i]);
            const char *y = *(char *const *)config_field_const(&fresh, &keys[i]);
            secret_changed = (x == NULL) != (y == NULL) || (x && y && strcmp(x, y) != 0);
        }
        if (!secret_changed && strcmp(a, b) == 0)
            continue;
        if (strcmp(keys[i].section, "logging") == 0 && strcmp(keys[i].name, "level") == 0)
            level_changed = true;
        else if (strcmp(keys[i].section, "datasets") == 0 && strcmp(keys[i].name, "mappings") == 0)
            datasets_changed = true;
        else
            sb_printf(&restart, "%s%s.%s", restart.len ? ", " : "", keys[i].section, keys[i].name);
    }
    if (level_changed) {
        log_level lvl = LOG_INFO;
        log_level_parse(fresh.logging.level, &lvl);
        log_set_level(n->log, lvl);
        log_info(n->log, "agent", "Reloaded logging.level = %s", fresh.logging.level);
        free(n->cfg.logging.level);
        n->cfg.logging.level = xstrdup(fresh.logging.level);
    }
    if (datasets_changed) {
        dataset_set ds;
        if (datasets_scan(&fresh.datasets.mappings, &ds, &e) < 0) {
            log_error(n->log, "agent", "New dataset mappings rejected, keeping the old ones: %s",
                      mt_error_msg(e));
            mt_error_free(&e);
        } else {
            datasets_release(&n->datasets);
            n->datasets = ds;
            cfg_map tmp = n->cfg.datasets.mappings;
            n->cfg.datasets.mappings = fresh.datasets.mappings;
            fresh.datasets.mappings = tmp;
            log_info(n->log, "agent", "Reloaded datasets.mappings: %zu dataset(s)", ds.len);
            if (n->light)
                light_set_datasets(n->light, &n->datasets);
        }
    }
    if (restart.len)
        log_warn(n->log, "agent", "Changed settings that need a restart to take effect: %s",
                 sb_str(&restart));
    if (!level_changed && !datasets_changed && !restart.len)
        log_info(n->log, "agent", "Reload: no setting changed");
    sb_free(&restart);
    config_free(&fresh);
}
