/* broker.c - mosquitto credentials and ACL for a manager and its nodes; see broker.h.
 *
 * Topics (mgr.h, node_service.c, src/node/agent.c): the manager publishes each command for a
 * node on MGR_TOPIC_PREFIX "<node id>/<command>" and subscribes to manager/+; a node subscribes
 * to MGR_TOPIC_PREFIX "<its id>/+" (the filter the manager gives it at registration), publishes
 * its status, summaries and task updates on manager/<what> (and its last will on
 * manager/set_node_status), and once per run a session marker on its own
 * MGR_TOPIC_PREFIX "<its id>/node_session_marker" (agent.c: the marker tells commands queued
 * before this run from new ones). So the rules below give a node exactly those, and nothing
 * of another node's.
 *
 * A node's user name is its alias, and its ids are the id of that alias (node_id_from_alias,
 * what manta_node derives) plus any id the store has bound to a token of that alias (a node
 * whose id does not come from its alias, once it registered). `use_username_as_clientid`
 * keeps a client with valid credentials from taking over another's session by using its
 * client id. */
#include "broker.h"

#include <dirent.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "id.h"
#include "jwt.h"
#include "mem.h"
#include "mgr.h"
#include "store.h"
#include "strbuf.h"
#include "toml.h"

#define ALIAS_MAX     127
#define SALT_LEN      12  /* what mosquitto_passwd uses */
#define HASH_LEN      64  /* SHA-512 */
#define HASH_ROUNDS   101 /* mosquitto_passwd's default; the passwords are random 192 bits */
#define PASSWORD_RAND 24  /* bytes: 32 characters of base64url */
#define MARKER_CMD    "node_session_marker" /* AGENT_MARKER_COMMAND of src/node/agent.h */

typedef struct bnode {
    char *alias;
    char *password;
    bool fresh;  /* minted by this run */
    char **xids; /* NULL-terminated */
} bnode;

typedef struct bset {
    bnode *v;
    size_t n;
} bset;

static void bset_clear(bset *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].alias);
        if (s->v[i].password)
            explicit_bzero(s->v[i].password, strlen(s->v[i].password));
        free(s->v[i].password);
        mem_free_strv(&s->v[i].xids);
    }
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

static bnode *bset_find(bset *s, const char *alias)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i].alias, alias))
            return &s->v[i];
    return NULL;
}

static bnode *bset_add(bset *s, const char *alias)
{
    s->v = xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
    bnode *b = &s->v[s->n++];
    *b = (bnode){.alias = xstrdup(alias)};
    return b;
}

static int by_alias(const void *a, const void *b)
{
    return strcmp(((const bnode *)a)->alias, ((const bnode *)b)->alias);
}

static void add_xid(bnode *b, const char *xid)
{
    size_t k = 0;
    for (; b->xids && b->xids[k]; k++)
        if (!strcmp(b->xids[k], xid))
            return;
    b->xids = xrealloc(b->xids, (k + 2) * sizeof(char *));
    b->xids[k] = xstrdup(xid);
    b->xids[k + 1] = NULL;
}

int broker_check_alias(const char *alias, mt_error **err)
{
    size_t len = alias ? strlen(alias) : 0;
    bool ok =
        len > 0 && len <= ALIAS_MAX && alias[0] != '.' &&
        strspn(alias, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
    if (!ok)
        return mt_error_set(err, MT_ERR_USAGE,
                            "The node alias '%.*s' cannot be a broker user name: use 1 to %d "
                            "letters, digits, '.', '_' and '-', not starting with '.' (a node's "
                            "alias is its user name on the broker).",
                            (int)(len > 160 ? 160 : len), alias ? alias : "", ALIAS_MAX);
    return 0;
}

/* A user name from the manager's configuration: it goes into the password file (no ':') and
 * an ACL line (no line end, no surrounding blanks). */
static int check_username(const char *u, mt_error **err)
{
    size_t len = strlen(u);
    bool ok = len > 0 && !strchr(u, ':') && u[0] != ' ' && u[0] != '\t' && u[len - 1] != ' ' &&
              u[len - 1] != '\t' && u[0] != '#';
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)u[i] >= 0x20 && u[i] != 0x7f;
    if (!ok)
        return mt_error_set(err, MT_ERR_CONFIG,
                            "The manager's broker_username '%s' cannot be a mosquitto user name "
                            "(no ':', no control characters, no blanks around it, not starting "
                            "with '#'): choose another one.",
                            u);
    return 0;
}

static int random_bytes(void *buf, size_t n, mt_error **err)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom((char *)buf + got, n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return mt_error_sys(err, errno, "Could not draw random bytes for broker credentials");
        got += (size_t)r;
    }
    return 0;
}

