/* config_impl.h - what the two files of the configuration engine share (config.c: loading,
 * config_show.c: output). Not for other modules: they use config.h. */
#ifndef MANTA_CONFIG_IMPL_H
#define MANTA_CONFIG_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Both NULL (top level) or equal section names. */
bool cfg_same_section(const char *a, const char *b);
/* The key's name in lists: "network.manager_port", or "node_timeout" at the top level.
 * Returns owned. */
char *cfg_key_dotted(const cfg_key *k);
/* A number as text into buf: whole numbers without an exponent ("31536000"), others as %g.
 * Returns buf. */
const char *cfg_num_text(double v, char buf[32]);
/* The choices of a CFG_ENUM key, quoted: "\"a\", \"b\" or \"c\"". Returns owned. */
char *cfg_choices_text(const cfg_key *k);

#endif
