/* yaml_import.h - read a YAML document into the TOML value tree (for `config init FILE.yaml`). */
#ifndef MANTA_YAML_IMPORT_H
#define MANTA_YAML_IMPORT_H

#include <stddef.h>

#include "err.h"
#include "toml.h"

/* Parse YAML text. Plain scalars resolve as in YAML 1.2's core schema (null, true/false,
 * integers, floats, else strings; quoted scalars are strings); null values are dropped (the
 * key is absent). The root must be a mapping. Returns an owned TOML table or NULL with *err
 * ("name:line:col: reason"). */
toml_value *yaml_parse(const char *data, size_t len, const char *name, mt_error **err);

#endif
