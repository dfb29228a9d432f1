/* light_local.c - node.light_service.Local: the four RPCs a running task calls to read the
 * node's local datasets (reference-node.md 11.4, 12.1, 12.3; task-contract.md 4-6, 10).
 *
 * Improvements over the reference: only tasks of this node are served; files are streamed in
 * bounded chunks; ReadFileLines defaults to UTF-8/strict and re-encodes with iconv; refusals of
 * paths (traversal, NUL, symlinks leaving the dataset) use non-retryable statuses; no retryable
 * status is ever returned (so a task never retries after partial data). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <iconv.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/system.pb-c.h"
#include "fsutil.h"
#include "light_impl.h"
#include "mem.h"
#include "pbcompat.h"
#include "utf8.h"
#include "node/light_service.pb-c.h"
#include "wire.h"

#define COMP "light"

/* Bytes of a dataset file per GetBinaryData message. A stream holds about two of them at once
 * (the one read and gRPC's copy being sent), so this bounds a stream's memory: about 2 MiB of RSS
 * per stream, 16 MiB for a task at its cap of calls (LIGHT_TASK_CALLS). Messages of 4 MiB were
 * not measurably faster, even with a C client, and cost four times the memory (bench/README.md);
 * -DBINARY_CHUNK=... builds another size (a whole message must stay below 4 MiB, a gRPC client's
 * receive limit by default). */
#ifndef BINARY_CHUNK
#define BINARY_CHUNK (1u << 20)
#endif
#define BINARY_HEAD     6 /* room for a Binary message's header: field tag + length varint */
#define TEXT_READ_CHUNK (64u << 10)
#define TEXT_OUT_CHUNK  (256u << 10)
/* Longer lines are sent in several messages (each below 4 MiB, a gRPC client's default limit). */
#define MAX_LINE_MESSAGE ((4u << 20) - (4u << 10))

/* A refusal is an mt_error: its status the rpc code, its category the contract's error id
 * (error_id), its message the text. fail_set replaces what was set before. */
#define fail_set(err, status, category, ...) mt_error_set_status(err, status, category, __VA_ARGS__)

/* The contract's error id of a refusal's category. */
static const char *error_id(const mt_error *e)
{
    switch (e ? e->code : 0) {
    case MT_ERR_INVALID:
        return "VALIDATION_ERROR";
    case MT_ERR_RESOURCE:
        return "RESOURCE_ERROR";
    default:
        return "UNKNOWN_ERROR";
    }
}

static void finish_fail(struct light_service *ls, rpc_call *call, const char *method, mt_error **f)
{
    log_debug(light_log(ls), COMP, "Local/%s refused: %s: %s", method, error_id(*f),
              mt_error_msg(*f));
    light_fail(call, mt_error_status(*f, RPC_INTERNAL), error_id(*f), "%s", mt_error_msg(*f));
    mt_error_free(f);
}

static void datasets_cleanup(dataset_set *s)
{
    datasets_release(s);
}

/* ---- request decoding ---------------------------------------------------------------------- */

/* Does any string field of the encoded message (recursively) contain a NUL byte? protobuf-c
 * hands strings over as C strings, which would silently truncate "a\0b" to "a". */
static bool has_nul_string(const ProtobufCMessageDescriptor *desc, const uint8_t *p, size_t len,
                           int depth)
{
    size_t pos = 0;
    if (depth > 8)
        return false;
    pb_field f;
    int r;
    while ((r = pb_field_next(p, len, &pos, &f)) > 0) {
        if (f.wire != 2)
            continue;
        const ProtobufCFieldDescriptor *fd =
            protobuf_c_message_descriptor_get_field(desc, f.number);
        if (fd && fd->type == PROTOBUF_C_TYPE_STRING && memchr(p + f.value, 0, f.vlen))
            return true;
        if (fd && fd->type == PROTOBUF_C_TYPE_MESSAGE &&
            has_nul_string(fd->descriptor, p + f.value, f.vlen, depth + 1))
            return true;
    }
    return false; /* the end, or malformed: the unpack reports it */
}

