"""`manta_node config ...` driven as a user would: flags, a pseudo-terminal, every error path."""
import base64
import json
import os
import stat
import time

import pexpect
import pytest

from conftest import SOURCE_DIR


def make_jwt(exp: int) -> str:
    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'sub': 'n', 'exp': exp})}.c2ln"


GOOD_TOKEN = make_jwt(int(time.time()) + 86400)


def tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


# ---- help and usage -------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["--help"], ["help"], [], ["config", "--help"], ["config", "init", "--help"],
    ["config", "list", "--help"], ["config", "show", "--help"], ["config", "validate", "--help"],
    ["config", "edit", "--help"], ["config", "delete", "--help"], ["config", "reference", "--help"],
])
def test_help_exits_zero(node, args):
    p = node.run(*args)
    assert p.returncode == 0, p.stderr
    assert "Usage" in p.stdout or "Commands" in p.stdout


@pytest.mark.parametrize("args,needle", [
    (["config", "frobnicate"], "Unknown action 'frobnicate'"),
    (["config", "init", "--bogus"], "'--bogus' is unknown"),
    (["config", "init", "--manager-port", "99999"], "--manager-port takes a port"),
    (["config", "show", "a", "b"], "Too many arguments"),
    (["config", "delete"], "Name the configuration to delete"),
    (["config", "list", "--nope"], "Unknown option '--nope'"),
])
def test_usage_errors(node, args, needle):
    p = node.run(*args)
    assert p.returncode == 2
    assert needle in p.stderr
    assert "--help' for usage" in p.stderr


def test_unknown_command(node):
    p = node.run("frobnicate")
    assert p.returncode == 1
    assert "Error: Unknown command 'frobnicate'" in p.stderr
    assert "Use 'manta_node help' to see available commands." in p.stderr


def test_config_without_action_is_usage_error(node):
    p = node.run("config")
    assert p.returncode == 2
    assert "Usage: manta_node config" in p.stderr


# ---- no side effects --------------------------------------------------------------------------

def test_read_only_commands_create_no_files(node):
    for args in (["config", "list"], ["config", "show"], ["config", "validate", "x"],
                 ["config", "edit", "x"], ["config", "delete", "x", "--yes"]):
        node.run(*args)
    assert tree(node.home) == []


def test_list_empty(node):
    p = node.run("config", "list")
    assert p.returncode == 0
    assert "No configurations found." in p.stdout
    assert "manta_node config init" in p.stdout


# ---- init (non-interactive) -------------------------------------------------------------------

def test_init_with_flags(node):
    p = node.run("config", "init", "--non-interactive", "--name", "production", "--alias",
                 "prod-gpu-01", "--manager-host", "manager.example.com", "--manager-port", "50052",
                 "--dataset", "mnist=/tmp", "--max-concurrent-tasks", "3", "--gpu", "no")
    assert p.returncode == 0, p.stderr
    assert "✓ Configuration 'production' created successfully!" in p.stdout
    assert "Saved to: ~/.manta/nodes/production.toml" in p.stdout
    assert "manta_node start production" in p.stdout
    path = node.config_path("production")
    text = path.read_text()
    assert 'secured_token = "${MANTA_NODE_TOKEN}"' in text
    assert 'alias = "prod-gpu-01"' in text
    assert 'manager_host = "manager.example.com"' in text
    assert "manager_port = 50052" in text
    assert "max_concurrent_tasks = 3" in text
    assert "gpu_enabled = false" in text
    assert 'mnist = "/tmp"' in text
    assert 'filename = "~/.manta/logs/nodes/prod-gpu-01.log"' in text
    # tables in the table's order
    order = [text.index(s) for s in ("[identity]", "[metadata]", "[network]", "[containers]",
                                     "[resources]", "[logging]")]
    assert order == sorted(order)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # the token is not in the environment: the file still loads, validation says what is missing
    assert "MANTA_NODE_TOKEN is not set" in p.stdout
    # nothing but the config file was created
    assert tree(node.home) == [".manta", ".manta/nodes", ".manta/nodes/production.toml"]


def test_init_default_alias_is_unique_per_machine_not_default(node):
    p = node.run("config", "init", "-y")
    assert p.returncode == 0, p.stderr
    text = node.config_path("default").read_text()
    alias = [l for l in text.splitlines() if l.startswith("alias = ")][0]
    assert alias != 'alias = "default"'
    assert alias.endswith('"') and "-" in alias
    # stable on the same machine
    node.config_path("default").unlink()
    node.run("config", "init", "-y")
    assert alias in node.config_path("default").read_text()


