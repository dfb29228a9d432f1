/* node_config_keys.c - THE table of the node's configuration keys and the node's schema.
 * Loading, defaults, validation bounds, `config show`, SIGHUP reload and docs/configuration.md
 * are all driven from here: to add a setting, add a field to struct node_config
 * (node_config.h) and one entry below. A key that can change without a restart carries
 * CFG_RELOAD and its apply step (enum node_apply, applied by reload.c). */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "mem.h"
#include "node_config.h"

#define F(field) offsetof(node_config, field)

static const char *const runtimes[] = {"auto", "docker", "runc", "process", NULL};
static const char *const levels[] = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL", NULL};

static const char *const sections[] = {"identity",   "metadata", "network", "mqtt",
                                       "containers", "datasets", "tasks",   "resources",
                                       "logging",    "security", NULL};

/* clang-format off */
static const cfg_key keys[] = {
    /* [identity] */
    {.section = "identity", .name = "secured_token", .type = CFG_STRING, .offset = F(identity.secured_token),
     .flags = CFG_REQUIRED | CFG_SECRET, .example = "\"${MANTA_NODE_TOKEN}\"",
     .doc = "JWT issued by the manager, sent as `authorization` metadata on every manager call. "
            "Prefer `\"${MANTA_NODE_TOKEN}\"` so the token stays out of the file. Never logged."},
    {.section = "identity", .name = "alias", .type = CFG_STRING, .offset = F(identity.alias),
     .flags = CFG_OPTIONAL,
     .doc = "Node name. Determines the node ID (BLAKE3 of the alias, or the alias itself when it "
            "is a hexadecimal number), the MQTT client id and the log file name. Unset: "
            "`metadata.name`."},
    {.section = "identity", .name = "random_id", .type = CFG_BOOL, .offset = F(identity.random_id),
     .def = "false",
     .doc = "Use a random node ID instead of one derived from the alias (only when no alias is "
            "set)."},

    /* [metadata] */
    {.section = "metadata", .name = "name", .type = CFG_STRING, .offset = F(metadata.name),
     .def = "default",
     .doc = "Display name of the configuration; the default alias."},
    {.section = "metadata", .name = "created_at", .type = CFG_STRING, .offset = F(metadata.created_at),
     .flags = CFG_OPTIONAL, .doc = "When the configuration was created (ISO 8601; informational)."},
    {.section = "metadata", .name = "version", .type = CFG_STRING, .offset = F(metadata.version),
     .def = "1.0.0", .doc = "Version of the configuration (informational)."},
    {.section = "metadata", .name = "description", .type = CFG_STRING,
     .offset = F(metadata.description), .def = "", .doc = "Free text (informational)."},

    /* [network] */
    {.section = "network", .name = "manager_host", .type = CFG_STRING, .offset = F(network.manager_host),
     .def = "localhost", .doc = "Host name or address of the manager's gRPC service."},
    {.section = "network", .name = "manager_port", .type = CFG_INT, .offset = F(network.manager_port),
     .def = "50051", .min = 1, .max = 65535,
     .doc = "Port of the manager's gRPC service. Port 443 turns TLS on, as in the reference node."},
    {.section = "network", .name = "light_service_host", .type = CFG_STRING,
     .offset = F(network.light_service_host), .def = "127.0.0.1",
     .doc = "Address the light service (the gRPC service tasks call) binds to. Tasks use host "
            "networking, so loopback reaches them and nothing else (the reference binds "
            "0.0.0.0)."},
    {.section = "network", .name = "light_service_port", .type = CFG_INT,
     .offset = F(network.light_service_port), .def = "0", .min = 0, .max = 65535,
     .doc = "Port of the light service; 0 binds a free port chosen by the kernel."},
    {.section = "network", .name = "connect_timeout", .type = CFG_INT,
     .offset = F(network.connect_timeout), .def = "10", .min = 1, .max = 3600,
     .doc = "Seconds to wait for the manager when connecting."},
    {.section = "network", .name = "idle_close", .type = CFG_INT, .offset = F(network.idle_close),
     .def = "30", .min = 1, .max = 86400,
     .doc = "Seconds after which an unused connection to the manager is closed, and the light "
            "service stopped while no task is on the node; both come back at the next call or "
            "task. An idle node then runs no gRPC thread, whose timers would wake it every "
            "second."},
    {.section = "network", .name = "rpc_timeout", .type = CFG_INT, .offset = F(network.rpc_timeout),
     .def = "30", .min = 1, .max = 86400,
     .doc = "Deadline in seconds of every unary call to the manager; a stream to the manager "
            "(a task's global or result) fails only when no byte moves for this long."},

    /* [mqtt] */
    {.section = "mqtt", .name = "ping_interval", .type = CFG_INT, .offset = F(mqtt.ping_interval),
     .def = "1", .min = 1, .max = 3600,
     .doc = "Seconds between heartbeats (`SetSystemSummaryRequest` on `manager/set_system_summary`)."},
    {.section = "mqtt", .name = "keepalive", .type = CFG_INT, .offset = F(mqtt.keepalive),
     .def = "30", .min = 5, .max = 3600, .doc = "MQTT keep-alive in seconds."},
    {.section = "mqtt", .name = "reconnect_delay", .type = CFG_FLOAT, .offset = F(mqtt.reconnect_delay),
     .def = "1.0", .min = 0.1, .max = 3600,
     .doc = "First reconnect delay in seconds; doubles (with jitter) after each failure."},
    {.section = "mqtt", .name = "reconnect_max_delay", .type = CFG_FLOAT,
     .offset = F(mqtt.reconnect_max_delay), .def = "60.0", .min = 0.1, .max = 86400,
     .doc = "Upper bound of the reconnect delay in seconds."},
    {.section = "mqtt", .name = "reconnect_attempts", .type = CFG_INT,
     .offset = F(mqtt.reconnect_attempts), .def = "5", .flags = CFG_COMPAT,
     .doc = "Accepted for compatibility; the node reconnects for as long as it runs."},
    {.section = "mqtt", .name = "broker_host", .type = CFG_STRING, .offset = F(mqtt.broker_host),
     .flags = CFG_OPTIONAL,
     .doc = "Override the broker host the manager returns at registration (NAT, containers). "
            "Unset: use the manager's."},
    {.section = "mqtt", .name = "broker_port", .type = CFG_INT, .offset = F(mqtt.broker_port),
     .def = "0", .min = 0, .max = 65535,
     .doc = "Override the broker port the manager returns; 0 uses the manager's."},
    {.section = "mqtt", .name = "topics", .type = CFG_STRLIST, .offset = F(mqtt.topics), .def = "",
     .flags = CFG_COMPAT,
     .doc = "Accepted for compatibility; topics always come from the registration."},
    {.section = "mqtt", .name = "username", .type = CFG_STRING, .offset = F(mqtt.username),
     .flags = CFG_OPTIONAL, .doc = "Broker user name."},
    {.section = "mqtt", .name = "password", .type = CFG_STRING, .offset = F(mqtt.password),
     .flags = CFG_OPTIONAL | CFG_SECRET, .doc = "Broker password (use `\"${VAR}\"`). Never logged."},
    {.section = "mqtt", .name = "use_tls", .type = CFG_TRIBOOL, .offset = F(mqtt.use_tls),
     .def = "auto",
     .doc = "TLS to the broker; `auto` follows `security.use_tls` (mutual TLS with the files of "
            "`security.cert_folder`, as in the reference)."},
    {.section = "mqtt", .name = "ca_file", .type = CFG_PATH, .offset = F(mqtt.ca_file),
     .flags = CFG_OPTIONAL, .doc = "CA certificate for the broker. Unset: `<cert_folder>/ca.crt`."},
    {.section = "mqtt", .name = "cert_file", .type = CFG_PATH, .offset = F(mqtt.cert_file),
     .flags = CFG_OPTIONAL,
     .doc = "Client certificate for the broker. Unset: `<cert_folder>/mqtt.crt` if present."},
    {.section = "mqtt", .name = "key_file", .type = CFG_PATH, .offset = F(mqtt.key_file),
     .flags = CFG_OPTIONAL,
     .doc = "Client key for the broker. Unset: `<cert_folder>/mqtt.key` if present."},

    /* [containers] */
    {.section = "containers", .name = "runtime", .type = CFG_ENUM, .offset = F(containers.runtime),
     .def = "auto", .choices = runtimes,
     .doc = "How tasks run: `docker` (Docker Engine API), `runc` (daemonless OCI), `process` "
            "(no isolation, development only) or `auto` (docker, then runc)."},
    {.section = "containers", .name = "gpu_enabled", .type = CFG_TRIBOOL,
     .offset = F(containers.gpu_enabled), .def = "auto",
     .doc = "Offer GPUs to tasks: `true`, `false`, or `auto` (detect through NVML)."},
    {.section = "containers", .name = "default_memory_limit", .type = CFG_SIZE,
     .offset = F(containers.default_memory_limit), .def = "4G", .min = 4194304, .max = 4.6e18,
     .doc = "Memory limit of each task container (`512M`, `4G`, ...)."},
    {.section = "containers", .name = "default_cpu_limit", .type = CFG_FLOAT,
     .offset = F(containers.default_cpu_limit), .def = "2.0", .min = 0.01, .max = 4096,
     .doc = "CPU limit of each task container, in cores (`\"2.0\"` or `2`)."},
    {.section = "containers", .name = "pids_limit", .type = CFG_INT, .offset = F(containers.pids_limit),
     .def = "1024", .min = 16, .max = 4194304, .doc = "Maximum number of processes in a task."},
    {.section = "containers", .name = "docker_network", .type = CFG_STRING,
     .offset = F(containers.docker_network), .def = "host",
     .doc = "Network mode of task containers. Only `host` is supported (tasks reach the light "
            "service on loopback), as in the reference."},
    {.section = "containers", .name = "docker_socket", .type = CFG_PATH,
     .offset = F(containers.docker_socket), .def = "/var/run/docker.sock",
     .doc = "Unix socket of the Docker Engine API."},
    {.section = "containers", .name = "pull_timeout", .type = CFG_INT,
     .offset = F(containers.pull_timeout), .def = "300", .min = 1, .max = 86400,
     .doc = "Seconds an image pull may take before the task fails; a slow pull delays only its "
            "own task."},
    {.section = "containers", .name = "registry_username", .type = CFG_STRING,
     .offset = F(containers.registry_username), .flags = CFG_OPTIONAL,
     .doc = "User name for pulling images from a private registry."},
    {.section = "containers", .name = "registry_password", .type = CFG_STRING,
     .offset = F(containers.registry_password), .flags = CFG_OPTIONAL | CFG_SECRET,
     .doc = "Password for the registry (use `\"${VAR}\"`). Never logged."},
    {.section = "containers", .name = "image_store", .type = CFG_PATH,
     .offset = F(containers.image_store), .def = "~/.manta/images",
     .doc = "Local image store of the `runc` runtime (`manta_node image import`)."},
    {.section = "containers", .name = "runc_path", .type = CFG_STRING, .offset = F(containers.runc_path),
     .def = "runc", .doc = "The runc binary (a name looked up in PATH, or a path)."},
    {.section = "containers", .name = "log_config", .type = CFG_ANY, .offset = F(containers.log_config),
     .flags = CFG_COMPAT | CFG_OPTIONAL,
     .doc = "Accepted for compatibility (Docker log driver settings); task logs are captured by "
            "the node and capped by `tasks.max_log_size`."},

    /* [datasets] */
    {.section = "datasets", .name = "base_path", .type = CFG_PATH, .offset = F(datasets.base_path),
     .def = "/data/datasets", .doc = "Relative dataset paths in `mappings` are taken from here."},
    {.section = "datasets", .name = "mount_readonly", .type = CFG_BOOL,
     .offset = F(datasets.mount_readonly), .def = "true",
     .doc = "Mount datasets read-only into task containers under `/datasets/<name>`."},
    {.section = "datasets", .name = "mappings", .type = CFG_MAP, .offset = F(datasets.mappings),
     .def = "", .flags = CFG_RELOAD, .apply = NODE_APPLY_DATASETS,
     .doc = "Dataset name → file or folder, e.g. `mappings = { mnist = \"~/data/mnist\" }`. "
            "Served to tasks by the light service and reported to the manager."},
    {.section = "datasets", .name = "cache_metadata", .type = CFG_BOOL,
     .offset = F(datasets.cache_metadata), .def = "true",
     .doc = "Cache dataset overviews between `set_overviews` requests."},

    /* [tasks] */
    {.section = "tasks", .name = "max_concurrent", .type = CFG_INT,
     .offset = F(resources.max_concurrent_tasks), .min = 1, .max = 1024,
     .alias_of = "resources.max_concurrent_tasks",
     .doc = "Reference node's name for `resources.max_concurrent_tasks` (accepted; the "
            "`[resources]` name wins when both are set)."},
    {.section = "tasks", .name = "task_timeout", .type = CFG_INT, .offset = F(tasks.task_timeout),
     .def = "3600", .min = 0, .max = 31536000,
     .doc = "Seconds a task may run before it is killed and reported; 0 = no limit."},
    {.section = "tasks", .name = "stop_timeout", .type = CFG_INT, .offset = F(tasks.stop_timeout),
     .def = "10", .min = 0, .max = 3600,
     .doc = "Seconds a task that is stopped (stop_task, stop_swarm, a timeout, the node's own "
            "stop) gets after SIGTERM before SIGKILL; 0 = SIGKILL at once. Tasks run under an "
            "init that passes SIGTERM on, so a task without a handler ends at once; a task that "
            "handles it has this long to finish. `manta_node stop` waits `--timeout` for the "
            "whole node."},
    {.section = "tasks", .name = "queue_limit", .type = CFG_INT, .offset = F(tasks.queue_limit),
     .def = "64", .min = 0, .max = 100000,
     .doc = "Deploys waiting for a free slot beyond `max_concurrent_tasks`; more are refused "
            "with an error to the manager."},
    {.section = "tasks", .name = "max_log_size", .type = CFG_SIZE, .offset = F(tasks.max_log_size),
     .def = "16M", .min = 4096, .max = 4.6e18,
     .doc = "Cap on the logs kept and uploaded per task (the oldest part is dropped)."},
    {.section = "tasks", .name = "outbox_max_size", .type = CFG_SIZE,
     .offset = F(tasks.outbox_max_size), .def = "1G", .min = 1048576, .max = 4.6e18,
     .doc = "Finished tasks' output and outcomes kept on disk while the manager or the broker "
            "is away, delivered once each when it is back; past this size the oldest are "
            "dropped (with a warning)."},
    {.section = "tasks", .name = "outbox_max_age", .type = CFG_INT,
     .offset = F(tasks.outbox_max_age), .def = "604800", .min = 60, .max = 31536000,
     .doc = "Seconds a finished task's output waits for the manager before it is dropped "
            "(with a warning); default one week."},
    {.section = "tasks", .name = "state_dir", .type = CFG_PATH, .offset = F(tasks.state_dir),
     .def = "~/.manta/state",
     .doc = "Where task state is persisted so tasks survive restarts of the node."},
    {.section = "tasks", .name = "retry_attempts", .type = CFG_INT, .offset = F(tasks.retry_attempts),
     .def = "3", .flags = CFG_COMPAT, .doc = "Accepted for compatibility; not used."},
    {.section = "tasks", .name = "temp_folder", .type = CFG_PATH, .offset = F(tasks.temp_folder),
     .flags = CFG_OPTIONAL,
     .doc = "Where task payloads are written before they are mounted. Unset: inside `state_dir`."},
    {.section = "tasks", .name = "cleanup_on_failure", .type = CFG_BOOL,
     .offset = F(tasks.cleanup_on_failure), .def = "true",
     .doc = "Remove a failed task's container once its logs are uploaded."},
    {.section = "tasks", .name = "stream_logs", .type = CFG_BOOL, .offset = F(tasks.stream_logs),
     .def = "true", .flags = CFG_COMPAT, .doc = "Accepted for compatibility; not used."},

    /* [resources] */
    {.section = "resources", .name = "max_concurrent_tasks", .type = CFG_INT,
     .offset = F(resources.max_concurrent_tasks), .def = "2", .min = 1, .max = 1024,
     .doc = "Tasks that may run at once; further deploys wait in order (first come, first "
            "served)."},
    {.section = "resources", .name = "reserve_cpu_percent", .type = CFG_INT,
     .offset = F(resources.reserve_cpu_percent), .def = "10", .min = 0, .max = 50,
     .bounds_msg = "resources.reserve_cpu_percent should not exceed 50%",
     .doc = "Share of the machine's CPU kept back from tasks (at most 50)."},
    {.section = "resources", .name = "reserve_memory_mb", .type = CFG_INT,
     .offset = F(resources.reserve_memory_mb), .def = "512", .min = 0, .max = 16777216,
     .doc = "Memory in MiB kept back from tasks."},
    {.section = "resources", .name = "max_disk_usage_percent", .type = CFG_INT,
     .offset = F(resources.max_disk_usage_percent), .def = "90", .min = 1, .max = 100,
     .doc = "Refuse new tasks when the state directory's disk is fuller than this."},
    {.section = "resources", .name = "monitor_interval", .type = CFG_INT,
     .offset = F(resources.monitor_interval), .def = "30", .min = 1, .max = 86400,
     .doc = "Seconds between checks of running tasks' resource use."},

    /* [logging] */
    {.section = "logging", .name = "level", .type = CFG_ENUM, .offset = F(logging.level), .def = "INFO",
     .choices = levels, .flags = CFG_RELOAD, .apply = NODE_APPLY_LOG_LEVEL,
     .doc = "`DEBUG`, `INFO`, `WARNING`, `ERROR` or `CRITICAL`."},
    {.section = "logging", .name = "filename", .type = CFG_PATH, .offset = F(logging.filename),
     .flags = CFG_OPTIONAL,
     .doc = "Log file. Unset: `~/.manta/logs/nodes/<alias>.log`; a relative name is placed in "
            "that folder. Opened for appending, never truncated."},
    {.section = "logging", .name = "log_to_file", .type = CFG_BOOL, .offset = F(logging.log_to_file),
     .def = "true", .doc = "Write the log file."},
    {.section = "logging", .name = "log_to_console", .type = CFG_BOOL,
     .offset = F(logging.log_to_console), .def = "false",
     .doc = "Also write log lines to the terminal (foreground mode)."},
    {.section = "logging", .name = "debug_mode", .type = CFG_BOOL, .offset = F(logging.debug_mode),
     .def = "true",
     .doc = "At `DEBUG` level, also log the internals of the gRPC and MQTT libraries."},
    {.section = "logging", .name = "max_file_size", .type = CFG_SIZE,
     .offset = F(logging.max_file_size), .def = "100M", .min = 4096, .max = 4.6e18,
     .doc = "Rotate the log file when it reaches this size."},
    {.section = "logging", .name = "backup_count", .type = CFG_INT, .offset = F(logging.backup_count),
     .def = "5", .min = 0, .max = 1000, .doc = "Rotated log files kept (`<file>.1` ... `<file>.N`)."},

    /* [security] */
    {.section = "security", .name = "use_tls", .type = CFG_BOOL, .offset = F(security.use_tls),
     .def = "false", .doc = "TLS to the manager (also on when `manager_port` is 443)."},
    {.section = "security", .name = "cert_folder", .type = CFG_PATH, .offset = F(security.cert_folder),
     .def = "~/.manta/certs",
     .doc = "Folder of `ca.crt`, `mqtt.crt` and `mqtt.key` (the reference's MQTT TLS files)."},
    {.section = "security", .name = "verify_ssl", .type = CFG_BOOL, .offset = F(security.verify_ssl),
     .def = "true",
     .doc = "Verify the manager's and broker's certificates. Turning it off is refused by "
            "validation unless a CA file is given."},
    {.section = "security", .name = "token_refresh_interval", .type = CFG_INT,
     .offset = F(security.token_refresh_interval), .def = "3600", .flags = CFG_COMPAT,
     .doc = "Accepted for compatibility; not used."},
    {.section = "security", .name = "ca_file", .type = CFG_PATH, .offset = F(security.ca_file),
     .flags = CFG_OPTIONAL,
     .doc = "CA certificate(s) for the manager's TLS. Unset: the system's roots."},
    {.section = "security", .name = "cert_file", .type = CFG_PATH, .offset = F(security.cert_file),
     .flags = CFG_OPTIONAL, .doc = "Client certificate for mutual TLS with the manager."},
    {.section = "security", .name = "key_file", .type = CFG_PATH, .offset = F(security.key_file),
     .flags = CFG_OPTIONAL, .doc = "Client key for mutual TLS with the manager."},
    {.section = "security", .name = "server_name", .type = CFG_STRING, .offset = F(security.server_name),
     .flags = CFG_OPTIONAL,
     .doc = "Name expected in the manager's certificate when it differs from `manager_host`."},
};
/* clang-format on */

