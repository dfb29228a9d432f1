/* pyz.h - the SDK's module archive (task-contract.md 1.1): a module, a .py file or a package
 * folder, packed as the zip the SDK uploads, and the rules for module paths and names that the
 * swarm-file loader (swarmfile.c) checks with before packing. */
#ifndef MANTA_MGR_PYZ_H
#define MANTA_MGR_PYZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* The SDK's module archive of a .py file or a package folder: X.py (or X/... recursively,
 * skipping any path containing "pycache") plus __main__.py =
 * "# -*- coding: utf-8 -*-\nimport X\nX.main()\n", deflate, every entry dated 2023-01-01
 * 00:00:00, entries in a stable (sorted) order. Returns 0 with *out owned, -1 with *err. */
int pyz_pack(const char *module_path, uint8_t **out, size_t *out_len, mt_error **err);

/* "/a/./b//c/" -> "/a/b/c": drops empty and "." components and trailing slashes (".." is
 * kept: it is resolved by the file system). Returns owned. */
char *pyz_path_tidy(const char *path);

/* The module name of a module path: its last component without ".py". Owned. */
char *pyz_module_stem(const char *path);

/* Whether `import name` can work: a Python identifier (non-ASCII letters are let through) that
 * is not a keyword, and not __main__ (the archive's own entry point). Borrows name. */
bool pyz_module_name_ok(const char *name);

#endif