/* Receive and unpack the single request. On mt_error **f is set. Returns owned message or NULL. */
static ProtobufCMessage *recv_request(rpc_call *call, const ProtobufCMessageDescriptor *desc,
                                      mt_error **f)
{
    rpc_bytes b = {0};
    int r = rpc_call_recv(call, &b);
    if (r != 1) {
        fail_set(f, RPC_INVALID_ARGUMENT, MT_ERR_INVALID, "no request message received");
        return NULL;
    }
    if (has_nul_string(desc, b.data, b.len, 0)) {
        rpc_bytes_free(&b);
        fail_set(f, RPC_INVALID_ARGUMENT, MT_ERR_INVALID,
                 "Invalid file path - NUL byte in request");
        return NULL;
    }
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, b.len, b.data);
    rpc_bytes_free(&b);
    if (!m)
        fail_set(f, RPC_INVALID_ARGUMENT, MT_ERR_INVALID, "malformed request message");
    return m;
}

/* The request must come from a task of this node with fewer than LIGHT_TASK_CALLS calls in
 * progress; the call then counts against the task (*slot). */
static bool authorised(struct light_service *ls, const Node__LightService__DataRequest *dr,
                       mt_error **f, light_slot *slot)
{
    node_id swarm = wire_node_id(dr ? dr->swarm_id : NULL);
    node_id task = wire_node_id(dr ? dr->task_id : NULL);
    if (light_task_lookup(ls, swarm, task, NULL, NULL)) {
        if (light_slot_take(ls, swarm, task, slot))
            return true;
        char text[400];
        light_busy_text(text, sizeof(text), false);
        fail_set(f, RPC_RESOURCE_EXHAUSTED, MT_ERR_RESOURCE, "%s", text);
        return false;
    }
    char sx[64], tx[64];
    snprintf(sx, sizeof(sx), "%016llx%016llx", (unsigned long long)swarm.head,
             (unsigned long long)swarm.tail);
    snprintf(tx, sizeof(tx), "%016llx%016llx", (unsigned long long)task.head,
             (unsigned long long)task.tail);
    fail_set(f, RPC_FAILED_PRECONDITION, MT_ERR_RESOURCE,
             "Task %s of swarm %s is not a task of this node", tx, sx);
    return false;
}

/* The dataset a request names, and the path inside it (*sub, owned).
 *
 * The reference's rule: `name` is a dataset's name and `path` a path inside it. Two extensions
 * for MantaPath("dataset/inside/it") (task-contract.md 6), both used only when no dataset has
 * the name as given: the SDK's MantaPath sends an empty name with the whole path in `path`,
 * and this project's runtime sends GetBinaryData (which has no path field) the whole path as
 * the name; in both the first component names the dataset and the rest is the path inside. */
static const dataset *find_dataset(const dataset_set *ds, const char *name, const char *path,
                                   char **sub, mt_error **f)
{
    name = name ? name : "";
    path = path ? path : "";
    *sub = NULL;
    const dataset *d = datasets_find(ds, name);
    if (d) {
        *sub = xstrdup(path);
        return d;
    }
    if (!*name || strchr(name, '/')) {
        cleanup_free char *whole = !*name  ? xstrdup(path)
                                   : *path ? xasprintf("%s/%s", name, path)
                                           : xstrdup(name);
        const char *slash = strchr(whole, '/');
        cleanup_free char *first = slash ? xstrndup(whole, (size_t)(slash - whole)) : NULL;
        d = *whole && whole[0] != '/' ? datasets_find(ds, first ? first : whole) : NULL;
        if (d) {
            *sub = xstrdup(slash ? slash + 1 : "");
            return d;
        }
    }
    fail_set(f, RPC_FAILED_PRECONDITION, MT_ERR_RESOURCE, "Dataset '%s' not found",
             *name ? name : path);
    return NULL;
}

/* ---- path resolution (reference-node.md 11.4) ---------------------------------------------- */

/* Resolve `sub` inside dataset `d`: normalise, refuse traversal, resolve symlinks and refuse
 * targets outside the dataset root. Returns the owned real path of an existing target, or NULL
 * with *f set. */