static char *new_password(mt_error **err)
{
    unsigned char raw[PASSWORD_RAND];
    if (random_bytes(raw, sizeof(raw), err) < 0)
        return NULL;
    char *p = base64url_encode(raw, sizeof(raw));
    explicit_bzero(raw, sizeof(raw));
    return p;
}

char *broker_password_hash(const char *password, mt_error **err)
{
    unsigned char salt[SALT_LEN], hash[HASH_LEN];
    if (random_bytes(salt, sizeof(salt), err) < 0)
        return NULL;
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, SALT_LEN, HASH_ROUNDS,
                          EVP_sha512(), HASH_LEN, hash) != 1)
        return mt_error_set(err, MT_ERR_IO, "A broker password could not be hashed (libcrypto)."),
               NULL;
    /* standard base64 with padding, no line ends: 4 * ceil(n / 3) characters + NUL */
    char s64[4 * ((SALT_LEN + 2) / 3) + 1], h64[4 * ((HASH_LEN + 2) / 3) + 1];
    EVP_EncodeBlock((unsigned char *)s64, salt, SALT_LEN);
    EVP_EncodeBlock((unsigned char *)h64, hash, HASH_LEN);
    return xasprintf("$7$%d$%s$%s", HASH_ROUNDS, s64, h64);
}

/* A TOML string literal of s (quoted, escaped). Owned. */
static char *toml_str(const char *s)
{
    toml_value *v = toml_new_string(s);
    char *t = toml_format_value(v);
    toml_free(v);
    return t;
}

static int write_text(const char *dir, const char *name, const char *text, mt_error **err)
{
    cleanup_free char *path = fs_join(dir, name);
    if (fs_write_atomic(path, text, strlen(text), 0600, err) < 0)
        return mt_error_wrap(err, "The broker file %s could not be written", path);
    return 0;
}

/* A string key of a table, or NULL. */
static const char *str_of(const toml_value *tab, const char *key)
{
    const toml_value *v = tab ? toml_table_get(tab, key) : NULL;
    return v && v->type == TOML_STRING && v->u.s.len == strlen(v->u.s.ptr) ? v->u.s.ptr : NULL;
}

/* The node files already in dir/nodes: alias = file name without .toml = [mqtt] username. */
static int read_nodes(const char *nodes_dir, bset *s, mt_error **err)
{
    cleanup_dir DIR *d = opendir(nodes_dir);
    if (!d)
        return errno == ENOENT
                   ? 0
                   : mt_error_sys(err, errno, "The folder %s could not be read", nodes_dir);
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len <= 5 || strcmp(e->d_name + len - 5, ".toml") != 0 || e->d_name[0] == '.')
            continue;
        cleanup_free char *alias = xstrndup(e->d_name, len - 5);
        cleanup_free char *path = fs_join(nodes_dir, e->d_name);
        toml_value *root = toml_parse_file(path, TOML_1_1, err);
        if (!root) {
            rc = mt_error_wrap(err,
                               "The node credentials %s could not be read (delete the file "
                               "to give the node new ones)",
                               path);
            break;
        }
        const toml_value *mqtt = toml_table_get(root, "mqtt");
        const char *user = str_of(mqtt, "username"), *pw = str_of(mqtt, "password");
        if (broker_check_alias(alias, NULL) < 0 || !user || !pw || !*pw || strcmp(user, alias))
            rc = mt_error_set(err, MT_ERR_CONFIG,
                              "The node credentials %s do not hold an [mqtt] username equal to "
                              "the file's name and a password: delete the file to give the node "
                              "new ones.",
                              path);
        else if (!bset_find(s, alias))
            bset_add(s, alias)->password = xstrdup(pw);
        toml_free(root);
    }
    return rc;
}

/* The manager's credentials: its configuration's, else dir/manager.toml's, else new ones
 * (written there). *from says which. */
