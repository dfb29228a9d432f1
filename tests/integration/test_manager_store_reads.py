"""The read-only commands (nodes, swarms, status, results, logs) work from the store alone: with
no admin socket, with a stale socket file nobody listens on, from the configured store or an
explicit --store; an explicit --store wins over a running manager of another store, and the
manager of that very store answers itself. stop and submit still need the manager."""
import json
import os
import socket
import subprocess

import pytest

from manager_env import LocalSwarm, manager_bin, module_dir

TASK = {"hello.py": ("import sys\n"
                     "from manta.light.task import Task\n"
                     "class Hello(Task):\n"
                     "    def run(self):\n"
                     "        print('hello from the task', flush=True)\n"
                     "        self.world.results.add('hello', 1)\n"
                     "def main():\n    Hello().run()\n")}

READS = ("nodes", "swarms", "status", "results", "logs")


@pytest.fixture(scope="module")
def past(tmp_path_factory, node_bin):
    """A store holding one finished swarm of one node; no manager runs any more."""
    tmp = tmp_path_factory.mktemp("past")
    d = module_dir(tmp, TASK)
    (d / "swarm.toml").write_text(
        'name = "past"\n[[tasks]]\nmodule = "hello.py"\nimage = "none"\nmethod = "all"\n')
    sw = LocalSwarm(tmp, node_bin, nodes=1)
    try:
        sw.start_run(d / "swarm.toml", "--timeout", "120")
        sw.start_nodes()
        rc, out = sw.wait(timeout=180)
        assert rc == 0, out
    finally:
        sw.close()
    swarm = next(l.split()[1] for l in out.splitlines() if l.startswith("swarm "))
    assert not sw.admin_sock.exists()
    return sw.store, swarm


def mm(home, *args):
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "MANTA_HOME": str(home)}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    p = subprocess.run([manager_bin(), *args], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode not in (86, 87), p.stderr
    return p


def args_of(cmd, swarm):
    return [cmd] + ([swarm] if cmd in ("status", "results", "logs") else [])


def check_all(home, store, swarm, *extra):
    """Every read-only command answers from store, as text and as JSON."""
    for cmd in READS:
        p = mm(home, *args_of(cmd, swarm), *extra)
        assert p.returncode == 0, (cmd, p.stderr)
        j = mm(home, *args_of(cmd, swarm), *extra, "--json")
        assert j.returncode == 0, (cmd, j.stderr)
        ans = json.loads(j.stdout)
        if cmd == "nodes":
            assert len(ans["nodes"]) == 1 and ans["nodes"][0]["alias"] == "node0", ans
            assert ans["nodes"][0]["connected"] is False and "last_status" in ans["nodes"][0]
            assert "offline" in p.stdout and "node0" in p.stdout, p.stdout
        elif cmd == "swarms":
            assert [s["id"] for s in ans["swarms"]] == [swarm] and swarm in p.stdout
        elif cmd == "status":
            assert ans["status"] == "COMPLETED" and "COMPLETED" in p.stdout
        elif cmd == "results":
            assert [r["tag"] for r in ans["results"]] == ["hello"], ans
        else:
            assert "hello from the task" in p.stdout, p.stdout
            assert any("hello from the task" in l["text"] for l in ans["logs"]), ans


def test_explicit_store_without_a_socket(past, tmp_path):
    store, swarm = past
    check_all(tmp_path, store, swarm, "--store", str(store), "--admin", str(tmp_path / "no.sock"))
    # a unique prefix of the swarm id does too
    p = mm(tmp_path, "logs", swarm[:8], "--store", str(store))
    assert p.returncode == 0 and "hello from the task" in p.stdout, p.stderr
    # a relative --store
    p = subprocess.run([manager_bin(), "swarms", "--store", store.name],
                       capture_output=True, text=True, cwd=store.parent,
                       env={"PATH": "/usr/bin:/bin", "MANTA_HOME": str(tmp_path)})
    assert p.returncode == 0 and swarm in p.stdout, p.stderr


def test_configured_store_and_a_stale_socket(past, tmp_path):
    store, swarm = past
    sock = tmp_path / "admin.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(sock))  # a socket file nobody listens on, as a killed manager leaves
    s.close()
    assert sock.exists()
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'store = "{store}"\nadmin_socket = "{sock}"\n')
    check_all(tmp_path, store, swarm, "-c", str(cfg))
    # $MANTA_HOME/manager/store.db, the default, with its default socket left stale
    home = tmp_path / "home"
    (home / "manager").mkdir(parents=True)
    (home / "manager" / "store.db").write_bytes(store.read_bytes())
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(home / "manager" / "admin.sock"))
    s.close()
    check_all(home, store, swarm)


def test_what_needs_a_manager_and_missing_stores(past, tmp_path):
    store, swarm = past
    for args in (["stop", swarm], ["submit", str(tmp_path)]):
        p = mm(tmp_path, *args, "--store", str(store), "--admin", str(tmp_path / "no.sock"))
        assert p.returncode != 0 and ("No manager is running here" in p.stderr
                                      or "does not exist" in p.stderr), p.stderr
    p = mm(tmp_path, "stop", swarm, "--store", str(store), "--admin", str(tmp_path / "no.sock"))
    assert p.returncode == 1 and "No manager is running here" in p.stderr
    p = mm(tmp_path, "swarms", "--store", str(tmp_path / "none.db"))
    assert p.returncode == 1 and "There is no store" in p.stderr and "none.db" in p.stderr
    assert not (tmp_path / "none.db").exists()
    p = mm(tmp_path / "empty", "logs", swarm)
    assert p.returncode == 1 and "No manager is running here" in p.stderr
    assert "there is no store" in p.stderr and "--store" in p.stderr, p.stderr
    p = mm(tmp_path, "logs", "ffff", "--store", str(store))
    assert p.returncode == 1 and "No swarm ffff" in p.stderr


def test_explicit_store_wins_over_another_running_manager(past, tmp_path, node_bin):
    store, swarm = past
    sw = LocalSwarm(tmp_path, node_bin, nodes=1)  # serves its own, empty, store
    try:
        sw.start_serve()
        sw.admin_json("swarms")  # its admin socket is up
        sock = ["--admin", str(sw.admin_sock)]
        home = sw.home / ".manta"
        # without --store: the running manager answers, from its store
        p = mm(home, "swarms", *sock, "--json")
        assert p.returncode == 0 and json.loads(p.stdout)["swarms"] == [], p.stdout
        # with --store naming another store: that store is read
        check_all(home, store, swarm, "--store", str(store), *sock)
        # stop with another store named: refused, not done on the wrong manager
        p = mm(home, "stop", swarm, "--store", str(store), *sock)
        assert p.returncode == 1 and "serves another store" in p.stderr, p.stderr
        # with --store naming the running manager's own store (another spelling of it): the
        # manager answers itself (live nodes: connected, no last_status)
        sw.start_nodes()
        link = tmp_path / "link.db"
        link.symlink_to(sw.store)
        from wire_env import wait_for

        def live():
            p = mm(home, "nodes", "--json", "--store", str(link), *sock)
            assert p.returncode == 0, p.stderr
            n = json.loads(p.stdout)["nodes"]
            return len(n) == 1 and n[0]["connected"] and "last_status" not in n[0]
        wait_for(live, timeout=30, what="the live node list")
        p = mm(home, "swarms", "--store", str(link), *sock, "--json")
        assert p.returncode == 0 and json.loads(p.stdout)["swarms"] == []
    finally:
        sw.close()
