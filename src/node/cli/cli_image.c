/* cli_image.c - `manta_node image import|list|rm`: the local image store of the runc runtime.
 *
 * The store is the configuration's containers.image_store (--config NAME, default 'default'; a
 * missing 'default' configuration means the default store ~/.manta/images), or --store DIR.
 * Removing an image a created or running task uses (its rootfs is the lower layer of an
 * overlay mount) is refused; so is replacing it with import --force.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "node_config.h"
#include "fsutil.h"
#include "images.h"
#include "json.h"
#include "mem.h"
#include "paths.h"

static const char image_help[] =
    "Usage: manta_node image <action> [options]\n"
    "\n"
    "Manage the local image store of the runc runtime (containers.image_store, default\n"
    "~/.manta/images). Tasks run by the runc runtime start from an image of this store;\n"
    "nothing is pulled from a registry. A name without a tag means NAME:latest.\n"
    "\n"
    "Actions:\n"
    "  import NAME DIR|TARBALL  Add an image from a root file system folder (or an OCI bundle\n"
    "                           folder) or a tar archive of one (.tar, .tar.gz, .tar.xz, ...,\n"
    "                           e.g. from `docker export`)\n"
    "  list                     List the images: NAME, SIZE, CREATED\n"
    "  rm NAME...               Remove images (refused while a task uses one)\n"
    "\n"
    "Options:\n"
    "  -c, --config NAME  Use the image store of this configuration (default: 'default';\n"
    "                     when 'default' does not exist, ~/.manta/images)\n"
    "      --store DIR    Use this image store folder\n"
    "  -f, --force        import: replace an image of the same name\n"
    "      --json         list: print JSON\n"
    "  -h, --help         Show this help\n"
    "\n"
    "Examples:\n"
    "  manta_node image import manta-task:bookworm ./rootfs\n"
    "  docker export $(docker create python:3.11-slim) -o py.tar\n"
    "  manta_node image import python:3.11-slim py.tar\n"
    "  manta_node image list\n"
    "  manta_node image rm python:3.11-slim\n";

struct image_opts {
    const char *config;
    const char *store;
    bool force, json, help;
    int nargs;
    char **args;
};

/* Parse the options common to every action; positional arguments are left in o->args. */
static int parse_opts(const char *cmd, int argc, char **argv, struct image_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"store", required_argument, NULL, 's'},
        {"force", no_argument, NULL, 'f'},        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "+:c:fh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config = optarg;
            break;
        case 's':
            o->store = optarg;
            break;
        case 'f':
            o->force = true;
            break;
        case 'j':
            o->json = true;
            break;
        case 'h':
            o->help = true;
            break;
        case ':':
            return cli_usage(cmd, "Option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_usage(cmd, "Unknown option '%s'", argv[optind - 1]);
        }
    }
    o->nargs = argc - optind;
    o->args = argv + optind;
    if (o->config && o->store)
        return cli_usage(cmd, "Use either --config or --store, not both");
    return 0;
}

/* The image store folder (owned), or NULL after printing why. */
static char *resolve_store(const struct image_opts *o)
{
    if (o->store)
        return fs_expand_tilde(o->store);
    const char *name = o->config ? o->config : "default";
    cleanup_free char *path = paths_config_file(name);
    node_config cfg;
    if (!fs_exists(path)) {
        if (o->config) { /* asked for by name: say so */
            cli_config_not_found(name);
            return NULL;
        }
        config_init_defaults(&cfg);
        char *store = xstrdup(cfg.containers.image_store);
        config_free(&cfg);
        return store;
    }
    mt_error *e = NULL;
    if (config_load_file(&cfg, path, CFG_LOAD_LENIENT_ENV, &e) < 0) {
        cleanup_free char *shown = fs_display_path(path);
        cli_error_e(e, "Cannot load configuration '%s' (%s)", name, shown);
        mt_error_free(&e);
        config_free(&cfg);
        return NULL;
    }
    char *store = xstrdup(cfg.containers.image_store);
    config_free(&cfg);
    return store;
}

