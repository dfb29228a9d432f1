/* proto-roundtrip.c - protobuf-c side of the wire-contract conformance test.
 *
 * Usage:
 *   proto-roundtrip list                 full names of every message type it knows, one a line
 *   proto-roundtrip fill NAME OUT        a fully populated NAME (the rule below), packed to OUT
 *   proto-roundtrip echo NAME IN OUT     unpack IN as NAME, re-pack it to OUT
 *   proto-roundtrip result-query SIZE OUT
 *                                        the filled common.results.ResultQuery packed with
 *                                        pbcompat_pack_result_query(q, SIZE) (int32 SIZE)
 * Exit 0 on success; 1 with a message on stderr on failure (unknown NAME, unreadable IN, IN
 * not a valid NAME); 2 on a usage error.
 *
 * Everything is driven by the protobuf-c descriptors of MESSAGES, the table of every message
 * type generated from proto/ (plus google.protobuf.Timestamp); the conformance test checks that
 * the table matches proto/ and the generated headers exactly.
 *
 * The fill rule (tests/integration/test_proto_conformance.py implements the same rule on the
 * Python descriptors). Each message instance has a depth d (the top-level message is 0) and an
 * index s (its element index when it is an element of a repeated or map field, else 0). A
 * field number n, element index i (0 for a singular field) gives k = 10000*d + 1000*s + 100*i + n:
 *   int32, sint32, sfixed32    -k                  (negative: 10-byte varint for int32)
 *   int64, sint64, sfixed64    -k * 2^32
 *   uint32, fixed32            2^31 + k            (5-byte varint)
 *   uint64, fixed64            2^63 + k            (10-byte varint)
 *   float                      k + 0.5             (exact in binary)
 *   double                     k + 0.25
 *   bool                       true
 *   enum                       the enum's non-zero values in ascending order, the one at
 *                              k mod their count (the first value if there is none)
 *   string                     "f<n>-<d>-<s>-<i>é" (UTF-8; one non-ASCII character)
 *   bytes                      00 <n> <d> <s> <i> ff
 *   message                    present, filled at depth d+1 (index 0) while d+1 <= MAX_DEPTH
 *                              (3); absent beyond
 *   repeated                   2 elements (i = 0, 1; message elements get s = i); numeric
 *                              ones are packed, as proto3 requires
 *   map                        2 entries: entry messages at depth d+1 with s = 0, 1 (so key
 *                              "f1-<d+1>-<s>-0é", value "f2-<d+1>-<s>-0é")
 *   optional (synthetic oneof) present, with the value above (of a real oneof, were one
 *                              added, only the lowest-numbered member is set)
 *   google.protobuf.Timestamp  seconds = 1700000000 + k(1), nanos = 1000 * k(2) (valid)
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/informations.pb-c.h"
#include "common/permissions.pb-c.h"
#include "common/results.pb-c.h"
#include "common/swarms.pb-c.h"
#include "common/system.pb-c.h"
#include "common/tasks.pb-c.h"
#include "common/user.pb-c.h"
#include "common/cluster.pb-c.h"
#include "core/user_services.pb-c.h"
#include "err.h"
#include "fsutil.h"
#include "google/protobuf/timestamp.pb-c.h"
#include "mem.h"
#include "node/light_service.pb-c.h"
#include "node/node_service.pb-c.h"
#include "pbcompat.h"

enum { MAX_DEPTH = 3, N_REPEATED = 2 };
#define MAX_INPUT_BYTES ((size_t)1 << 30)
#define TIMESTAMP_BASE  1700000000

/* Every message type of the wire contract, in proto file order. */
/* clang-format off */
static const ProtobufCMessageDescriptor *const MESSAGES[] = {
    /* google/protobuf/timestamp.proto */
    &google__protobuf__timestamp__descriptor,
    /* common/informations.proto */
    &common__informations__node_overview__descriptor,
    &common__informations__node__descriptor,
    &common__informations__informations__descriptor,
    &common__informations__metrics_snapshot__descriptor,
    &common__informations__set_system_summary_request__descriptor,
    &common__informations__overview__descriptor,
    &common__informations__overviews__descriptor,
    &common__informations__dataset_overviews__descriptor,
    &common__informations__node_status__descriptor,
    &common__informations__ping__descriptor,
    &common__informations__registration__descriptor,
    &common__informations__mqtt_topics__descriptor,
    &common__informations__cpu_metrics__descriptor,
    &common__informations__memory_metrics__descriptor,
    &common__informations__gpu_metrics__descriptor,
    &common__informations__gpu_device_list__descriptor,
    &common__informations__gpu_device__descriptor,
    &common__informations__network_usage__descriptor,
    &common__informations__disk_usage__descriptor,
    &common__informations__additional_metrics__descriptor,
    &common__informations__platform_info__descriptor,
    /* common/permissions.proto */
    &common__permissions__user_quotas__descriptor,
    &common__permissions__cluster_quotas__descriptor,
    &common__permissions__swarm_quotas__descriptor,
    &common__permissions__module_quotas__descriptor,
    &common__permissions__user_authorization__descriptor,
    &common__permissions__cluster_authorization__descriptor,
    &common__permissions__swarm_authorization__descriptor,
    &common__permissions__module_authorization__descriptor,
    /* common/results.proto */
    &common__results__result_query__descriptor,
    &common__results__result__descriptor,
    &common__results__chunk_result_values__descriptor,
    &common__results__global_tag__descriptor,
    &common__results__global_value__descriptor,
    &common__results__global_update__descriptor,
    &common__results__global__descriptor,
    /* common/swarms.proto */
    &common__swarms__swarm__descriptor,
    &common__swarms__swarm_list__descriptor,
    &common__swarms__graph__descriptor,
    /* common/system.proto */
    &common__system__empty__descriptor,
    &common__system__str__descriptor,
    &common__system__jwt__descriptor,
    &common__system__ok__descriptor,
    &common__system__pair_id__descriptor,
    &common__system__str_id__descriptor,
    &common__system__list_pair_ids__descriptor,
    &common__system__collection_ids__descriptor,
    &common__system__relation__descriptor,
    &common__system__env_id__descriptor,
    &common__system__swarm_order__descriptor,
    &common__system__response__descriptor,
    &common__system__binary__descriptor,
    &common__system__proto_dict__descriptor,
    &common__system__proto_dict__content_entry__descriptor,
    &common__system__logs__descriptor,
    &common__system__error__descriptor,
    &common__system__stop_swarm_request__descriptor,
    &common__system__user_query__descriptor,
    &common__system__query_list__descriptor,
    &common__system__network__descriptor,
    &common__system__networks__descriptor,
    /* common/tasks.proto */
    &common__tasks__module__descriptor,
    &common__tasks__scheduling__descriptor,
    &common__tasks__task__descriptor,
    &common__tasks__task_scheduling__descriptor,
    &common__tasks__task_update__descriptor,
    &common__tasks__mqtt_task__descriptor,
    /* node/light_service.proto */
    &node__light_service__data_request__descriptor,
    &node__light_service__light_result_query__descriptor,
    &node__light_service__light_result__descriptor,
    &node__light_service__proto_path__descriptor,
    &node__light_service__exists_response__descriptor,
    &node__light_service__read_text__descriptor,
    &node__light_service__dir_request__descriptor,
    &node__light_service__list_dir_response__descriptor,
    &node__light_service__get_global_request__descriptor,
    &node__light_service__set_global_request__descriptor,
    /* common/user.proto */
    &common__user__user__descriptor,
    /* common/cluster.proto */
    &common__cluster__cluster_list__descriptor,
    &common__cluster__cluster__descriptor,
    /* core/user_services.proto */
    &core__user_services__register_user_request__descriptor,
    &core__user_services__register_user_response__descriptor,
    &core__user_services__add_user_request__descriptor,
    &core__user_services__sign_in_request__descriptor,
    &core__user_services__validate_user_request__descriptor,
    &core__user_services__validate_user_response__descriptor,
    &core__user_services__get_user_request__descriptor,
    &core__user_services__delete_user_request__descriptor,
    &core__user_services__request_password_reset_request__descriptor,
    &core__user_services__request_password_reset_response__descriptor,
    &core__user_services__reset_password_request__descriptor,
    &core__user_services__reset_password_response__descriptor,
    &core__user_services__resend_verification_request__descriptor,
    &core__user_services__resend_verification_response__descriptor,
    &core__user_services__create_cluster_request__descriptor,
    &core__user_services__node_request__descriptor,
    &core__user_services__errors_request__descriptor,
    &core__user_services__send_swarm_request__descriptor,
    &core__user_services__stop_swarm_request__descriptor,
    &core__user_services__results_request__descriptor,
    &core__user_services__delete_results_request__descriptor,
    &core__user_services__log_query__descriptor,
    &core__user_services__global_request__descriptor,
    &core__user_services__results_response__descriptor,
    &core__user_services__log_response__descriptor,
    &core__user_services__task_response__descriptor,
    &core__user_services__select_global_response__descriptor,
    &core__user_services__module_request__descriptor,
    &core__user_services__tags__descriptor,
    &core__user_services__tags__gb_usage_per_tag_entry__descriptor,
    /* node/node_service.proto: services only */
};
/* clang-format on */

