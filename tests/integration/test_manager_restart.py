"""A restart of `manta_manager serve` loses nothing (issue 13): nodes that stayed connected are
known again from their next heartbeat, without restarting them; a swarm in progress resumes
where it was; a task that finished while the manager was away is accounted for once (its node
keeps its logs and delivers them when the manager is back); FedAvg on real data runs to its
normal end through two SIGKILLs of its manager, with every round's results stored once."""
import random
import signal
import sqlite3
import subprocess
import time

import pytest

from conftest import SOURCE_DIR
from manager_env import LocalSwarm, module_dir
from wire_env import wait_for

PY = "/usr/bin/python3"

SHORT = {
    "short.py": (
        "import os, sys, time\n"
        "def main():\n"
        "    print('start', flush=True)\n"
        "    time.sleep(float(os.environ.get('SHORT_SLEEP', '5')))\n"
        "    print('done', flush=True)\n"),
    "after.py": "def main():\n    print('after ran')\n",
}


def connected(sw):
    return sorted(n["id"] for n in sw.admin_json("nodes")["nodes"]
                  if n.get("status", "CONNECTED") == "CONNECTED")


def restart(sw, sig_kill=True):
    """Stop the manager (SIGKILL or SIGTERM) and serve again; the stopped one's exit status."""
    if sig_kill:
        sw.proc.kill()
    else:
        sw.proc.terminate()
    rc = sw.proc.wait(20)
    sw.start_serve()
    return rc


def serve_and_submit(sw, swarm_file):
    """Serve, start the nodes, wait until all are registered and heard on MQTT, submit."""
    sw.start_serve()
    sw.start_nodes()
    wait_for(lambda: len(sw.admin_json("nodes")["nodes"]) == len(sw.nodes), timeout=30)
    time.sleep(1.5)  # heard on MQTT
    return sw.admin("submit", str(swarm_file)).stdout.strip()


def test_restart_knows_nodes_and_resumes(tmp_path, node_bin):
    d = module_dir(tmp_path, SHORT)
    (d / "swarm.toml").write_text(
        'name = "short"\n[[tasks]]\nmodule = "short.py"\nimage = "none"\nmethod = "all"\n'
        '[[tasks]]\nmodule = "after.py"\nimage = "none"\nmethod = "any"\nafter = ["short"]\n')
    sw = LocalSwarm(tmp_path, node_bin, nodes=2)
    try:
        sid = serve_and_submit(sw, d / "swarm.toml")
        before = connected(sw)
        logs_db = lambda: sqlite3.connect(str(sw.store)).execute(  # noqa: E731
            "SELECT node, task, iteration, count(*) FROM task_logs WHERE swarm = ? "
            "GROUP BY node, task, iteration", (sid,)).fetchall()
        # both nodes run `short` (5 s): kill the manager while they do, and keep it away
        # until they have finished, so their logs and outcomes wait on the nodes
        wait_for(lambda: "running" in sw.admin("logs", sid, check=False).stdout or True,
                 timeout=5)
        time.sleep(1.0)
        sw.proc.kill()
        sw.proc.wait(20)
        time.sleep(7)
        t0 = time.monotonic()
        sw.start_serve()
        # known again within a few heartbeats (1 s here), the nodes never restarted
        wait_for(lambda: connected(sw) == before, timeout=15,
                 what="the nodes known again after the restart")
        known_after = time.monotonic() - t0
        # the swarm resumes: `after` runs once both `short` outcomes arrive; it completes
        wait_for(lambda: sw.admin_json("status", sid)["status"] != "RUNNING", timeout=90,
                 what="the resumed swarm to end")
        st = sw.admin_json("status", sid)
        assert st["status"] == "COMPLETED", st
        rows = logs_db()
        per = {}
        for node, task, it, cnt in rows:
            per.setdefault(task, []).append((node, it, cnt))
        # short ran on both nodes, after on one: each instance's logs stored exactly once
        counts = sorted(len(v) for v in per.values())
        assert counts == [1, 2], rows
        assert all(c == 1 for v in per.values() for _, _, c in v), rows
        print(f"nodes known again {known_after:.1f} s after the restart")
    finally:
        sw.close()


