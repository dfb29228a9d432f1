/* main.c - manta_node: dispatch to one file per command. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "light.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"start", cli_start, "Start a node instance"},
    {"stop", cli_stop, "Stop running node instances"},
    {"status", cli_status, "Show status of running nodes"},
    {"logs", cli_logs, "View node logs"},
    {"config", cli_config, "Manage node configurations"},
    {"cluster", cli_cluster, "Manage node clusters"},
    {"image", cli_image, "Manage the runc image store"},
};

static void help(FILE *out)
{
    fprintf(out,
            "manta_node %s - the Manta node agent\n\n"
            "Usage: manta_node <command> [options]\n\nCommands:\n",
            MANTA_VERSION);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-10s %s\n", "help", "Show this help message");
    fprintf(out, "\nExamples:\n"
                 "  manta_node start\n"
                 "  manta_node start production --alias worker-1\n"
                 "  manta_node config init\n"
                 "  manta_node config init <path/to/config.yaml>\n"
                 "  manta_node config list\n"
                 "  manta_node config validate production\n"
                 "\nRun 'manta_node <command> --help' for a command's options.\n");
}

int main(int argc, char **argv)
{
    light_memory_setup(); /* before any thread: malloc's arenas (light.h) */
    /* `manta_node node start` is `manta_node start`, as in the reference. */
    if (argc > 1 && strcmp(argv[1], "node") == 0) {
        argv++;
        argc--;
    }
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        help(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("manta_node %s\n", MANTA_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr,
            "Error: Unknown command '%s'\nUse 'manta_node help' to see available commands.\n",
            argv[1]);
    return 1;
}