static int manager_creds(const mgr_config *cfg, const char *dir, char **user, char **pw,
                         const char **from, mt_error **err)
{
    if (*cfg->broker_username) {
        if (!*cfg->broker_password)
            return mt_error_set(err, MT_ERR_CONFIG,
                                "The manager's configuration sets broker_username but no "
                                "broker_password: set both, or neither and broker-config makes "
                                "them.");
        if (check_username(cfg->broker_username, err) < 0)
            return -1;
        *user = xstrdup(cfg->broker_username);
        *pw = xstrdup(cfg->broker_password);
        *from = "config";
        return 0;
    }
    cleanup_free char *path = fs_join(dir, "manager.toml");
    if (fs_exists(path)) {
        mgr_config mine;
        if (mgr_config_load(&mine, path, err) < 0)
            return mt_error_wrap(err, "The manager's broker credentials could not be read "
                                      "(delete the file to make new ones)");
        int rc = 0;
        if (!*mine.broker_username || !*mine.broker_password)
            rc = mt_error_set(err, MT_ERR_CONFIG,
                              "%s does not set both broker_username and broker_password: delete "
                              "it to make new ones.",
                              path);
        else if (check_username(mine.broker_username, err) == 0) {
            *user = xstrdup(mine.broker_username);
            *pw = xstrdup(mine.broker_password);
            *from = "file";
        } else
            rc = -1;
        mgr_config_clear(&mine);
        return rc;
    }
    cleanup_free char *fresh = new_password(err);
    if (!fresh)
        return -1;
    cleanup_free char *q = toml_str(fresh);
    cleanup_free char *text = xasprintf(
        "# The manager's broker credentials, made by `manta_manager broker-config`.\n"
        "# Put both keys into the manager's configuration, or run the manager with -c FILE.\n"
        "broker_username = \"%s\"\nbroker_password = %s\n",
        BROKER_MANAGER_USER, q);
    explicit_bzero(q, strlen(q));
    int rc = write_text(dir, "manager.toml", text, err);
    explicit_bzero(text, strlen(text));
    if (rc < 0)
        return -1;
    *user = xstrdup(BROKER_MANAGER_USER);
    *pw = steal_ptr(fresh);
    *from = "new";
    return 0;
}

/* Each node's ids: its alias's, and those the store binds to it. */
static int node_ids(bset *s, const char *store_path, mt_error **err)
{
    for (size_t i = 0; i < s->n; i++) {
        node_id id;
        char x[NODE_XID_MAX + 1];
        if (node_id_from_alias(s->v[i].alias, &id, err) < 0)
            return mt_error_wrap(err, "The node id of alias '%s' could not be derived",
                                 s->v[i].alias);
        node_id_to_xid(id, x);
        add_xid(&s->v[i], x);
    }
    if (!store_path || access(store_path, R_OK) != 0)
        return 0;
    store *st = store_open(store_path, err);
    if (!st)
        return mt_error_wrap(err, "The node ids bound to tokens could not be read");
    store_binding *rows = NULL;
    size_t n = 0;
    int rc = store_binding_list(st, &rows, &n, err);
    store_close(st);
    if (rc < 0)
        return mt_error_wrap(err, "The node ids bound to tokens could not be read");
    for (size_t k = 0; k < n; k++) {
        bnode *b = bset_find(s, rows[k].subject);
        node_id id;
        char x[NODE_XID_MAX + 1];
        if (b && node_id_parse_xid(rows[k].node, &id)) {
            node_id_to_xid(id, x);
            add_xid(b, x);
        }
    }
    store_bindings_free(rows, n);
    return 0;
}

static int write_passwd(const char *dir, const char *muser, const char *mpw, const bset *s,
                        mt_error **err)
{
    strbuf sb = {0};
    int rc = 0;
    for (size_t i = 0; i <= s->n && rc == 0; i++) {
        const char *u = i == 0 ? muser : s->v[i - 1].alias;
        cleanup_free char *h = broker_password_hash(i == 0 ? mpw : s->v[i - 1].password, err);
        if (!h)
            rc = -1;
        else
            sb_printf(&sb, "%s:%s\n", u, h);
    }
    if (rc == 0)
        rc = write_text(dir, "passwd", sb_str(&sb), err);
    free(sb_steal(&sb));
    return rc;
}

static char *acl_text(const char *muser, const bset *s)
{
    strbuf sb = {0};
    sb_puts(&sb, "# mosquitto acl_file made by `manta_manager broker-config`: run it again rather "
                 "than edit.\n"
                 "# Anonymous clients are refused (mosquitto.conf); a user not named here may do "
                 "nothing.\n\n");
    sb_printf(&sb,
              "# The manager: publishes the commands of every node, reads what nodes report.\n"
              "user %s\n"
              "topic write " MGR_TOPIC_PREFIX "+/+\n"
              "topic read manager/+\n",
              muser);
    for (size_t i = 0; i < s->n; i++) {
        const bnode *b = &s->v[i];
        sb_printf(&sb, "\n# Node '%s': its own commands, its reports to the manager.\nuser %s\n",
                  b->alias, b->alias);
        for (size_t k = 0; b->xids && b->xids[k]; k++)
            sb_printf(&sb,
                      "topic read " MGR_TOPIC_PREFIX "%s/+\n"
                      "topic write " MGR_TOPIC_PREFIX "%s/" MARKER_CMD "\n",
                      b->xids[k], b->xids[k]);
        sb_puts(&sb, "topic write manager/+\n");
    }
    return sb_steal(&sb);
}