static char *resolve_path(const dataset *d, const char *sub, mt_error **f)
{
    if (!sub)
        sub = "";
    if (sub[0] == '/') {
        fail_set(f, RPC_PERMISSION_DENIED, MT_ERR_INVALID,
                 "Invalid file path - directory traversal attempt: %s", sub);
        return NULL;
    }
    /* Normalise: collapse ".", "..", duplicate separators; a leading ".." is traversal. */
    size_t sublen = strlen(sub);
    cleanup_free char *norm = xmalloc(sublen + 1);
    size_t nlen = 0;
    const char *s = sub;
    while (*s) {
        while (*s == '/')
            s++;
        const char *e = s;
        while (*e && *e != '/')
            e++;
        size_t cl = (size_t)(e - s);
        if (cl == 0 || (cl == 1 && s[0] == '.')) {
            /* skip */
        } else if (cl == 2 && s[0] == '.' && s[1] == '.') {
            if (nlen == 0) {
                fail_set(f, RPC_PERMISSION_DENIED, MT_ERR_INVALID,
                         "Invalid file path - directory traversal attempt: %s", sub);
                return NULL;
            }
            while (nlen > 0 && norm[nlen - 1] != '/')
                nlen--;
            if (nlen > 0)
                nlen--; /* the separator */
        } else {
            if (nlen > 0)
                norm[nlen++] = '/';
            memcpy(norm + nlen, s, cl);
            nlen += cl;
        }
        s = e;
    }
    norm[nlen] = '\0';

    cleanup_free char *root = realpath(d->path, NULL);
    if (!root) {
        fail_set(f, RPC_FAILED_PRECONDITION, MT_ERR_RESOURCE, "Dataset path unavailable: %s",
                 strerror(errno));
        return NULL;
    }
    cleanup_free char *joined = nlen ? xasprintf("%s/%s", root, norm) : xstrdup(root);
    char *target = realpath(joined, NULL);
    if (!target) {
        int e = errno;
        if (e == EACCES)
            fail_set(f, RPC_PERMISSION_DENIED, MT_ERR_RESOURCE, "Permission denied: %s",
                     nlen ? norm : "(dataset root)");
        else
            fail_set(f, RPC_FAILED_PRECONDITION, MT_ERR_RESOURCE, "File not found: %s (%s)",
                     nlen ? norm : "(dataset root)", strerror(e));
        return NULL;
    }
    size_t rl = strlen(root);
    bool inside = strcmp(target, root) == 0 ||
                  (strncmp(target, root, rl) == 0 && (target[rl] == '/' || rl == 1));
    if (!inside) {
        free(target);
        fail_set(f, RPC_PERMISSION_DENIED, MT_ERR_INVALID,
                 "Path traversal attempt detected: %s resolves outside dataset directory", sub);
        return NULL;
    }
    return target;
}

/* Open a file of a dataset for reading: regular files only, and never blocking on the open
 * (fs_open_regular). Anything else is refused with a non-retryable status (a task retrying a
 * FIFO would only wait again): FAILED_PRECONDITION, or PERMISSION_DENIED for permissions and
 * links swapped in. Returns the fd or -1 with *f set (its text without the file's name: the
 * caller prefixes it) and st->st_mode telling what was found. */
static int open_dataset_file(const char *path, int flags, struct stat *st, mt_error **f)
{
    mt_error *e = NULL;
    int fd = fs_open_regular(path, flags, st, &e);
    if (fd >= 0)
        return fd;
    int en = e ? e->errnum : 0;
    mt_error_free(&e);
    if (st->st_mode && !S_ISREG(st->st_mode))
        fail_set(f, S_ISLNK(st->st_mode) ? RPC_PERMISSION_DENIED : RPC_FAILED_PRECONDITION,
                 MT_ERR_RESOURCE, "it is %s, not a regular file; only regular files can be read",
                 fs_kind(st->st_mode));
    else
        fail_set(f, en == EACCES || en == EPERM ? RPC_PERMISSION_DENIED : RPC_FAILED_PRECONDITION,
                 MT_ERR_RESOURCE, "cannot be opened: %s", strerror(en ? en : EIO));
    return -1;
}

/* ---- GetBinaryData ------------------------------------------------------------------------- */