static const ProtobufCMessageDescriptor *find_message(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(MESSAGES); i++)
        if (strcmp(MESSAGES[i]->name, name) == 0)
            return MESSAGES[i];
    return NULL;
}

/* ---- the fill rule ---- */

static uint32_t rule_k(uint32_t n, unsigned d, unsigned s, unsigned i)
{
    return 10000u * d + 1000u * s + 100u * i + n;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int rule_enum(const ProtobufCEnumDescriptor *ed, uint32_t k)
{
    cleanup_free int *nonzero = xcalloc(ed->n_values, sizeof(int));
    size_t n = 0;
    for (unsigned j = 0; j < ed->n_values; j++)
        if (ed->values[j].value != 0)
            nonzero[n++] = ed->values[j].value;
    if (n == 0)
        return ed->n_values ? ed->values[0].value : 0;
    qsort(nonzero, n, sizeof(int), cmp_int);
    return nonzero[k % n];
}

static size_t elem_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        return sizeof(int32_t);
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        return sizeof(uint32_t);
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        return sizeof(int64_t);
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return sizeof(uint64_t);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    }
    abort();
}

static ProtobufCMessage *new_message(const ProtobufCMessageDescriptor *desc)
{
    ProtobufCMessage *m = xmalloc(desc->sizeof_message);
    desc->message_init(m);
    return m;
}

