"""`manta_manager broker-config`: mosquitto credentials and ACL for the manager and its nodes.

mosquitto runs with the generated files and shows: a node with its credentials subscribes to
its own command topics and publishes to manager/...; it reads no other node's commands and
publishes no command (only its own session marker); an anonymous client and a wrong password
are refused; only the manager publishes commands; a client cannot take over another's
session by client id; and a real manta_manager + manta_node pair runs a swarm through the
ACL'd broker. The files themselves: modes, the `$7$` hash, credentials kept across runs."""
import base64
import hashlib
import os
import pathlib
import queue
import signal
import subprocess
import time
import tomllib

import pytest

from manager_env import LocalSwarm, manager_bin, module_dir
from wire_env import MOSQUITTO, free_port, wait_for

paho = pytest.importorskip("paho.mqtt.client")


def mm(home, *args, check=True):
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "MANTA_HOME": str(home)}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    p = subprocess.run([manager_bin(), *args], capture_output=True, text=True, env=env,
                       timeout=60)
    assert p.returncode not in (86, 87), p.stderr
    if check:
        assert p.returncode == 0, f"manta_manager {args}: {p.returncode}\n{p.stdout}\n{p.stderr}"
    return p


def acl_ids(acl: str) -> dict:
    """user -> node ids, read from the ACL's `topic read manta/nodes/<id>/+` lines."""
    ids, user = {}, None
    for line in acl.splitlines():
        if line.startswith("user "):
            user = line[5:]
            ids[user] = []
        elif line.startswith("topic read manta/nodes/"):
            ids[user].append(line.split("/")[2])
    return ids