static int send_binary(rpc_call *call, const uint8_t *data, size_t len)
{
    Common__System__Binary msg = COMMON__SYSTEM__BINARY__INIT;
    msg.content.data = (uint8_t *)data;
    msg.content.len = len;
    size_t n = common__system__binary__get_packed_size(&msg);
    cleanup_free uint8_t *buf = xmalloc(n ? n : 1);
    common__system__binary__pack(&msg, buf);
    return rpc_call_send(call, buf, n);
}

/* Send common.system.Binary{content = data[0..len)} where data has BINARY_HEAD bytes of room
 * before it for the header (no copy of the content). */
static int send_chunk(rpc_call *call, uint8_t *data, size_t len)
{
    if (len == 0)
        return rpc_call_send(call, data, 0); /* proto3: an empty field is not written */
    size_t hl = 1 + pb_varint_len(len);
    uint8_t *start = data - hl;
    start[0] = (1 << 3) | 2; /* field 1, length-delimited */
    pb_varint_write(start + 1, len);
    return rpc_call_send(call, start, hl + len);
}

static void get_binary_data(struct light_service *ls, rpc_call *call)
{
    cleanup_error mt_error *f = NULL;
    Node__LightService__DataRequest *req = (Node__LightService__DataRequest *)recv_request(
        call, &node__light_service__data_request__descriptor, &f);
    if (!req)
        return finish_fail(ls, call, "GetBinaryData", &f);
    __attribute__((cleanup(datasets_cleanup))) dataset_set ds = {0};
    light_datasets_copy(ls, &ds);
    const dataset *d = NULL;
    cleanup_close int fd = -1;
    cleanup_free uint8_t *buf = NULL; /* declared before any goto (cleanup) */
    cleanup_free char *sub = NULL;
    cleanup_free char *file = NULL;
    cleanup_slot light_slot slot = {0};
    if (!authorised(ls, req, &f, &slot) || !(d = find_dataset(&ds, req->name, "", &sub, &f)))
        goto fail;
    bool folder = d->is_dir || strcmp(d->dtype, "folder") == 0;
    if (*sub && !folder) {
        fail_set(&f, RPC_INVALID_ARGUMENT, MT_ERR_INVALID,
                 "Dataset '%s' is a file: it has no '%s' inside", d->key, sub);
        goto fail;
    }
    if (folder && !*sub) {
        fail_set(&f, RPC_INVALID_ARGUMENT, MT_ERR_INVALID, "Dataset '%s' is a folder", d->key);
        goto fail;
    }
    /* a file inside a folder dataset (MantaPath): resolved as ReadFileLines resolves it */
    if (folder && !(file = resolve_path(d, sub, &f)))
        goto fail;
    /* The dataset was a regular file at the last scan, but may have been replaced since (by a
     * FIFO, whose open would block this thread, and the task's slot, for ever). */
    struct stat st;
    if ((fd = open_dataset_file(file ? file : d->path, file ? O_NOFOLLOW : 0, &st, &f)) < 0) {
        if (S_ISDIR(st.st_mode) && file)
            fail_set(&f, RPC_INVALID_ARGUMENT, MT_ERR_INVALID, "'%s' in dataset '%s' is a folder",
                     sub, d->key);
        else if (S_ISDIR(st.st_mode))
            fail_set(&f, RPC_INVALID_ARGUMENT, MT_ERR_INVALID, "Dataset '%s' is a folder", d->key);
        else
            mt_error_wrap(&f, "Dataset '%s'", d->key);
        goto fail;
    }
    node__light_service__data_request__free_unpacked(req, NULL);
    req = NULL;

    /* Each message is packed in place: the file is read just after room for the header. */
    buf = xmalloc(BINARY_HEAD + BINARY_CHUNK);
    uint8_t *data = buf + BINARY_HEAD;
    size_t sent = 0;
    for (;;) {
        size_t have = 0;
        bool eof = false;
        while (have < BINARY_CHUNK) {
            ssize_t r = read(fd, data + have, BINARY_CHUNK - have);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                /* Never retryable once data may have been sent. */
                light_fail(call, RPC_INTERNAL, "UNKNOWN_ERROR", "Reading dataset failed: %s",
                           strerror(errno));
                return;
            }
            if (r == 0) {
                eof = true;
                break;
            }
            have += (size_t)r;
        }
        /* An empty file still gets one (empty) message: an empty stream means "retry". */
        if (have > 0 || sent == 0) {
            if (send_chunk(call, data, have) < 0) {
                rpc_call_finish(call, RPC_CANCELLED, "call broken");
                return;
            }
            sent++;
        }
        if (eof)
            break;
    }
    rpc_call_finish(call, RPC_OK, NULL);
    if (sent * BINARY_CHUNK >= LIGHT_TRIM_BYTES)
        light_trim(ls); /* gRPC's copies of the messages, freed but kept by malloc */
    return;