def test_restart_with_sigterm_keeps_the_swarm_running(tmp_path, node_bin):
    """A graceful stop of the manager no longer ends its swarms: they resume. The stop comes
    before the swarm's fixed task is placed, so the resumed run places it (a run restored with no
    node chosen yet for a fixed task once leaked that empty list: the sanitizer build's manager
    then exits non-zero on SIGTERM)."""
    d = module_dir(tmp_path, SHORT)
    (d / "swarm.toml").write_text(
        'name = "short"\n[[tasks]]\nmodule = "short.py"\nimage = "none"\nmethod = "all"\n'
        '[[tasks]]\nmodule = "after.py"\nimage = "none"\nmethod = "any"\nfixed = true\n'
        'after = ["short"]\n')
    sw = LocalSwarm(tmp_path, node_bin, nodes=1)
    try:
        sid = serve_and_submit(sw, d / "swarm.toml")
        time.sleep(1.0)
        assert restart(sw, sig_kill=False) == 0
        assert sw.admin_json("status", sid)["status"] == "RUNNING"
        wait_for(lambda: sw.admin_json("status", sid)["status"] != "RUNNING", timeout=90,
                 what="the resumed swarm to end")
        assert sw.admin_json("status", sid)["status"] == "COMPLETED"
        sw.proc.terminate()
        assert sw.proc.wait(20) == 0
    finally:
        sw.close()


@pytest.fixture
def data3(tmp_path):
    out = tmp_path / "data"
    subprocess.run([PY, str(SOURCE_DIR / "examples/prepare_data.py"), "--nodes", "3",
                    "--out", str(out)], check=True, capture_output=True, timeout=300)
    return [{"mnist": str(out / f"node_{i}" / "mnist.npz")} for i in range(3)]


def test_fedavg_through_manager_kills(tmp_path, node_bin, data3):
    sw = LocalSwarm(tmp_path, node_bin, nodes=3, datasets=data3)
    try:
        sid = serve_and_submit(sw, SOURCE_DIR / "examples/fedavg/swarm.toml")
        kills = 0
        for want in (1, 3):
            wait_for(lambda: sw.admin_json("status", sid).get("iteration", 0) >= want
                     or sw.admin_json("status", sid)["status"] != "RUNNING",
                     timeout=300, what=f"iteration {want}")
            if sw.admin_json("status", sid)["status"] != "RUNNING":
                break
            restart(sw)
            kills += 1
        wait_for(lambda: sw.admin_json("status", sid)["status"] != "RUNNING", timeout=400,
                 what="the swarm to end")
        st = sw.admin_json("status", sid)
        assert st["status"] == "STOPPED" and "stopped by task 'scheduler'" in st["detail"], st
        assert kills >= 1
        db = sqlite3.connect(str(sw.store))
        rows = db.execute("SELECT iteration, node, count(*) FROM results WHERE swarm = ? AND "
                          "tag = 'metrics' GROUP BY iteration, node", (sid,)).fetchall()
        its = sorted({r[0] for r in rows})
        assert its == list(range(len(its))), rows   # no round skipped
        for it in its:
            assert len([r for r in rows if r[0] == it]) == 3, rows  # every node, every round
        assert all(r[2] == 1 for r in rows), rows  # each once
        logs = db.execute("SELECT node, task, iteration, count(*) FROM task_logs WHERE swarm = ? "
                          "GROUP BY node, task, iteration", (sid,)).fetchall()
        assert all(r[3] == 1 for r in logs), logs
        print(f"{kills} manager kills survived; rounds {its}")
    finally:
        sw.close()