class MosquittoACL:
    """mosquitto on a free loopback port with the broker-config files."""

    def __init__(self, workdir: pathlib.Path, snippet: pathlib.Path):
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = self.dir / "mosquitto.log"
        conf = self.dir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\n"
                        + ("user root\n" if os.geteuid() == 0 else "")
                        + "persistence false\n"
                        f"log_dest file {self.log}\nlog_type all\n"
                        + snippet.read_text())
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        import socket

        def up():
            assert self.proc.poll() is None, self.log.read_text() if self.log.exists() else ""
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False
        wait_for(up, 10, what="mosquitto to listen")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Client:
    """A paho client that records what it receives and how its connection went."""

    def __init__(self, port, user=None, password=None, client_id=""):
        self.messages = queue.Queue()
        self.connack = queue.Queue()
        self.subacks = {}
        self.disconnects = 0
        self.c = paho.Client(client_id=client_id, clean_session=True)
        if user is not None:
            self.c.username_pw_set(user, password)
        self.c.on_connect = lambda c, u, f, rc: self.connack.put(rc)
        self.c.on_message = lambda c, u, m: self.messages.put((m.topic, m.payload))
        self.c.on_subscribe = lambda c, u, mid, granted: self.subacks.__setitem__(mid, granted)
        self.c.on_disconnect = lambda c, u, rc: setattr(self, "disconnects",
                                                         self.disconnects + 1)
        self.c.connect("127.0.0.1", port, keepalive=30)
        self.c.loop_start()
        self.rc = self.connack.get(timeout=10)

    def subscribe(self, topic):
        r, mid = self.c.subscribe(topic, qos=1)
        assert r == 0
        wait_for(lambda: mid in self.subacks, 10, what=f"SUBACK of {topic}")
        return self.subacks[mid][0]

    def publish(self, topic, payload):
        info = self.c.publish(topic, payload, qos=1)
        info.wait_for_publish(timeout=10)

    def received(self, settle=0.0):
        time.sleep(settle)
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def wait_for(self, topic, payload, timeout=10):
        """Wait for (topic, payload); returns everything received until then."""
        seen = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                m = self.messages.get(timeout=0.1)
            except queue.Empty:
                continue
            seen.append(m)
            if m == (topic, payload):
                return seen
        raise AssertionError(f"{topic} {payload!r} never arrived; got {seen}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()


def creds(out: pathlib.Path, alias: str):
    with open(out / "nodes" / f"{alias}.toml", "rb") as f:
        m = tomllib.load(f)["mqtt"]
    return m["username"], m["password"]


def manager_creds(out: pathlib.Path):
    with open(out / "manager.toml", "rb") as f:
        m = tomllib.load(f)
    return m["broker_username"], m["broker_password"]


@pytest.fixture
def acl_broker(tmp_path):
    out = tmp_path / "broker"
    mm(tmp_path / "home", "broker-config", "--out", str(out), "--node", "node0", "--node",
       "node1")
    b = MosquittoACL(tmp_path / "mosq", out / "mosquitto.conf")
    yield out, b
    b.stop()


def test_files_modes_hash_and_rerun(tmp_path):
    home, out = tmp_path / "home", tmp_path / "b"
    p = mm(home, "broker-config", "--out", str(out), "--node", "gpu-01", "--node", "gpu-01")
    for name in ("passwd", "acl", "mosquitto.conf", "manager.toml", "nodes/gpu-01.toml"):
        assert (out / name).stat().st_mode & 0o777 == 0o600, name
    assert out.stat().st_mode & 0o777 == 0o700
    assert (out / "nodes").stat().st_mode & 0o777 == 0o700
    assert f"{out}/nodes/gpu-01.toml (new)" in p.stdout, p.stdout
    assert f"-c {out}/manager.toml" in p.stdout, p.stdout
    user, pw = creds(out, "gpu-01")
    assert user == "gpu-01" and len(pw) == 32
    assert pw not in p.stdout and manager_creds(out)[1] not in p.stdout
    lines = dict(l.split(":", 1) for l in (out / "passwd").read_text().splitlines())
    assert set(lines) == {"manta-manager", "gpu-01"}
    # mosquitto's PBKDF2-SHA512 format: $7$iterations$base64(salt)$base64(hash)
    _, seven, rounds, salt, digest = lines["gpu-01"].split("$")
    assert seven == "7"
    assert base64.b64decode(digest) == hashlib.pbkdf2_hmac(
        "sha512", pw.encode(), base64.b64decode(salt), int(rounds))
    assert len(base64.b64decode(salt)) == 12
    conf = (out / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and f"password_file {out}/passwd" in conf
    assert f"acl_file {out}/acl" in conf and "use_username_as_clientid true" in conf
    ids = acl_ids((out / "acl").read_text())
    assert list(ids) == ["manta-manager", "gpu-01"] and len(ids["gpu-01"]) == 1
    # again, with one more node: the credentials of record are kept
    mpw = manager_creds(out)[1]
    p = mm(home, "broker-config", "--out", str(out), "--node", "gpu-02")
    assert creds(out, "gpu-01") == (user, pw) and manager_creds(out)[1] == mpw
    assert "gpu-02" in p.stdout and p.stdout.count("(new)") == 1
    assert set(acl_ids((out / "acl").read_text())) == {"manta-manager", "gpu-01", "gpu-02"}
    # a node's file deleted: that node is gone
    (out / "nodes" / "gpu-01.toml").unlink()
    mm(home, "broker-config", "--out", str(out))
    assert set(acl_ids((out / "acl").read_text())) == {"manta-manager", "gpu-02"}
    # aliases that cannot be user names, a clash with the manager's name
    p = mm(home, "broker-config", "--out", str(out), "--node", "a b", check=False)
    assert p.returncode == 2 and "cannot be a broker user name" in p.stderr
    p = mm(home, "broker-config", "--out", str(out), "--node", "manta-manager", check=False)
    assert p.returncode == 2 and "the manager's broker user name" in p.stderr
    # the manager's own configuration names its credentials: those are used
    cfg = tmp_path / "m.toml"
    cfg.write_text('broker_username = "boss"\nbroker_password = "s3cret"\n')
    out2 = tmp_path / "b2"
    p = mm(home, "broker-config", "-c", str(cfg), "--out", str(out2), "--node", "n")
    assert not (out2 / "manager.toml").exists() and "'boss'" in p.stdout
    assert (out2 / "passwd").read_text().startswith("boss:$7$")
    cfg.write_text('broker_username = "boss"\n')
    p = mm(home, "broker-config", "-c", str(cfg), "--out", str(out2), check=False)
    assert p.returncode == 1 and "no broker_password" in p.stderr


def test_anonymous_and_wrong_password_refused(acl_broker):
    out, b = acl_broker
    anon = Client(b.port)
    assert anon.rc == 5, anon.rc  # not authorised
    anon.close()
    user, _ = creds(out, "node0")
    bad = Client(b.port, user, "not-the-password")
    assert bad.rc in (4, 5), bad.rc
    bad.close()
    # the manager's password is not a node's
    bad = Client(b.port, user, manager_creds(out)[1])
    assert bad.rc in (4, 5), bad.rc
    bad.close()


def test_nodes_only_their_own_topics(acl_broker):
    out, b = acl_broker
    ids = acl_ids((out / "acl").read_text())
    x0, x1 = ids["node0"][0], ids["node1"][0]
    mgr = Client(b.port, *manager_creds(out), client_id="manager")
    n0 = Client(b.port, *creds(out, "node0"), client_id=x0)
    n1 = Client(b.port, *creds(out, "node1"), client_id=x1)
    clients = [mgr, n0, n1]
    try:
        assert [c.rc for c in clients] == [0, 0, 0]
        assert mgr.subscribe("manager/+") == 1
        # a node subscribes to its own command topics, as the manager tells it to
        assert n0.subscribe(f"manta/nodes/{x0}/+") == 1
        assert n1.subscribe(f"manta/nodes/{x1}/+") == 1
        # ... and not to another node's, nor to everything: node1 tries
        for t in (f"manta/nodes/{x0}/+", "manta/nodes/#", "#", "manager/+"):
            n1.subscribe(t)  # refused (0x80) or granted: nothing may arrive either way

        # the manager publishes commands; each node gets its own only
        mgr.publish(f"manta/nodes/{x0}/deploy_task", b"to-n0")
        mgr.publish(f"manta/nodes/{x1}/deploy_task", b"to-n1")
        assert (f"manta/nodes/{x0}/deploy_task", b"to-n0") in n0.wait_for(
            f"manta/nodes/{x0}/deploy_task", b"to-n0")
        assert n1.wait_for(f"manta/nodes/{x1}/deploy_task", b"to-n1")

        # a node publishes to manager/...: the manager gets it; a node reads none of it
        n0.publish("manager/set_node_status", b"status-n0")
        mgr.wait_for("manager/set_node_status", b"status-n0")

        # a node cannot publish commands: not to another node, not to itself, not to all
        n0.publish(f"manta/nodes/{x1}/stop_node", b"forged")
        n0.publish(f"manta/nodes/{x0}/deploy_task", b"forged")
        n1.publish(f"manta/nodes/{x0}/stop_node", b"forged")
        # only its own session marker (src/node/daemon/session.c)
        n0.publish(f"manta/nodes/{x0}/node_session_marker", b"marker")
        n0.wait_for(f"manta/nodes/{x0}/node_session_marker", b"marker")
        n1.publish(f"manta/nodes/{x0}/node_session_marker", b"forged-marker")
        # a sentinel from the manager to each, after everything above
        mgr.publish(f"manta/nodes/{x0}/sentinel", b"end")
        mgr.publish(f"manta/nodes/{x1}/sentinel", b"end")
        got0 = n0.wait_for(f"manta/nodes/{x0}/sentinel", b"end") + n0.received(0.3)
        got1 = n1.wait_for(f"manta/nodes/{x1}/sentinel", b"end") + n1.received(0.3)
        assert not [m for m in got0 + got1 if m[1].startswith(b"forged")], (got0, got1)
        # node1, subscribed to everything it asked for, saw nothing of node0 nor manager/
        assert not [m for m in got1 if x0 in m[0] or m[0].startswith("manager/")], got1
        assert mgr.received(0.2) == []  # the manager got no command-topic traffic
        log = b.log.read_text()
        assert f"Denied PUBLISH from node0 (d0, q1, r0, m" in log and "stop_node" in log
    finally:
        for c in clients:
            c.close()


def test_no_session_takeover_by_client_id(acl_broker):
    out, b = acl_broker
    x0 = acl_ids((out / "acl").read_text())["node0"][0]
    n0 = Client(b.port, *creds(out, "node0"), client_id=x0)
    try:
        assert n0.rc == 0
        # node1's credentials with node0's client id: the broker uses the user name instead,
        # so node0 stays connected
        other = Client(b.port, *creds(out, "node1"), client_id=x0)
        assert other.rc == 0
        time.sleep(0.5)
        assert n0.disconnects == 0
        # (whereas node0's own credentials again take node0's place: one session per user)
        again = Client(b.port, *creds(out, "node0"), client_id="whatever")
        assert again.rc == 0
        wait_for(lambda: n0.disconnects >= 1, 5, what="the first node0 session to be replaced")
        again.close()
        other.close()
    finally:
        n0.close()


TASK = {"hello.py": ("from manta.light.task import Task\n"
                     "class Hello(Task):\n"
                     "    def run(self):\n"
                     "        self.world.results.add('hello', 1)\n"
                     "def main():\n    Hello().run()\n")}


def test_manager_and_node_through_the_acl(tmp_path, node_bin):
    """A real manta_manager and two manta_nodes: registration, commands (deploy_task), task
    status and the result all go through the broker with the generated ACL."""
    out = tmp_path / "brokercfg"
    mgr_home = tmp_path / "mgrhome" / ".manta"  # LocalSwarm's manager home
    mm(mgr_home, "broker-config", "--out", str(out), "--node", "node0", "--node", "node1")
    d = module_dir(tmp_path, TASK)
    (d / "swarm.toml").write_text(
        'name = "acl"\n[[tasks]]\nmodule = "hello.py"\nimage = "none"\nmethod = "all"\n')
    sw = LocalSwarm(tmp_path, node_bin, nodes=2,
                    broker_conf=(out / "mosquitto.conf").read_text())
    try:
        for i, n in enumerate(sw.nodes):
            user, pw = creds(out, f"node{i}")
            path = n.config_path("default")
            text = path.read_text()
            assert "[mqtt]\n" in text
            path.write_text(text.replace(
                "[mqtt]\n", f'[mqtt]\nusername = "{user}"\npassword = "{pw}"\n', 1))
        sw.start_run(d / "swarm.toml", "-c", str(out / "manager.toml"), "--timeout", "120")
        sw.start_nodes()
        rc, outp = sw.wait(timeout=180)
        assert rc == 0, outp + "\n" + (tmp_path / "broker" / "mosquitto.log").read_text()[-3000:]
        assert "COMPLETED" in outp and "hello x2" in outp, outp
        # nothing the manager and the nodes do was denied (the session marker included)
        log = (tmp_path / "broker" / "mosquitto.log").read_text()
        assert "Denied" not in log, [l for l in log.splitlines() if "Denied" in l]
        assert "u'node0'" in log and "u'manta-manager'" in log
    finally:
        sw.close()


def test_node_without_credentials_gets_no_commands(tmp_path, node_bin):
    """Against the ACL'd broker, a node with no [mqtt] credentials is refused by the broker,
    so the manager never counts it as ready."""
    out = tmp_path / "brokercfg"
    mgr_home = tmp_path / "mgrhome" / ".manta"
    mm(mgr_home, "broker-config", "--out", str(out), "--node", "node0")
    d = module_dir(tmp_path, TASK)
    (d / "swarm.toml").write_text(
        'name = "acl"\n[[tasks]]\nmodule = "hello.py"\nimage = "none"\nmethod = "all"\n')
    sw = LocalSwarm(tmp_path, node_bin, nodes=1,
                    broker_conf=(out / "mosquitto.conf").read_text())
    try:
        sw.proc = subprocess.Popen(
            [sw.mgr, "run", str(d / "swarm.toml"), "--nodes", "1", "--wait", "6",
             *sw.common_args(), "-c", str(out / "manager.toml")],
            env=sw.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sw.wait_listening()
        sw.start_nodes()
        rc, outp = sw.wait(timeout=60)
        assert rc == 3 and "only 0 of 1 nodes connected" in outp, outp
        log = (tmp_path / "broker" / "mosquitto.log").read_text()
        assert "not authorised" in log.lower(), log[-2000:]
    finally:
        sw.close()