static void fill_message(ProtobufCMessage *msg, unsigned d, unsigned s);

/* Store the rule's value of field f (element i) of a message at (d, s) into dst. */
static void fill_value(const ProtobufCFieldDescriptor *f, void *dst, unsigned d, unsigned s,
                       unsigned i)
{
    uint32_t k = rule_k(f->id, d, s, i);
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        *(int32_t *)dst = -(int32_t)k;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        *(uint32_t *)dst = UINT32_C(0x80000000) + k;
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        *(int64_t *)dst = -(int64_t)k * INT64_C(0x100000000);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        *(uint64_t *)dst = UINT64_C(0x8000000000000000) + k;
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        *(float *)dst = (float)k + 0.5f;
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        *(double *)dst = (double)k + 0.25;
        break;
    case PROTOBUF_C_TYPE_BOOL:
        *(protobuf_c_boolean *)dst = 1;
        break;
    case PROTOBUF_C_TYPE_ENUM:
        *(int *)dst = rule_enum(f->descriptor, k);
        break;
    case PROTOBUF_C_TYPE_STRING:
        *(char **)dst = xasprintf("f%u-%u-%u-%u\xc3\xa9", (unsigned)f->id, d, s, i);
        break;
    case PROTOBUF_C_TYPE_BYTES: {
        ProtobufCBinaryData *b = dst;
        b->len = 6;
        b->data = xmalloc(b->len);
        const uint8_t v[6] = {0x00, (uint8_t)f->id, (uint8_t)d, (uint8_t)s, (uint8_t)i, 0xff};
        memcpy(b->data, v, sizeof(v));
        break;
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        /* Elements of repeated (and map) fields are indexed by their position. */
        ProtobufCMessage *m = new_message(f->descriptor);
        fill_message(m, d + 1, i);
        *(ProtobufCMessage **)dst = m;
        break;
    }
    }
}

static void fill_timestamp(Google__Protobuf__Timestamp *ts, unsigned d, unsigned s)
{
    ts->seconds = TIMESTAMP_BASE + (int64_t)rule_k(1, d, s, 0);
    ts->nanos = (int32_t)(1000 * rule_k(2, d, s, 0));
}

static void fill_message(ProtobufCMessage *msg, unsigned d, unsigned s)
{
    const ProtobufCMessageDescriptor *desc = msg->descriptor;
    if (desc == &google__protobuf__timestamp__descriptor) {
        fill_timestamp((Google__Protobuf__Timestamp *)msg, d, s);
        return;
    }
    char *base = (char *)msg;
    for (unsigned j = 0; j < desc->n_fields; j++) {
        const ProtobufCFieldDescriptor *f = &desc->fields[j];
        bool is_msg = f->type == PROTOBUF_C_TYPE_MESSAGE;
        if (is_msg && d + 1 > MAX_DEPTH)
            continue; /* beyond the depth limit: absent (or no elements) */
        void *member = base + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t size = elem_size(f->type);
            char *arr = xcalloc(N_REPEATED, size);
            for (unsigned i = 0; i < N_REPEATED; i++)
                fill_value(f, arr + i * size, d, s, i);
            *(size_t *)(base + f->quantifier_offset) = N_REPEATED;
            *(void **)member = arr;
            continue;
        }
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t *oneof_case = (uint32_t *)(base + f->quantifier_offset);
            if (*oneof_case != 0)
                continue; /* a real oneof: its lowest-numbered member only */
            *oneof_case = f->id;
        } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->quantifier_offset)
            *(protobuf_c_boolean *)(base + f->quantifier_offset) = 1; /* proto2 has_x */
        fill_value(f, member, d, s, 0);
    }
}