int broker_config_write(const mgr_config *cfg, const char *dir, const char *const *aliases,
                        size_t n, const char *store_path, FILE *out, mt_error **err)
{
    for (size_t i = 0; i < n; i++)
        if (broker_check_alias(aliases[i], err) < 0)
            return -1;
    if (fs_mkdir_p(dir, 0700, err) < 0)
        return mt_error_wrap(err, "The broker folder %s could not be made", dir);
    cleanup_free char *abs = realpath(dir, NULL);
    if (!abs)
        return mt_error_sys(err, errno, "The broker folder %s could not be resolved", dir);
    cleanup_free char *nodes_dir = fs_join(abs, "nodes");
    if (fs_mkdir_p(nodes_dir, 0700, err) < 0)
        return mt_error_wrap(err, "The folder %s could not be made", nodes_dir);

    cleanup_free char *muser = NULL, *mpw = NULL;
    const char *mfrom = NULL;
    bset s = {0};
    int rc = manager_creds(cfg, abs, &muser, &mpw, &mfrom, err);
    if (rc == 0)
        rc = read_nodes(nodes_dir, &s, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (bset_find(&s, aliases[i]))
            continue;
        char *pw = new_password(err);
        if (!pw) {
            rc = -1;
            break;
        }
        bnode *b = bset_add(&s, aliases[i]);
        b->password = pw;
        b->fresh = true;
    }
    if (rc == 0 && bset_find(&s, muser))
        rc = mt_error_set(err, MT_ERR_USAGE,
                          "A node alias is '%s', the manager's broker user name: give the node "
                          "another alias, or the manager another broker_username.",
                          muser);
    if (rc == 0 && s.n)
        qsort(s.v, s.n, sizeof(*s.v), by_alias);
    if (rc == 0)
        rc = node_ids(&s, store_path, err);
    /* the credentials of record first, then what the broker reads */
    for (size_t i = 0; rc == 0 && i < s.n; i++) {
        if (!s.v[i].fresh)
            continue;
        cleanup_free char *name = xasprintf("%s.toml", s.v[i].alias);
        cleanup_free char *q = toml_str(s.v[i].password);
        cleanup_free char *text =
            xasprintf("# Broker credentials of node '%s', made by `manta_manager broker-config`.\n"
                      "# Put these two keys into the [mqtt] table of the node's configuration.\n"
                      "[mqtt]\nusername = \"%s\"\npassword = %s\n",
                      s.v[i].alias, s.v[i].alias, q);
        explicit_bzero(q, strlen(q));
        rc = write_text(nodes_dir, name, text, err);
        explicit_bzero(text, strlen(text));
    }
    if (rc == 0)
        rc = write_passwd(abs, muser, mpw, &s, err);
    if (rc == 0) {
        cleanup_free char *acl = acl_text(muser, &s);
        rc = write_text(abs, "acl", acl, err);
    }
    if (rc == 0) {
        cleanup_free char *conf = xasprintf(
            "# Made by `manta_manager broker-config`: include it in the broker's configuration\n"
            "# (e.g. copy it to /etc/mosquitto/conf.d/manta.conf) after the listener lines.\n"
            "allow_anonymous false\n"
            "password_file %s/passwd\n"
            "acl_file %s/acl\n"
            "# a client's id is its user name: no client can take over another's session\n"
            "use_username_as_clientid true\n",
            abs, abs);
        rc = write_text(abs, "mosquitto.conf", conf, err);
    }
    if (rc == 0) {
        fprintf(out,
                "Broker files written to %s (mode 0600):\n"
                "  mosquitto.conf  include it in the broker's configuration\n"
                "  passwd          password_file: the manager and %zu node%s\n"
                "  acl             acl_file: commands only from the manager, each node only its "
                "own\n",
                abs, s.n, s.n == 1 ? "" : "s");
        if (!strcmp(mfrom, "config"))
            fprintf(out, "The manager connects as '%s' (broker_username of its configuration).\n",
                    muser);
        else
            fprintf(out,
                    "The manager connects as '%s': put broker_username and broker_password of "
                    "%s/manager.toml into its configuration (or run it with -c %s/manager.toml).\n",
                    muser, abs, abs);
        if (s.n)
            fprintf(out, "Nodes: put the [mqtt] username and password of the node's file into "
                         "its configuration:\n");
        for (size_t i = 0; i < s.n; i++) {
            fprintf(out, "  %-20s %s/%s.toml%s  node id %s", s.v[i].alias, nodes_dir, s.v[i].alias,
                    s.v[i].fresh ? " (new)" : "", s.v[i].xids[0]);
            for (size_t k = 1; s.v[i].xids[k]; k++)
                fprintf(out, ", %s", s.v[i].xids[k]);
            fputc('\n', out);
        }
        fprintf(out, "Then reload the broker: systemctl reload mosquitto, or kill -HUP its "
                     "process.\n");
    }
    if (mpw)
        explicit_bzero(mpw, strlen(mpw));
    bset_clear(&s);
    return rc;
}