fail:
    if (req)
        node__light_service__data_request__free_unpacked(req, NULL);
    finish_fail(ls, call, "GetBinaryData", &f);
}

/* ---- ListDir / Exists ---------------------------------------------------------------------- */

static void list_dir(struct light_service *ls, rpc_call *call)
{
    cleanup_error mt_error *f = NULL;
    Node__LightService__DirRequest *req = (Node__LightService__DirRequest *)recv_request(
        call, &node__light_service__dir_request__descriptor, &f);
    if (!req)
        return finish_fail(ls, call, "ListDir", &f);
    __attribute__((cleanup(datasets_cleanup))) dataset_set ds = {0};
    light_datasets_copy(ls, &ds);
    const dataset *d = NULL;
    cleanup_free char *dir = NULL;
    cleanup_free char *root = NULL;
    cleanup_free char *sub = NULL;
    cleanup_free uint8_t *buf = NULL; /* declared before any goto (cleanup) */
    cleanup_dir DIR *dh = NULL;
    cleanup_slot light_slot slot = {0};
    if (!authorised(ls, req->data_request, &f, &slot) ||
        !(d = find_dataset(&ds, req->data_request ? req->data_request->name : "", req->path, &sub,
                           &f)) ||
        !(dir = resolve_path(d, sub, &f)))
        goto fail;
    root = realpath(d->path, NULL);
    dh = opendir(dir);
    if (!dh || !root) {
        int e = errno;
        fail_set(&f, e == EACCES ? RPC_PERMISSION_DENIED : RPC_FAILED_PRECONDITION, MT_ERR_RESOURCE,
                 "Cannot list folder '%s': %s", req->path, strerror(e));
        goto fail;
    }
    size_t n = 0, cap = 16;
    Node__LightService__ProtoPath *items = xcalloc(cap, sizeof(*items));
    struct dirent *de;
    while ((de = readdir(dh))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap *= 2;
            items = xrealloc(items, cap * sizeof(*items));
        }
        bool is_file = false;
        cleanup_free char *full = xasprintf("%s/%s", dir, de->d_name);
        cleanup_free char *real = realpath(full, NULL);
        size_t rl = strlen(root);
        struct stat st;
        if (real && (strncmp(real, root, rl) == 0 && (real[rl] == '/' || real[rl] == 0)) &&
            stat(real, &st) == 0)
            is_file = S_ISREG(st.st_mode);
        Node__LightService__ProtoPath init = NODE__LIGHT_SERVICE__PROTO_PATH__INIT;
        items[n] = init;
        items[n].value = xstrdup(de->d_name);
        items[n].is_file = is_file;
        n++;
    }
    closedir(steal_ptr(dh)); /* not held while the answer goes out to a slow reader */
    Node__LightService__ProtoPath **ptrs = xcalloc(n ? n : 1, sizeof(*ptrs));
    for (size_t i = 0; i < n; i++)
        ptrs[i] = &items[i];
    Node__LightService__ListDirResponse resp = NODE__LIGHT_SERVICE__LIST_DIR_RESPONSE__INIT;
    resp.n_paths = n;
    resp.paths = ptrs;
    size_t len = node__light_service__list_dir_response__get_packed_size(&resp);
    buf = xmalloc(len ? len : 1);
    node__light_service__list_dir_response__pack(&resp, buf);
    for (size_t i = 0; i < n; i++)
        free(items[i].value);
    free(items);
    free(ptrs);
    node__light_service__dir_request__free_unpacked(req, NULL);
    if (rpc_call_send(call, buf, len) < 0)
        rpc_call_finish(call, RPC_CANCELLED, "call broken");
    else
        rpc_call_finish(call, RPC_OK, NULL);
    return;