def test_output_waits_on_disk_through_a_node_restart(tmp_path, node_bin):
    """The manager is away when a task finishes; its node keeps the output on disk (the outbox)
    and stops (SIGTERM does not wait for a manager it cannot reach); the manager comes back, the
    node starts again and delivers the output once: the swarm completes, the log stored once."""
    import glob
    import signal as sig
    from wire_env import RunningNode
    d = module_dir(tmp_path, SHORT)
    (d / "swarm.toml").write_text(
        'name = "short"\n[[tasks]]\nmodule = "short.py"\nimage = "none"\nmethod = "all"\n')
    sw = LocalSwarm(tmp_path, node_bin, nodes=1)
    try:
        sid = serve_and_submit(sw, d / "swarm.toml")
        time.sleep(1.0)
        sw.proc.kill()
        sw.proc.wait(20)
        node = sw.nodes[0]
        items = lambda: glob.glob(str(node.home / ".manta/state/*/outbox/*.item"))  # noqa: E731
        wait_for(lambda: len(items()) == 1, timeout=30, what="the output kept in the outbox")
        rn = sw.running[0]
        rn.signal(sig.SIGTERM)
        assert rn.wait(60) == 0
        assert len(items()) == 1  # still owed to the manager
        sw.start_serve()
        sw.running[0] = RunningNode(node)  # the node again (a node starts only with a manager)
        wait_for(lambda: sw.admin_json("status", sid)["status"] != "RUNNING", timeout=90,
                 what="the swarm to end")
        assert sw.admin_json("status", sid)["status"] == "COMPLETED"
        wait_for(lambda: not items(), timeout=30, what="the outbox emptied")
        rows = sqlite3.connect(str(sw.store)).execute(
            "SELECT count(*) FROM task_logs WHERE swarm = ?", (sid,)).fetchone()
        assert rows[0] == 1, rows
    finally:
        sw.close()


def test_a_broker_outage_longer_than_the_node_timeout_loses_no_node(tmp_path, node_bin):
    """While the manager itself cannot reach the broker it cannot hear the nodes: their silence
    must not count against them. With node_timeout = 3 s and the broker away for 6 s (a broker
    that shuts down also publishes every node's last will), no node is lost, and the swarm that
    runs meanwhile keeps every instance: each node's logs of `long` are stored once."""
    d = module_dir(tmp_path, {
        "long.py": "import time\ndef main():\n    print('start', flush=True)\n"
                   "    time.sleep(12)\n    print('done', flush=True)\n",
        "after.py": "def main():\n    print('after ran')\n"})
    (d / "swarm.toml").write_text(
        'name = "long"\n[[tasks]]\nmodule = "long.py"\nimage = "none"\nmethod = "all"\n'
        '[[tasks]]\nmodule = "after.py"\nimage = "none"\nmethod = "any"\nafter = ["long"]\n')
    cfg = tmp_path / "manager.toml"
    cfg.write_text("node_timeout = 3\n")
    sw = LocalSwarm(tmp_path, node_bin, nodes=2)
    out = ""
    try:
        sw.start_serve("--config", str(cfg))
        sw.start_nodes()
        wait_for(lambda: len(connected(sw)) == 2, timeout=30, what="both nodes known")
        time.sleep(1.5)  # heard on MQTT
        sid = sw.admin("submit", str(d / "swarm.toml")).stdout.strip()
        time.sleep(1.0)
        sw.broker.restart(down_seconds=6.0)
        wait_for(lambda: sw.admin_json("status", sid)["status"] != "RUNNING", timeout=90,
                 what="the swarm to end")
        st = sw.admin_json("status", sid)
        assert st["status"] == "COMPLETED", st
        rows = sqlite3.connect(str(sw.store)).execute(
            "SELECT node, task, count(*) FROM task_logs WHERE swarm = ? GROUP BY node, task",
            (sid,)).fetchall()
        per_task = sorted(len([r for r in rows if r[1] == t]) for t in {r[1] for r in rows})
        assert per_task == [1, 2], rows   # long on both nodes, after on one
        assert all(c == 1 for _, _, c in rows), rows
        assert len(connected(sw)) == 2
    finally:
        if sw.proc and sw.proc.poll() is None:
            sw.proc.terminate()
            out = sw.proc.communicate(timeout=30)[0] or ""
        sw.close()
    assert "is lost" not in out, out


