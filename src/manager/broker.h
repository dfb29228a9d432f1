/* broker.h - credentials and access rules for the MQTT broker (mosquitto) of a manager and its
 * nodes: `manta_manager broker-config` (docs/broker-acl.md).
 *
 * A broker folder holds the credentials of record, in plain text, mode 0600:
 *   manager.toml        broker_username/broker_password of the manager (a valid manager
 *                       configuration on its own), unless the manager's configuration sets them
 *   nodes/ALIAS.toml    the [mqtt] username/password of one node (its alias is its user name)
 * and what the broker reads, made from them on every run (mode 0600, tmp + fsync + rename):
 *   passwd              mosquitto's password_file (PBKDF2-SHA512, the `$7$` format)
 *   acl                 mosquitto's acl_file: the manager publishes commands and reads
 *                       manager/+; a node reads only its own command topics
 *                       (manta/nodes/<its id>/+), publishes only to manager/+ and its own
 *                       session marker
 *   mosquitto.conf      allow_anonymous false, password_file, acl_file,
 *                       use_username_as_clientid true
 * Credentials already in the folder are kept: running it again with more nodes adds them; a
 * node's file deleted is a node removed (or, given again, a new password). */
#ifndef MANTA_MGR_BROKER_H
#define MANTA_MGR_BROKER_H

#include <stdio.h>

#include "err.h"
#include "mgr_config.h"

/* The manager's broker user name when its configuration names none. */
#define BROKER_MANAGER_USER "manta-manager"

/* A node alias usable as a broker user name and a file name: 1 to 127 bytes of letters,
 * digits, '.', '_' and '-', not starting with '.'. 0, or -1 with *err saying why. */
int broker_check_alias(const char *alias, mt_error **err);

/* Write the broker folder dir (made 0700 if missing) for the manager of cfg and the nodes
 * already in it plus aliases (n of them; duplicates are fine). store_path (may be NULL): the
 * manager's store, read (when it exists) for node ids bound to an alias's token besides the id
 * of the alias itself (docs/manager-security.md). Says what it did, and what the manager and
 * the nodes need, on out. */
int broker_config_write(const mgr_config *cfg, const char *dir, const char *const *aliases,
                        size_t n, const char *store_path, FILE *out, mt_error **err);

/* The `$7$` (PBKDF2-SHA512) password_file hash of password with a random salt, as
 * mosquitto_passwd writes it. Owned, or NULL with *err. */
char *broker_password_hash(const char *password, mt_error **err);

#endif