fail:
    node__light_service__dir_request__free_unpacked(req, NULL);
    finish_fail(ls, call, "ListDir", &f);
}

static void exists(struct light_service *ls, rpc_call *call)
{
    cleanup_error mt_error *f = NULL;
    bool value = false;
    cleanup_slot light_slot slot = {0};
    Node__LightService__DirRequest *req = (Node__LightService__DirRequest *)recv_request(
        call, &node__light_service__dir_request__descriptor, &f);
    if (req) {
        dataset_set ds = {0};
        light_datasets_copy(ls, &ds);
        const dataset *d;
        cleanup_free char *sub = NULL;
        if (authorised(ls, req->data_request, &f, &slot) &&
            (d = find_dataset(&ds, req->data_request ? req->data_request->name : "", req->path,
                              &sub, &f))) {
            char *p = resolve_path(d, sub, &f);
            value = p != NULL;
            free(p);
        }
        datasets_release(&ds);
        node__light_service__dir_request__free_unpacked(req, NULL);
    }
    if (mt_error_status(f, 0) == RPC_RESOURCE_EXHAUSTED)
        return finish_fail(ls, call, "Exists", &f); /* not an answer about the path */
    if (!value && f)
        log_debug(light_log(ls), COMP, "Local/Exists -> false: %s: %s", error_id(f),
                  mt_error_msg(f));
    Node__LightService__ExistsResponse resp = NODE__LIGHT_SERVICE__EXISTS_RESPONSE__INIT;
    resp.value = value;
    uint8_t buf[8];
    size_t len = node__light_service__exists_response__pack(&resp, buf);
    if (rpc_call_send(call, buf, len) < 0)
        rpc_call_finish(call, RPC_CANCELLED, "call broken");
    else
        rpc_call_finish(call, RPC_OK, NULL);
}

/* ---- ReadFileLines ------------------------------------------------------------------------- */

enum nl_mode { NL_UNIVERSAL, NL_LF, NL_CR, NL_CRLF };
enum err_mode { ERR_STRICT, ERR_IGNORE, ERR_REPLACE };

/* Python codec name -> iconv name (owned), NULL if unusable. */
static char *iconv_name(const char *enc)
{
    if (!enc || !*enc)
        return xstrdup("UTF-8");
    size_t n = strlen(enc);
    if (n > 64)
        return NULL;
    char up[80];
    for (size_t i = 0; i <= n; i++)
        up[i] = enc[i] == '_' ? '-' : (char)toupper((unsigned char)enc[i]);
    static const struct {
        const char *py, *ic;
    } alias[] = {
        {"UTF8", "UTF-8"},          {"U8", "UTF-8"},           {"LATIN-1", "ISO-8859-1"},
        {"LATIN1", "ISO-8859-1"},   {"L1", "ISO-8859-1"},      {"ISO8859-1", "ISO-8859-1"},
        {"8859", "ISO-8859-1"},     {"CP819", "ISO-8859-1"},   {"US-ASCII", "ASCII"},
        {"WINDOWS-1252", "CP1252"}, {"UTF-16", "UTF-16"},      {"UTF16", "UTF-16"},
        {"UTF-32", "UTF-32"},       {"UTF-16-LE", "UTF-16LE"}, {"UTF-16-BE", "UTF-16BE"},
    };
    for (size_t i = 0; i < ARRAY_LEN(alias); i++)
        if (strcmp(up, alias[i].py) == 0)
            return xstrdup(alias[i].ic);
    if (strchr(up, '/'))
        return NULL; /* no iconv suffixes (//IGNORE, //TRANSLIT) */
    return xstrdup(up);
}

/* State of one ReadFileLines stream. */
typedef struct line_stream {
    rpc_call *call;
    enum nl_mode nl;
    uint8_t *line; /* pending line (UTF-8) */
    size_t len, cap;
    bool pending_cr; /* universal mode: line ends in \r, waiting to see if \n follows */
    bool broken;
    size_t sent;
} line_stream;

static int flush_line(line_stream *s, size_t n)
{
    if (n == 0)
        return 0;
    if (send_binary(s->call, s->line, n) < 0) {
        s->broken = true;
        return -1;
    }
    s->sent++;
    memmove(s->line, s->line + n, s->len - n);
    s->len -= n;
    return 0;
}