def test_a_repeated_result_is_stored_once(tmp_path, node_bin):
    """A task's runtime repeats an AddTaskResult that the manager was lost in the middle of, with
    the request id of the first attempt (metadata manta-request-id, passed on by the node): the
    repeat is answered Ok and stored once, across a manager restart too. Without an id, every
    call appends (as on the platform)."""
    import grpc
    from pbgen import client, pb
    system_pb2, results_pb2 = pb("common.system_pb2"), pb("common.results_pb2")
    d = module_dir(tmp_path, SHORT)
    (d / "swarm.toml").write_text('name = "r"\n[[tasks]]\nmodule = "after.py"\nimage = "none"\n')
    sw = LocalSwarm(tmp_path, node_bin, nodes=1)
    channel = None
    try:
        sid = serve_and_submit(sw, d / "swarm.toml")
        wait_for(lambda: sw.admin_json("status", sid)["status"] == "COMPLETED", timeout=90,
                 what="the swarm to complete")
        node = int(sw.admin_json("nodes")["nodes"][0]["id"], 16)
        md = [("authorization", sw.manager("token", "create", "--node", "node0").stdout.strip())]

        def pair(i):
            return system_pb2.PairId(head=i >> 64, tail=i & (2**64 - 1))

        def add(data, request=None):
            nonlocal channel
            if channel is None:
                channel = grpc.insecure_channel(f"127.0.0.1:{sw.port}")
            extra = [("manta-request-id", request)] if request is not None else []
            return client(channel, "node.node_service.Node").AddTaskResult(iter([
                results_pb2.Result(swarm_id=pair(int(sid, 16)), task_id=pair(0x5678),
                                   node_id=pair(node), iteration=2, tag="again", data=data)]),
                metadata=md + extra, timeout=20)

        def stored():
            return sorted(r["bytes"] for r in sw.admin_json("results", sid)["results"]
                          if r["tag"] == "again")

        add(b"first", "3f2a9c0d5e6b47a1")
        add(b"first", "3f2a9c0d5e6b47a1")  # the repeat
        assert stored() == [5]
        add(b"second", "77aa")
        assert stored() == [5, 6]
        add(b"none")
        add(b"none")
        assert stored() == [4, 4, 5, 6]
        # The id is kept with the result: a repeat after a SIGKILL of the manager is known.
        channel.close()
        channel = None
        restart(sw)
        add(b"first", "3f2a9c0d5e6b47a1")
        assert stored() == [4, 4, 5, 6]
        # A malformed id is refused with a sentence; nothing is stored.
        for bad in ("x" * 65, "a b", "a/b"):
            with pytest.raises(grpc.RpcError) as e:
                add(b"bad", bad)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
            assert "manta-request-id" in e.value.details(), e.value.details()
            assert "nothing was stored" in e.value.details(), e.value.details()
        assert stored() == [4, 4, 5, 6]
    finally:
        if channel is not None:
            channel.close()
        sw.close()


LOOP = {
    # fedavg's shape without the learning: every node adds a result, one node reads them all
    # and opens the next round on those nodes, or stops the swarm after ROUNDS rounds
    "work.py": (
        "from manta.light.task import Task\n"
        "class Work(Task):\n"
        "    def run(self):\n"
        "        r = int(self.world.globals.get('round', 0) or 0)\n"
        "        self.world.results.add('metrics', {'round': r, 'val_acc': 0.5})\n"
        "def main():\n    Work().run()\n"),
    "sched.py": (
        "import os\n"
        "from manta.light.task import Task\n"
        "class Sched(Task):\n"
        "    def run(self):\n"
        "        limit = self.world.globals['hp']['rounds']\n"
        "        rnd = int(self.world.globals.get('round', 0) or 0) + 1\n"
        "        self.world.globals['round'] = rnd\n"
        "        got = self.world.results.select('metrics')\n"
        "        self.logger.info('round %d: %d results', rnd, len(got))\n"
        "        if rnd >= limit:\n"
        "            self.world.stop_swarm()\n"
        "        else:\n"
        "            self.world.schedule_next_iter(node_ids=sorted(got),\n"
        "                                          task_to_schedule_alias='work')\n"
        "def main():\n    Sched().run()\n"),
}