def test_init_literal_token_is_mode_600_and_validates(node):
    p = node.run("config", "init", "-y", "--name", "lit", "--token", GOOD_TOKEN)
    assert p.returncode == 0, p.stderr
    path = node.config_path("lit")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert GOOD_TOKEN in path.read_text()
    assert GOOD_TOKEN not in p.stdout + p.stderr
    assert "✓ Configuration is valid" in p.stdout


def test_init_token_env(node):
    p = node.run("config", "init", "-y", "--name", "e", "--token-env", "MY_TOKEN")
    assert p.returncode == 0
    assert 'secured_token = "${MY_TOKEN}"' in node.config_path("e").read_text()
    p = node.run("config", "validate", "e", env={"MY_TOKEN": GOOD_TOKEN})
    assert p.returncode == 0, p.stderr
    assert "Configuration 'e' is valid" in p.stdout


def test_init_refuses_overwrite_without_force(node):
    assert node.run("config", "init", "-y").returncode == 0
    before = node.config_path("default").read_text()
    p = node.run("config", "init", "-y", "--alias", "other")
    assert p.returncode == 1
    assert "Error: Configuration 'default' already exists at ~/.manta/nodes/default.toml" in p.stderr
    assert "--force" in p.stderr
    assert node.config_path("default").read_text() == before
    p = node.run("config", "init", "-y", "--alias", "other", "--force")
    assert p.returncode == 0
    assert 'alias = "other"' in node.config_path("default").read_text()


def test_init_bad_name(node):
    p = node.run("config", "init", "-y", "--name", "../evil")
    assert p.returncode == 1
    assert "Invalid configuration name '../evil'" in p.stderr
    assert tree(node.home) == []


# ---- init (import) ----------------------------------------------------------------------------

def test_init_import_yaml(node, tmp_path):
    src = tmp_path / "edge.yaml"
    src.write_text(
        "identity:\n  secured_token: ${MANTA_NODE_TOKEN}\n  alias: edge-sensor-1\n"
        "network:\n  manager_host: mgr.local\n  manager_port: 50051\n"
        "resources:\n  reserve_cpu_percent: 5\n  reserve_memory_mb: 256\n  max_concurrent_tasks: 1\n"
        "datasets:\n  mappings:\n    readings: /tmp\n")
    p = node.run("config", "init", str(src))
    assert p.returncode == 0, p.stderr
    assert "✓ Configuration 'edge' created successfully!" in p.stdout
    text = node.config_path("edge").read_text()
    assert 'secured_token = "${MANTA_NODE_TOKEN}"' in text  # stored verbatim, not expanded
    assert 'alias = "edge-sensor-1"' in text
    assert 'name = "edge"' in text
    assert 'filename = "~/.manta/logs/nodes/edge-sensor-1.log"' in text
    assert "reserve_memory_mb = 256" in text
    assert 'readings = "/tmp"' in text


def test_init_import_toml_keeps_references(node, tmp_path):
    src = tmp_path / "gpu.toml"
    src.write_text('[identity]\nsecured_token = "${MANTA_NODE_TOKEN}"\n'
                   '[network]\nmanager_port = "${PORT:50051}"\n'
                   '[tasks]\nmax_concurrent = 4\n')
    p = node.run("config", "init", str(src), env={"PORT": "1"})
    assert p.returncode == 0, p.stderr
    text = node.config_path("gpu").read_text()
    assert 'manager_port = "${PORT:50051}"' in text
    assert "max_concurrent_tasks = 4" in text  # the preferred name


@pytest.mark.parametrize("fname,content,needle", [
    ("missing.yaml", None, "Error: Configuration file not found: "),
    ("conf.json", "{}", "Error: Unsupported file format: .json"),
    ("bad.yaml", "identity: [unclosed\n", "Error: Invalid YAML format: "),
    ("list.yaml", "- a\n- b\n", "must contain a dictionary/object at the root level"),
    ("bad.toml", "[identity\n", "Error: Failed to parse configuration file: "),
    ("notoken.toml", '[network]\nmanager_host = "x"\n', "Error: Invalid configuration structure"),
    ("typo.yaml", "identity:\n  secured_token: t\nnetwork:\n  manager_hots: x\n",
     "did you mean 'manager_host'?"),
])
def test_init_import_errors(node, tmp_path, fname, content, needle):
    src = tmp_path / fname
    if content is not None:
        src.write_text(content)
    p = node.run("config", "init", str(src))
    assert p.returncode == 1
    assert needle in p.stderr
    assert not node.nodes_dir.exists() or list(node.nodes_dir.iterdir()) == []