static void line_append(line_stream *s, uint8_t c)
{
    if (s->len == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4096;
        s->line = xrealloc(s->line, s->cap);
    }
    s->line[s->len++] = c;
}

/* Feed decoded UTF-8 bytes; emits complete lines. */
static int line_feed(line_stream *s, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (s->pending_cr) {
            s->pending_cr = false;
            if (c == '\n') {
                line_append(s, c);
                if (flush_line(s, s->len) < 0)
                    return -1;
                continue;
            }
            if (flush_line(s, s->len) < 0)
                return -1;
        }
        line_append(s, c);
        bool end = false;
        switch (s->nl) {
        case NL_UNIVERSAL:
            if (c == '\r')
                s->pending_cr = true;
            else
                end = c == '\n';
            break;
        case NL_LF:
            end = c == '\n';
            break;
        case NL_CR:
            end = c == '\r';
            break;
        case NL_CRLF:
            end = c == '\n' && s->len >= 2 && s->line[s->len - 2] == '\r';
            break;
        }
        if (end && flush_line(s, s->len) < 0)
            return -1;
        if (s->len >= MAX_LINE_MESSAGE && !s->pending_cr) {
            /* Bound memory: send a very long line in pieces, at a character boundary. */
            size_t cut = s->len;
            while (cut > 0 && (s->line[cut - 1] & 0xC0) == 0x80)
                cut--;
            if (cut > 0 && s->line[cut - 1] >= 0xC0)
                cut--;
            if (s->nl == NL_CRLF && cut > 0 && s->line[cut - 1] == '\r')
                cut--;
            if (flush_line(s, cut) < 0)
                return -1;
        }
    }
    return 0;
}