def test_world_calls_through_repeated_manager_stops(tmp_path, node_bin):
    """Tasks' World calls go on through a manager stopped every 0.5-3 s (SIGTERM, some SIGKILL)
    and served again: no task fails, every round's results and logs are stored once. A stopping
    manager cancels the calls it had received and not yet started (gRPC's server shutdown); the
    task got that CANCELLED and failed with its swarm (3 runs in 10 of this loop, before the node
    read a CANCELLED it did not ask for as the manager being away)."""
    rounds = 20
    seed = random.SystemRandom().randrange(1 << 30)
    rng = random.Random(seed)
    d = module_dir(tmp_path, LOOP)
    (d / "swarm.toml").write_text(
        f'name = "loop"\n[globals]\nhp = {{ rounds = {rounds} }}\nround = 0\n'
        '[[tasks]]\nmodule = "work.py"\nalias = "work"\nimage = "none"\nmethod = "all"\n'
        '[[tasks]]\nmodule = "sched.py"\nalias = "sched"\nimage = "none"\nmethod = "any"\n'
        'fixed = true\nmaximum = 1\nafter = ["work"]\n')
    sw = LocalSwarm(tmp_path, node_bin, nodes=2)
    log = open(tmp_path / "manager.log", "ab")
    try:
        sw.start_serve(log=log)
        sw.start_nodes()
        wait_for(lambda: len(sw.admin_json("nodes")["nodes"]) == 2, timeout=30)
        time.sleep(1.5)  # heard on MQTT
        sid = sw.admin("submit", str(d / "swarm.toml")).stdout.strip()
        stops = []
        for _ in range(200):   # bounded; the swarm ends long before
            if sw.admin_json("status", sid)["status"] != "RUNNING":
                break
            time.sleep(rng.uniform(0.5, 3.0))
            kill = rng.random() < 0.2
            sw.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            rc = sw.proc.wait(30)
            assert kill or rc == 0, f"the manager exited with {rc} on SIGTERM"
            stops.append("KILL" if kill else "TERM")
            time.sleep(rng.uniform(0.0, 1.0))
            sw.start_serve(log=log)
        st = sw.admin_json("status", sid)
        why = f"seed {seed}, {len(stops)} stops: {st}"
        if st["status"] != "STOPPED":
            why += "\n" + sw.admin("logs", sid, "--task", "sched", check=False).stdout[-3000:]
            why += "\n" + sw.admin("logs", sid, "--task", "work", check=False).stdout[-3000:]
        assert st["status"] == "STOPPED" and "stopped by task 'sched'" in st["detail"], why
        assert len(stops) >= 3, why
        db = sqlite3.connect(str(sw.store))
        rows = db.execute("SELECT iteration, node, count(*) FROM results WHERE swarm = ? AND "
                          "tag = 'metrics' GROUP BY iteration, node", (sid,)).fetchall()
        assert sorted({r[0] for r in rows}) == list(range(rounds)), (why, rows)
        assert len(rows) == 2 * rounds and all(r[2] == 1 for r in rows), (why, rows)
        logs = db.execute("SELECT iteration, count(*) FROM task_logs WHERE swarm = ? "
                          "GROUP BY iteration, task, node", (sid,)).fetchall()
        assert len(logs) == 3 * rounds and all(r[1] == 1 for r in logs), (why, logs)
        print(why)
    finally:
        sw.close()
        log.close()