def test_init_import_structure_error_names_line(node, tmp_path):
    src = tmp_path / "types.toml"
    src.write_text('[identity]\nsecured_token = "t"\n[network]\nmanager_port = "abc"\n')
    p = node.run("config", "init", str(src))
    assert p.returncode == 1
    assert "types.toml:4: network.manager_port must be an integer" in p.stderr
    assert "Required: identity.secured_token" in p.stderr


# ---- init (interactive, through a pseudo-terminal) --------------------------------------------

def spawn(node, *args, env=None):
    e = dict(node.env)
    if env:
        e.update(env)
    return pexpect.spawn(node.binary, list(args), env=e, cwd=str(node.home), encoding="utf-8",
                         timeout=20)


def test_init_interactive(node, tmp_path):
    data = tmp_path / "mnist"
    data.mkdir()
    child = spawn(node, "config", "init")
    child.expect(r"Configuration name \[default\]: ")
    child.sendline("workstation")
    child.expect(r"Node alias \[[^\]]+\]: ")
    child.sendline("ml-workstation")
    child.expect(r"Manager host \[localhost\]: ")
    child.sendline("")
    child.expect(r"Manager port \[50051\]: ")
    child.sendline("not-a-port")
    child.expect("Please enter a whole number from 1 to 65535")
    child.expect(r"Manager port \[50051\]: ")
    child.sendline("50061")
    child.expect(r"Secured token \(input hidden\): ")
    child.sendline(GOOD_TOKEN)
    child.expect(r"Dataset name: ")
    before_token = child.before
    child.sendline("mnist")
    child.expect(r"Path of 'mnist': ")
    child.sendline(str(data))
    child.expect(r"Dataset name: ")
    child.sendline("")
    child.expect(r"Maximum concurrent tasks \[2\]: ")
    child.sendline("1")
    child.expect(r"Use GPUs for tasks \(auto/yes/no\) \[auto\]: ")
    child.sendline("yes")
    child.expect("created successfully")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert GOOD_TOKEN not in before_token  # not echoed
    text = node.config_path("workstation").read_text()
    assert 'alias = "ml-workstation"' in text
    assert "manager_port = 50061" in text
    assert f'secured_token = "{GOOD_TOKEN}"' in text
    assert f'mnist = "{data}"' in text
    assert "gpu_enabled = true" in text
    assert "max_concurrent_tasks = 1" in text
    assert stat.S_IMODE(node.config_path("workstation").stat().st_mode) == 0o600


def test_init_interactive_empty_token_uses_env_reference(node):
    child = spawn(node, "config", "init")
    for prompt, answer in [(r"Configuration name", ""), (r"Node alias", ""),
                           (r"Manager host", ""), (r"Manager port", ""),
                           (r"Secured token", ""), (r"Dataset name", ""),
                           (r"Maximum concurrent tasks", ""), (r"Use GPUs", "")]:
        child.expect(prompt)
        child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    text = node.config_path("default").read_text()
    assert 'secured_token = "${MANTA_NODE_TOKEN}"' in text
    assert "gpu_enabled" not in text  # auto is the default


def test_init_interactive_overwrite_declined(node):
    assert node.run("config", "init", "-y", "--alias", "keep").returncode == 0
    child = spawn(node, "config", "init")
    child.expect(r"Configuration name")
    child.sendline("default")
    child.expect(r"Overwrite existing configuration\? \[y/N\]: ")
    child.sendline("")
    child.expect("Configuration creation cancelled")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert 'alias = "keep"' in node.config_path("default").read_text()


def test_init_interactive_eof_saves_nothing(node):
    child = spawn(node, "config", "init")
    child.expect(r"Configuration name")
    child.sendeof()
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
    assert not node.config_path("default").exists()


# ---- list / show / validate -------------------------------------------------------------------

def test_list_statuses(node):
    node.write_config("good", f'[identity]\nsecured_token = "{GOOD_TOKEN}"\n')
    node.write_config("placeholder", '[identity]\nsecured_token = "<YOUR_JWT_TOKEN_HERE>"\n')
    node.write_config("broken", '[identity\n')
    p = node.run("config", "list")
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert lines[0] == "Available Node Configurations"
    assert lines[1].split() == ["Name", "Path", "Status"]
    rows = {l.split()[0]: l for l in lines[2:]}
    assert list(rows) == ["broken", "good", "placeholder"]  # sorted
    assert rows["good"].endswith("Valid")
    assert rows["placeholder"].endswith("3 issues")
    assert rows["broken"].endswith("Invalid")
    assert "~/.manta/nodes/good.toml" in rows["good"]