static void read_file_lines(struct light_service *ls, rpc_call *call)
{
    cleanup_error mt_error *f = NULL;
    Node__LightService__ReadText *req = (Node__LightService__ReadText *)recv_request(
        call, &node__light_service__read_text__descriptor, &f);
    if (!req)
        return finish_fail(ls, call, "ReadFileLines", &f);
    __attribute__((cleanup(datasets_cleanup))) dataset_set ds = {0};
    light_datasets_copy(ls, &ds);
    const dataset *d = NULL;
    cleanup_free char *file = NULL;
    cleanup_free char *icname = NULL;
    cleanup_close int fd = -1;
    iconv_t cd = (iconv_t)-1;
    cleanup_free char *in = NULL; /* declared before any goto (cleanup) */
    cleanup_free char *out = NULL;
    enum nl_mode nl;
    enum err_mode em;
    cleanup_free char *sub = NULL;
    cleanup_slot light_slot slot = {0};

    if (!authorised(ls, req->data_request, &f, &slot) ||
        !(d = find_dataset(&ds, req->data_request ? req->data_request->name : "",
                           req->path ? req->path->value : "", &sub, &f)))
        goto fail;
    const char *nls = req->newline ? req->newline : "";
    if (!*nls)
        nl = NL_UNIVERSAL;
    else if (strcmp(nls, "\n") == 0)
        nl = NL_LF;
    else if (strcmp(nls, "\r") == 0)
        nl = NL_CR;
    else if (strcmp(nls, "\r\n") == 0)
        nl = NL_CRLF;
    else {
        fail_set(&f, RPC_INVALID_ARGUMENT, MT_ERR_INVALID, "illegal newline value");
        goto fail;
    }
    const char *es = req->errors ? req->errors : "";
    if (!*es || strcmp(es, "strict") == 0)
        em = ERR_STRICT;
    else if (strcmp(es, "ignore") == 0)
        em = ERR_IGNORE;
    else if (strcmp(es, "replace") == 0)
        em = ERR_REPLACE;
    else {
        fail_set(&f, RPC_INVALID_ARGUMENT, MT_ERR_INVALID, "unknown error handler name '%s'", es);
        goto fail;
    }
    icname = iconv_name(req->encoding);
    if (!icname || (cd = iconv_open("UTF-8", icname)) == (iconv_t)-1) {
        fail_set(&f, RPC_INVALID_ARGUMENT, MT_ERR_INVALID, "unknown encoding: %s", req->encoding);
        goto fail;
    }
    if (!(file = resolve_path(d, sub, &f)))
        goto fail;
    /* realpath resolved every link: one that appears now is a swap, refused (O_NOFOLLOW). */
    struct stat st;
    if ((fd = open_dataset_file(file, O_NOFOLLOW, &st, &f)) < 0) {
        const char *v = req->path && req->path->value && *req->path->value ? req->path->value
                                                                           : "(dataset root)";
        if (S_ISDIR(st.st_mode))
            fail_set(&f, RPC_FAILED_PRECONDITION, MT_ERR_RESOURCE,
                     "Not a file: %s is a directory; ReadFileLines reads regular files only", v);
        else
            mt_error_wrap(&f, "%s", v);
        goto fail;
    }
    node__light_service__read_text__free_unpacked(req, NULL);
    req = NULL;

    line_stream s = {.call = call, .nl = nl};
    in = xmalloc(TEXT_READ_CHUNK * 2);
    out = xmalloc(TEXT_OUT_CHUNK);
    size_t inlen = 0;
    bool eof = false;
    /* from here a refusal in f ends the stream after what was sent */
    while (!eof || inlen > 0) {
        if (!eof) {
            ssize_t r = read(fd, in + inlen, TEXT_READ_CHUNK);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                fail_set(&f, RPC_INTERNAL, MT_ERR_IO, "Reading file failed: %s", strerror(errno));
                break;
            }
            if (r == 0)
                eof = true;
            inlen += (size_t)r;
        }
        char *ip = in;
        size_t il = inlen;
        bool progress = true;
        while (il > 0 && progress && !f) {
            char *op = out;
            size_t ol = TEXT_OUT_CHUNK;
            size_t rc = iconv(cd, &ip, &il, &op, &ol);
            int e = rc == (size_t)-1 ? errno : 0;
            if (line_feed(&s, (uint8_t *)out, (size_t)(op - out)) < 0)
                break;
            if (e == 0 || e == E2BIG)
                continue;
            if (e == EINVAL && !eof) {
                progress = false; /* incomplete sequence: read more */
                continue;
            }
            /* EILSEQ, or an incomplete sequence at the end of the file. */
            if (em == ERR_STRICT) {
                fail_set(&f, RPC_INVALID_ARGUMENT, MT_ERR_INVALID,
                         "'%s' codec can't decode byte 0x%02x", icname, (unsigned char)*ip);
                break;
            }
            if (em == ERR_REPLACE && line_feed(&s, (const uint8_t *)"\xEF\xBF\xBD", 3) < 0)
                break;
            ip++;
            il--;
        }
        if (s.broken || f)
            break;
        memmove(in, ip, il);
        inlen = il;
    }
    iconv_close(cd);
    if (!s.broken && !f) {
        /* The last line (without terminator). An empty file sends no message: the client
         * retries an empty stream, then reads it as no lines, which is right. */
        s.pending_cr = false;
        flush_line(&s, s.len);
    }
    free(s.line);
    if (s.broken)
        rpc_call_finish(call, RPC_CANCELLED, "call broken");
    else if (f)
        light_fail(call, mt_error_status(f, RPC_INTERNAL), error_id(f), "%s", mt_error_msg(f));
    else
        rpc_call_finish(call, RPC_OK, NULL);
    return;
fail:
    if (cd != (iconv_t)-1)
        iconv_close(cd);
    if (req)
        node__light_service__read_text__free_unpacked(req, NULL);
    finish_fail(ls, call, "ReadFileLines", &f);
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static const struct {
    const char *name;
    void (*fn)(struct light_service *ls, rpc_call *call);
} local_methods[] = {
    {"GetBinaryData", get_binary_data},
    {"ListDir", list_dir},
    {"ReadFileLines", read_file_lines},
    {"Exists", exists},
};

void light_local_handle(struct light_service *ls, rpc_call *call, const char *method)
{
    for (size_t i = 0; i < ARRAY_LEN(local_methods); i++)
        if (strcmp(method, local_methods[i].name) == 0) {
            local_methods[i].fn(ls, call);
            return;
        }
    rpc_call_finish(call, RPC_UNIMPLEMENTED, "unknown method");
}
