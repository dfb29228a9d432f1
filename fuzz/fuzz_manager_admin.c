/* fuzz_manager_admin.c - libFuzzer target for the manager's admin requests.
 *
 * Each input is one admin request line as a client would send it on the admin socket. It is
 * answered from a store holding two swarms, task output and results with ill-formed UTF-8 and
 * long multi-byte texts (what crashed the manager in issue 16), through admin_local: the
 * store-only path `manta_manager nodes|swarms|status|results|logs --store` takes, which runs the
 * same handlers as a running manager for those reads. The commands that need a running manager
 * (`stop`, `submit`, ...) only reach its refusal here; `submit` is skipped (it reads files named
 * by the request). The answer must always be a JSON object that encodes, or an error with a
 * message (abort() otherwise). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "mem.h"
#include "store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char store_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char dir[] = "/tmp/fuzz_admin_XXXXXX";
    if (!mkdtemp(dir))
        abort();
    snprintf(store_path, sizeof(store_path), "%s/store.db", dir);
    mt_error *err = NULL;
    store *st = store_open(store_path, &err);
    if (!st)
        abort();
    const char *ids[] = {"0a1b2c3d4e5f60718293a4b5c6d7e8f9", "0a1b2c3d4e5f60718293a4b5c6d7e8fa"};
    char name[700];
    for (size_t i = 0; i < sizeof(name) - 1; i++)
        name[i] = "\xe2\x82\xac"[i % 3];
    name[sizeof(name) - 1] = '\0';
    for (int i = 0; i < 2; i++) {
        if (store_swarm_create(st, ids[i], i ? "plain" : name, 1000, &err) < 0)
            abort();
        store_swarm_update(st, ids[i], "FAILED", name, 3, 2000, &err);
        static const char text[] = "bad \xff\xfe utf-8 \xe2\x82";
        store_log_add(st, ids[i], "0abc", "0def", 1, 0, 3000, text, sizeof(text) - 1, &err);
        store_result_add(st, ids[i], "0def", "0abc", 1, "metrics\xc3", NULL, "\x81\xa1x\x01", 4,
                         4000, &err);
    }
    mt_error_free(&err);
    store_close(st);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *req = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!req)
        return 0;
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    if (cmd && !strcmp(cmd, "submit")) {
        json_decref(req);
        return 0;
    }
    mt_error *err = NULL;
    json_t *ans = admin_local(store_path, req, &err);
    if (ans) {
        if (!json_is_object(ans))
            abort();
        char *text = json_dumps(ans, JSON_COMPACT);
        if (!text)
            abort();
        free(text);
        json_decref(ans);
    } else if (!err || !*mt_error_msg(err)) {
        abort();
    }
    mt_error_free(&err);
    json_decref(req);
    return 0;
}