def test_show(node):
    node.write_config("default", '[identity]\nsecured_token = "${MANTA_NODE_TOKEN}"\n'
                      '[network]\nmanager_host = "mgr"\nmanager_port = 50099\n'
                      '[datasets]\nmappings = { mnist = "/tmp" }\n')
    p = node.run("config", "show", env={"MANTA_NODE_TOKEN": GOOD_TOKEN})
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "Configuration: default" in out
    assert "Path: ~/.manta/nodes/default.toml" in out
    # no alias: the alias is metadata.name = "default", whose ID the reference documents
    assert "Node ID: f78761cf8c3621e851097dff9a4b0463" in out
    assert "Manager: mgr:50099" in out
    assert "  mnist: /tmp" in out
    assert GOOD_TOKEN not in out and GOOD_TOKEN.split(".")[1] not in out
    assert "Secured Token: Set (" in out and "from ${MANTA_NODE_TOKEN}" in out
    assert "expires " in out
    assert "manager_port             = 50099  (file, line 5)" in out
    assert "✓ Configuration is valid" in out


def test_show_alias_node_id(node):
    node.write_config("n1", '[identity]\nsecured_token = "a.b.c"\nalias = "node-1"\n')
    p = node.run("config", "show", "n1")
    assert "Node ID: e2bd61640f2008e1cda87a69dd0ec7df" in p.stdout


def test_show_missing_env_token(node):
    node.write_config("default", '[identity]\nsecured_token = "${MANTA_NODE_TOKEN}"\n')
    p = node.run("config", "show")
    assert p.returncode == 0
    assert "Secured Token: Not set (${MANTA_NODE_TOKEN}, but the variable is not set)" in p.stdout
    assert "Validation Issues:" in p.stdout


def test_not_found_block(node):
    node.write_config("default", '[identity]\nsecured_token = "a.b.c"\n')
    node.write_config("production", '[identity]\nsecured_token = "a.b.c"\n')
    for action in ("show", "validate", "edit", "delete"):
        p = node.run("config", action, "gpu-config")
        assert p.returncode == 1
        assert p.stderr.startswith(
            "Error: Configuration 'gpu-config' not found at ~/.manta/nodes/gpu-config.toml\n"
            "Available configurations:\n  - default\n  - production\n\n"
            "Create a new configuration with:\n  manta_node config init\n"), p.stderr


def test_validate(node):
    node.write_config("ok", f'[identity]\nsecured_token = "{GOOD_TOKEN}"\n')
    p = node.run("config", "validate", "ok")
    assert (p.returncode, p.stdout) == (0, "Configuration 'ok' is valid\n")

    expired = make_jwt(1000000000)
    node.write_config("bad", f'[identity]\nsecured_token = "{expired}"\n'
                      '[network]\nmanager_port = 0\n'
                      '[resources]\nreserve_cpu_percent = 51\n'
                      '[datasets]\nmappings = { gone = "/nonexistent/x" }\n')
    p = node.run("config", "validate", "bad")
    assert p.returncode == 1
    lines = p.stderr.splitlines()
    assert lines[0] == "Error: Configuration 'bad' has 4 validation issue(s):"
    assert "  - identity.secured_token expired on 2001-09-09 01:46:40 UTC; get a new token from the manager" in lines
    assert "  - network.manager_port (0) must be between 1 and 65535" in lines
    assert "  - resources.reserve_cpu_percent should not exceed 50%" in lines
    assert "  - Dataset path does not exist: gone -> /nonexistent/x" in lines
    assert expired not in p.stdout + p.stderr


def test_validate_placeholder_token(node):
    node.write_config("p", '[identity]\nsecured_token = ""\n')
    p = node.run("config", "validate", "p")
    assert p.returncode == 1
    assert p.stderr == (
        "Error: Configuration 'p' has 3 validation issue(s):\n"
        "  - identity.secured_token is required (cannot be empty or placeholder)\n"
        "    → Set your JWT token in the configuration file\n"
        "    → Or run: manta_node config init <path/to/config.yaml>\n")


def test_validate_load_errors_have_file_and_line(node):
    node.write_config("t", '[identity]\nsecured_token = "a.b.c"\n[network]\nmanager_prot = 1\n')
    p = node.run("config", "validate", "t")
    assert p.returncode == 1
    assert ("Error: Failed to load configuration 't': ~/.manta/nodes/t.toml:4: unknown key "
            "'manager_prot' in [network]; did you mean 'manager_port'?") in p.stderr