/* ---- I/O ---- */

static int write_file(const char *path, const uint8_t *data, size_t len, mt_error **err)
{
    cleanup_fclose FILE *fp = fopen(path, "wb");
    if (!fp)
        return mt_error_sys(err, errno, "cannot create %s", path);
    if (len && fwrite(data, 1, len, fp) != len)
        return mt_error_sys(err, errno, "cannot write %s", path);
    int rc = fclose(fp);
    fp = NULL;
    if (rc != 0)
        return mt_error_sys(err, errno, "cannot write %s", path);
    return 0;
}

static int write_packed(const ProtobufCMessage *msg, const char *path, mt_error **err)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    cleanup_free uint8_t *buf = xmalloc(len);
    size_t n = protobuf_c_message_pack(msg, buf);
    if (n != len)
        return mt_error_set(err, MT_ERR_GENERIC, "%s: packed %zu bytes, expected %zu",
                            msg->descriptor->name, n, len);
    return write_file(path, buf, len, err);
}

static const ProtobufCMessageDescriptor *need_message(const char *name, mt_error **err)
{
    const ProtobufCMessageDescriptor *desc = find_message(name);
    if (!desc)
        mt_error_set(err, MT_ERR_NOTFOUND,
                     "unknown message type \"%s\" (see `proto-roundtrip list`)", name);
    return desc;
}

/* ---- modes ---- */

static int cmd_list(void)
{
    for (size_t i = 0; i < ARRAY_LEN(MESSAGES); i++)
        printf("%s\n", MESSAGES[i]->name);
    return fflush(stdout) == 0 ? 0 : -1;
}

static int cmd_fill(const char *name, const char *out, mt_error **err)
{
    const ProtobufCMessageDescriptor *desc = need_message(name, err);
    if (!desc)
        return -1;
    ProtobufCMessage *msg = new_message(desc);
    fill_message(msg, 0, 0);
    int rc = write_packed(msg, out, err);
    protobuf_c_message_free_unpacked(msg, NULL);
    return rc;
}

static int cmd_echo(const char *name, const char *in, const char *out, mt_error **err)
{
    const ProtobufCMessageDescriptor *desc = need_message(name, err);
    if (!desc)
        return -1;
    size_t len = 0;
    cleanup_free char *data = fs_read_file(in, MAX_INPUT_BYTES, &len, err);
    if (!data)
        return -1;
    ProtobufCMessage *msg = protobuf_c_message_unpack(desc, NULL, len, (const uint8_t *)data);
    if (!msg)
        return mt_error_set(err, MT_ERR_PARSE, "%s: not a valid %s message (%zu bytes)", in, name,
                            len);
    int rc = write_packed(msg, out, err);
    protobuf_c_message_free_unpacked(msg, NULL);
    return rc;
}

static int cmd_result_query(const char *size_text, const char *out, mt_error **err)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(size_text, &end, 10);
    if (errno || end == size_text || *end || v < INT32_MIN || v > INT32_MAX)
        return mt_error_set(err, MT_ERR_USAGE, "SIZE must be an int32, not \"%s\"", size_text);
    ProtobufCMessage *msg = new_message(&common__results__result_query__descriptor);
    fill_message(msg, 0, 0);
    size_t len = 0;
    cleanup_free uint8_t *buf =
        pbcompat_pack_result_query((const Common__Results__ResultQuery *)msg, (int32_t)v, &len);
    protobuf_c_message_free_unpacked(msg, NULL);
    return write_file(out, buf, len, err);
}

static int usage(void)
{
    fputs("usage: proto-roundtrip list\n"
          "       proto-roundtrip fill NAME OUT\n"
          "       proto-roundtrip echo NAME IN OUT\n"
          "       proto-roundtrip result-query SIZE OUT\n",
          stderr);
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    const char *mode = argv[1];
    mt_error *err = NULL;
    int rc;
    if (strcmp(mode, "list") == 0 && argc == 2)
        rc = cmd_list();
    else if (strcmp(mode, "fill") == 0 && argc == 4)
        rc = cmd_fill(argv[2], argv[3], &err);
    else if (strcmp(mode, "echo") == 0 && argc == 5)
        rc = cmd_echo(argv[2], argv[3], argv[4], &err);
    else if (strcmp(mode, "result-query") == 0 && argc == 4)
        rc = cmd_result_query(argv[2], argv[3], &err);
    else
        return usage();
    if (rc < 0) {
        fprintf(stderr, "proto-roundtrip %s: %s\n", mode,
                err ? mt_error_msg(err) : "cannot write the output");
        mt_error_free(&err);
        return 1;
    }
    return 0;
}