static const cfg_schema schema = {
    .program = "manta_node",
    .keys = keys,
    .nkeys = ARRAY_LEN(keys),
    .sections = sections,
    .size = sizeof(node_config),
    .book_offset = offsetof(node_config, book),
    .unknown_hint = "(see 'manta_node config show' or docs/configuration.md for the keys)",
    .reference_head =
        "# Configuration reference\n\n"
        "<!-- Generated by `manta_node config reference` from src/node/common/node_config_keys.c; "
        "do "
        "not edit by hand. -->\n\n"
        "A node configuration is a TOML file `~/.manta/nodes/<name>.toml` (the folder "
        "follows `$MANTA_HOME`, default `~/.manta`). TOML 1.1 is accepted, so inline tables "
        "may span lines.\n\n"
        "* Unknown tables and keys, and values of the wrong type, are errors that name the "
        "file and line (with a suggestion when a name is close to a known one).\n"
        "* A string value that is exactly `\"${VAR}\"` or `\"${VAR:default}\"` is replaced "
        "by the environment variable `VAR` (or the default) when the node loads the file, "
        "and converted to the key's type, so `manager_port = \"${PORT}\"` works. A missing "
        "variable without a default is an error naming the key and the variable. Strings "
        "that merely contain `${...}` are kept as written.\n"
        "* A leading `~` in paths (type `path`, and dataset paths) is the home directory.\n"
        "* Sizes are written `\"512M\"`, `\"4G\"`, `\"100MB\"` or as a number of bytes; "
        "K, M, G and T are powers of 1024.\n"
        "* Keys marked *compat* are accepted so that files written for the reference "
        "node load unchanged; they have no effect.\n"
        "* Keys marked *reload* take effect on `SIGHUP`; every other change needs a "
        "restart.\n\n",
};

const cfg_schema *node_config_schema(void)
{
    return &schema;
}

const cfg_key *config_keys(size_t *count)
{
    *count = ARRAY_LEN(keys);
    return keys;
}

const char *const *config_sections(void)
{
    return sections;
}

int config_key_index(const char *dotted)
{
    return cfg_key_index(&schema, dotted);
}