static void print_size(char *buf, size_t cap, uint64_t bytes)
{
    const char *units[] = {"B", "KB", "MB", "GB", "TB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1000 && u + 1 < ARRAY_LEN(units)) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, cap, "%llu B", (unsigned long long)bytes);
    else
        snprintf(buf, cap, "%.1f %s", v, units[u]);
}

static int image_import(int argc, char **argv)
{
    static const char help[] =
        "Usage: manta_node image import NAME DIR|TARBALL [options]\n"
        "\n"
        "Add image NAME (e.g. manta-task:bookworm; without a tag, NAME:latest) to the image\n"
        "store from a root file system: a folder (copied with cp -a; for an OCI bundle folder,\n"
        "its rootfs/) or a tar archive of one, compressed or not (tar -xf). The image appears\n"
        "only once it is complete.\n"
        "\n"
        "Options:\n"
        "  -c, --config NAME  Use the image store of this configuration (default: 'default')\n"
        "      --store DIR    Use this image store folder\n"
        "  -f, --force        Replace an image of the same name (not while a task uses it)\n"
        "  -h, --help         Show this help\n";
    struct image_opts o;
    int rc = parse_opts("image import", argc, argv, &o);
    if (rc)
        return rc;
    if (o.help) {
        fputs(help, stdout);
        return 0;
    }
    if (o.json)
        return cli_usage("image import", "--json applies to 'image list' only");
    if (o.nargs < 2)
        return cli_usage("image import", "Expected an image NAME and a DIR or TARBALL");
    if (o.nargs > 2)
        return cli_usage("image import", "Too many arguments ('%s')", o.args[2]);
    const char *name = o.args[0], *source = o.args[1];
    if (!images_name_valid(name)) {
        cli_error("Invalid image name '%s'", name);
        fprintf(stderr, "A name starts with a letter or digit and uses letters, digits and "
                        ". _ / : @ - (e.g. manta-task:bookworm).\n");
        return EXIT_USAGE;
    }
    if (!fs_exists(source)) {
        cli_error("The image source %s does not exist", source);
        fprintf(stderr, "Give a root file system folder or a tar archive of one.\n");
        return 1;
    }
    cleanup_free char *store = resolve_store(&o);
    if (!store)
        return 1;
    mt_error *e = NULL;
    image_info img;
    if (images_import(store, name, source, o.force, &img, &e) < 0) {
        cli_error_e(e, "Cannot import image '%s'", name);
        int code = e && e->code == MT_ERR_USAGE ? EXIT_USAGE : 1;
        mt_error_free(&e);
        return code;
    }
    char size[32];
    print_size(size, sizeof(size), img.size);
    cleanup_free char *shown = fs_display_path(store);
    printf("Imported image '%s' (%s) into %s\n", img.name, size, shown);
    image_info_free(&img);
    return 0;
}

static int image_list(int argc, char **argv)
{
    static const char help[] = "Usage: manta_node image list [options]\n"
                               "\n"
                               "List the images of the image store: NAME, SIZE, CREATED (UTC).\n"
                               "\n"
                               "Options:\n"
                               "  -c, --config NAME  Use the image store of this configuration\n"
                               "      --store DIR    Use this image store folder\n"
                               "      --json         Print a JSON array\n"
                               "  -h, --help         Show this help\n";
    struct image_opts o;
    int rc = parse_opts("image list", argc, argv, &o);
    if (rc)
        return rc;
    if (o.help) {
        fputs(help, stdout);
        return 0;
    }
    if (o.force)
        return cli_usage("image list", "--force applies to 'image import' only");
    if (o.nargs > 0)
        return cli_usage("image list", "Too many arguments ('%s')", o.args[0]);
    cleanup_free char *store = resolve_store(&o);
    if (!store)
        return 1;
    image_info *v = NULL;
    size_t n = 0;
    mt_error *e = NULL;
    if (images_list(store, &v, &n, &e) < 0) {
        cli_error_e(e, "Cannot list images");
        mt_error_free(&e);
        return 1;
    }
    if (o.json) {
        cleanup_json json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr,
                                  json_pack("{s:s, s:I, s:s, s:s, s:s}", "name", v[i].name, "size",
                                            (json_int_t)v[i].size, "created", v[i].created,
                                            "source", v[i].source, "path", v[i].path));
        cleanup_free char *text = json_dumps(arr, JSON_INDENT(2));
        printf("%s\n", text);
        images_list_free(v, n);
        return 0;
    }
    if (n == 0) {
        cleanup_free char *shown = fs_display_path(store);
        printf("No images in %s.\nImport one with: manta_node image import NAME DIR|TARBALL\n",
               shown);
        images_list_free(v, n);
        return 0;
    }
    int w = 4;
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(v[i].name) > w)
            w = (int)strlen(v[i].name);
    printf("%-*s  %10s  %s\n", w, "NAME", "SIZE", "CREATED");
    for (size_t i = 0; i < n; i++) {
        char size[32];
        print_size(size, sizeof(size), v[i].size);
        printf("%-*s  %10s  %s\n", w, v[i].name, size, *v[i].created ? v[i].created : "-");
    }
    images_list_free(v, n);
    return 0;
}

static int image_rm(int argc, char **argv)
{
    static const char help[] =
        "Usage: manta_node image rm NAME... [options]\n"
        "\n"
        "Remove images from the image store. An image a created or running task uses is not\n"
        "removed: stop and remove the task first.\n"
        "\n"
        "Options:\n"
        "  -c, --config NAME  Use the image store of this configuration\n"
        "      --store DIR    Use this image store folder\n"
        "  -h, --help         Show this help\n";
    struct image_opts o;
    int rc = parse_opts("image rm", argc, argv, &o);
    if (rc)
        return rc;
    if (o.help) {
        fputs(help, stdout);
        return 0;
    }
    if (o.force || o.json)
        return cli_usage("image rm", "Unknown option '%s'", o.force ? "--force" : "--json");
    if (o.nargs < 1)
        return cli_usage("image rm", "Expected the NAME of an image to remove");
    for (int i = 0; i < o.nargs; i++)
        if (!images_name_valid(o.args[i]))
            return cli_usage("image rm", "Invalid image name '%s'", o.args[i]);
    cleanup_free char *store = resolve_store(&o);
    if (!store)
        return 1;
    int status = 0;
    for (int i = 0; i < o.nargs; i++) {
        mt_error *e = NULL;
        cleanup_free char *name = images_normalize(o.args[i]);
        if (images_remove(store, o.args[i], &e) < 0) {
            if (e && e->code == MT_ERR_NOTFOUND) {
                cli_error("Image '%s' is not in the image store", name);
                fprintf(stderr, "See the images with: manta_node image list\n");
            } else {
                cli_error_e(e, "Cannot remove image '%s'", name);
            }
            mt_error_free(&e);
            status = 1;
            continue;
        }
        printf("Removed image '%s'\n", name);
    }
    return status;
}

int cli_image(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } actions[] = {
        {"import", image_import}, {"list", image_list}, {"ls", image_list},
        {"rm", image_rm},         {"remove", image_rm},
    };
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(image_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    for (size_t i = 0; i < ARRAY_LEN(actions); i++)
        if (strcmp(argv[1], actions[i].name) == 0)
            return actions[i].run(argc - 1, argv + 1);
    return cli_usage("image", "Unknown action '%s' (import, list, rm)", argv[1]);
}