def test_seed_example_loads(node):
    # The operator guide's example, verbatim.
    node.write_config("default", """# Example configuration
[identity]
secured_token = "${MANTA_NODE_TOKEN}"
alias = "gpu-worker-1"

[network]
manager_host = "localhost"
manager_port = 50051

[resources]
max_concurrent_tasks = 2

[datasets]
mappings = {
  "training_data" = "/tmp"
}
""")
    p = node.run("config", "validate", env={"MANTA_NODE_TOKEN": GOOD_TOKEN})
    assert p.returncode == 0, p.stderr


# ---- edit / delete ----------------------------------------------------------------------------

def test_edit(node, tmp_path):
    node.write_config("default", f'[identity]\nsecured_token = "{GOOD_TOKEN}"\n')
    editor = tmp_path / "ed.sh"
    editor.write_text('#!/bin/sh\nprintf \'[network]\\nmanager_port = 50070\\n\' >> "$1"\n')
    editor.chmod(0o755)
    p = node.run("config", "edit", env={"EDITOR": str(editor)})
    assert p.returncode == 0, p.stderr
    assert f"Opening ~/.manta/nodes/default.toml in {editor}..." in p.stdout
    assert "Configuration 'default' edited successfully" in p.stdout
    assert "manager_port = 50070" in node.config_path("default").read_text()

    # an edit that breaks the file is reported
    editor.write_text('#!/bin/sh\necho "[[oops" >> "$1"\n')
    p = node.run("config", "edit", env={"EDITOR": str(editor)})
    assert p.returncode == 1
    assert "does not load" in p.stderr

    editor.write_text("#!/bin/sh\nexit 3\n")
    p = node.run("config", "edit", env={"EDITOR": str(editor)})
    assert p.returncode == 1
    assert "Error: Editor exited with error code 3" in p.stderr


def test_edit_visual_and_editor_with_arguments(node, tmp_path):
    node.write_config("default", f'[identity]\nsecured_token = "{GOOD_TOKEN}"\n')
    editor = tmp_path / "ed2.sh"
    editor.write_text('#!/bin/sh\n[ "$1" = "--wait" ] || exit 9\n')
    editor.chmod(0o755)
    p = node.run("config", "edit", env={"VISUAL": f"{editor} --wait"})
    assert p.returncode == 0, p.stderr


def test_edit_no_editor(node):
    node.write_config("default", f'[identity]\nsecured_token = "{GOOD_TOKEN}"\n')
    p = node.run("config", "edit", env={"PATH": "/nonexistent"})
    assert p.returncode == 1
    assert "Error: No text editor found. Please set the EDITOR environment variable." in p.stderr


def test_delete(node):
    node.write_config("old", '[identity]\nsecured_token = "a.b.c"\n')
    p = node.run("config", "delete", "old")  # no terminal, no --yes: refused
    assert p.returncode == 1
    assert "--yes" in p.stderr
    assert node.config_path("old").exists()
    p = node.run("config", "delete", "old", "--yes")
    assert p.returncode == 0
    assert "Configuration to delete: old" in p.stdout
    assert "Configuration 'old' deleted successfully" in p.stdout
    assert not node.config_path("old").exists()


def test_delete_interactive(node):
    node.write_config("old", '[identity]\nsecured_token = "a.b.c"\n')
    child = spawn(node, "config", "delete", "old")
    child.expect(r"Are you sure you want to delete configuration 'old'\? \[y/N\]: ")
    child.sendline("n")
    child.expect("Deletion cancelled")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert node.config_path("old").exists()
    child = spawn(node, "config", "delete", "old")
    child.expect(r"\[y/N\]: ")
    child.sendline("yes")
    child.expect("deleted successfully")
    child.expect(pexpect.EOF)
    assert not node.config_path("old").exists()


# ---- the configuration reference --------------------------------------------------------------

def test_docs_configuration_md_is_generated(node):
    p = node.run("config", "reference")
    assert p.returncode == 0
    committed = (SOURCE_DIR / "docs" / "configuration.md").read_text()
    assert p.stdout == committed, ("docs/configuration.md is out of date: regenerate it with "
                                   "'manta_node config reference > docs/configuration.md'")


def test_manta_home_is_honoured(node, tmp_path):
    mh = tmp_path / "elsewhere"
    p = node.run("config", "init", "-y", env={"MANTA_HOME": str(mh)})
    assert p.returncode == 0, p.stderr
    assert (mh / "nodes" / "default.toml").exists()
    assert not (node.home / ".manta").exists()


def test_options_after_the_file_argument(node, tmp_path):
    src = tmp_path / "late.toml"
    src.write_text('[identity]\nsecured_token = "a.b.c"\n')
    assert node.run("config", "init", str(src)).returncode == 0
    p = node.run("config", "init", str(src), "--force")
    assert p.returncode == 0, p.stderr
