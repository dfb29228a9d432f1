"""manta_manager's command line: help, the configuration reference in docs/, tokens, errors a
user can hit (no manager running, a bad swarm file, a bad duration), and the store read
directly when no manager runs."""
import subprocess

from conftest import SOURCE_DIR
from manager_env import manager_bin


def mm(*args, env=None, home=None):
    e = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    if home:
        e["MANTA_HOME"] = str(home)
    e.update(env or {})
    p = subprocess.run([manager_bin(), *args], capture_output=True, text=True, env=e, timeout=30)
    assert p.returncode not in (86, 87), p.stderr
    return p


def test_help_and_version():
    p = mm("--help")
    assert p.returncode == 0 and "Usage: manta_manager COMMAND" in p.stdout
    for cmd in ("serve", "run SWARM_FILE", "submit", "nodes", "swarms", "results SWARM",
                "logs SWARM", "token create"):
        assert cmd in p.stdout, cmd
    assert mm("--version").stdout.startswith("manta_manager ")
    p = mm("frobnicate")
    assert p.returncode == 2 and "unknown command 'frobnicate'" in p.stderr


def test_configuration_reference_is_current():
    p = mm("config", "reference")
    assert p.returncode == 0
    doc = (SOURCE_DIR / "docs" / "manager-configuration.md").read_text()
    assert p.stdout == doc, "docs/manager-configuration.md is stale: run `make docs`"


def test_config_file_errors(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text('listen = "127.0.0.1:1"\nnode_timeout = 1\n')
    p = mm("config", "show", "--config", str(f))
    assert p.returncode == 1 and "m.toml:2: `node_timeout` is 1" in p.stderr, p.stderr
    f.write_text('lisen = "x"\n')
    p = mm("config", "show", "--config", str(f))
    assert p.returncode == 1 and "unknown key `lisen`" in p.stderr
    f.write_text('listen = "127.0.0.1:7"\n')
    p = mm("config", "show", "--config", str(f))
    assert p.returncode == 0 and 'listen = "127.0.0.1:7"' in p.stdout


def test_tokens(tmp_path):
    p = mm("token", "create", "--node", "alice", "--ttl", "2h", home=tmp_path)
    assert p.returncode == 0
    tok = p.stdout.strip()
    assert tok.count(".") == 2
    secret = tmp_path / "manager" / "secret"
    assert secret.stat().st_mode & 0o777 == 0o600 and secret.stat().st_size == 32
    # the same secret is reused
    assert mm("token", "create", "--node", "bob", home=tmp_path).returncode == 0
    assert secret.read_bytes() == secret.read_bytes()
    p = mm("token", "create", "--node", "x", "--ttl", "soon", home=tmp_path)
    assert p.returncode == 2 and "not a duration" in p.stderr
    p = mm("token", "create", home=tmp_path)
    assert p.returncode == 2 and "--node ALIAS" in p.stderr


def test_no_manager_running(tmp_path):
    p = mm("nodes", "--admin", str(tmp_path / "none.sock"), home=tmp_path)
    assert p.returncode == 1 and "No manager is running here" in p.stderr
    p = mm("results", "abc", "--admin", str(tmp_path / "none.sock"), home=tmp_path)
    assert p.returncode == 1


def test_bad_swarm_file(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[[tasks]]\nmodule = "missing.py"\n')
    p = mm("run", str(f), "--broker", "127.0.0.1:1", home=tmp_path)
    assert p.returncode != 0 and "s.toml" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
