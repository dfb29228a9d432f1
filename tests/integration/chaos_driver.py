"""A chaos driver (issue 13), shared by tests/integration/test_chaos.py (short, in CI) and
bench/chaos.py (long): the FedAvg example (examples/fedavg) on real data (Fashion-MNIST from
Debian, examples/prepare_data.py) on N nodes for a fixed number of rounds, while a seeded
random driver SIGKILLs and restarts a node, restarts the broker, and restarts the manager
(SIGKILL or SIGTERM), one fault at a time, spread over the rounds.

It passes when:
* the swarm ends normally: STOPPED by its scheduler, after exactly the configured rounds;
* every round's results (tag "metrics") are in the store exactly once per node;
* every node's logs of every task instance (worker and worker_test on every node, aggregator
  and scheduler once, every round) are in the store exactly once;
* nothing is left behind once the swarm has ended and the nodes were stopped normally
  (SIGTERM): no task process, empty task state folders, no cgroup of the nodes' tasks, no
  overlay mount under the nodes' homes and, with runc, no runc container of the nodes.

`ChaosRun(...).run()` returns a report (dict) and prints the faults injected and survived and
what was lost; `report["ok"]` is the verdict, `report["problems"]` says what failed. Every wait
is bounded.
"""
import os
import pathlib
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import time

from conftest import SOURCE_DIR
from manager_env import LocalSwarm
from wire_env import RunningNode, wait_for

PY = "/usr/bin/python3"
KINDS = ("node_kill", "broker_restart", "manager_kill", "manager_term")
RUNC_ROOT = "/run/manta-runc"


class ChaosFailure(AssertionError):
    pass


def prepare_data(out: pathlib.Path, nodes: int, train: int = 0, test: int = 0, seed: int = 0):
    """Every node's own partition of Fashion-MNIST; returns the nodes' dataset mappings."""
    args = [PY, str(SOURCE_DIR / "examples/prepare_data.py"), "--nodes", str(nodes),
            "--out", str(out), "--seed", str(seed)]
    if train:
        args += ["--train", str(train)]
    if test:
        args += ["--test", str(test)]
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        raise ChaosFailure(f"prepare_data.py failed:\n{p.stdout}\n{p.stderr}")
    return [{"mnist": str(out / f"node_{i}" / "mnist.npz")} for i in range(nodes)]


def fixed_rounds_swarm(dest: pathlib.Path, rounds: int) -> pathlib.Path:
    """A copy of examples/fedavg whose scheduler stops after exactly `rounds` rounds (the
    accuracy threshold is unreachable)."""
    dest.mkdir(parents=True, exist_ok=True)
    src = SOURCE_DIR / "examples" / "fedavg"
    for f in src.iterdir():
        if f.suffix == ".py":
            shutil.copy(f, dest / f.name)
    text = (src / "swarm.toml").read_text()
    new, n1 = re.subn(r"val_acc_threshold = [0-9.]+", "val_acc_threshold = 2.0", text)
    new, n2 = re.subn(r"max_rounds = [0-9]+", f"max_rounds = {rounds}", new)
    if n1 != 1 or n2 != 1:
        raise ChaosFailure("examples/fedavg/swarm.toml has no val_acc_threshold/max_rounds to set")
    (dest / "swarm.toml").write_text(new)
    return dest / "swarm.toml"


class Fault:
    def __init__(self, kind, at):
        self.kind = kind
        self.at = at            # position in rounds (iteration + fraction of a round)
        self.target = None
        self.down = 0.0
        self.iteration = None   # the swarm's iteration when injected
        self.t = None           # seconds since the swarm was submitted
        self.took = 0.0         # how long the injection (stop + down + start) took
        self.note = ""

    def describe(self):
        who = f" {self.target}" if self.target else ""
        return (f"t={self.t:6.1f}s round {self.iteration + 1:>3}: {self.kind}{who}, "
                f"down {self.down:.1f} s{(' ' + self.note) if self.note else ''}")


class ChaosRun:
    def __init__(self, tmp: pathlib.Path, node_bin: str, *, nodes=4, rounds=10, faults=8,
                 seed=None, runtime="process", train=0, test=0, max_down=3.0,
                 round_timeout=150.0, deadline=None, log=print):
        self.tmp = pathlib.Path(tmp)
        self.node_bin = node_bin
        self.n = nodes
        self.rounds = rounds
        self.nfaults = faults
        self.seed = seed if seed is not None else random.SystemRandom().randrange(2 ** 32)
        self.rng = random.Random(self.seed)
        self.runtime = runtime
        self.train = train
        self.test = test
        self.max_down = max_down
        self.round_timeout = round_timeout   # no progress for this long: the swarm is stuck
        self.deadline = deadline             # seconds for the whole run, or None
        self.log = log
        self.sw = None
        self.sid = None
        self.faults = []
        self.node_runs = []                  # every RunningNode ever started, per node
        self.store_dir = None
        self.t0 = None
        self.iter_seen = {}                  # iteration -> monotonic time first seen
        self.problems = []
        self.mgr_log = None
        self.t_begin = None

    # -- plumbing ---------------------------------------------------------------------------
    def elapsed(self):
        return time.monotonic() - self.t0 if self.t0 else 0.0

    def _budget(self, want):
        """A wait of at most `want` seconds, cut to what is left of the deadline."""
        if self.deadline is None or self.t_begin is None:
            return want
        left = self.deadline - (time.monotonic() - self.t_begin)
        if left <= 0:
            raise ChaosFailure(f"the run's deadline of {self.deadline:.0f} s has passed")
        return min(want, left)

    def start_manager(self):
        sw = self.sw
        self.mgr_log.write(f"==== serve at t={self.elapsed():.1f}s\n".encode())
        self.mgr_log.flush()
        sw.start_serve(log=self.mgr_log)

    def stop_manager(self, sig):
        p = self.sw.proc
        p.send_signal(sig)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
            raise ChaosFailure(f"the manager did not exit within 30 s of signal {sig}")
        return p.returncode

    def start_node(self, i):
        r = RunningNode(self.sw.nodes[i])
        self.node_runs[i].append(r)
        if i < len(self.sw.running):
            self.sw.running[i] = r
        else:
            self.sw.running.append(r)

        def registered():
            if r.proc.poll() is not None:
                raise ChaosFailure(f"node{i} exited ({r.proc.returncode}) at its start:\n"
                                   + "\n".join(r.out + r.err))
            return any("Node registered" in line for line in r.out + r.err)
        wait_for(registered, timeout=self._budget(30), interval=0.1,
                 what=f"node{i} to register")
        return r

    def node_xid(self, i):
        st = self.sw.nodes[i].home / ".manta" / "state"
        xs = [d.name for d in st.iterdir() if (d / "tasks").is_dir()] if st.exists() else []
        return xs[0] if len(xs) == 1 else None

    def owners(self):
        """The nodes' "<xid>-<tag>" owner names (state/runtime/<kind>/<owner>), once known."""
        if not getattr(self, "_owners", None):
            got = []
            for i in range(self.n):
                x = self.node_xid(i)
                rt = self.sw.nodes[i].home / ".manta" / "state" / "runtime"
                got += sorted(d.name for d in rt.glob(f"*/{x}-*")) if x else []
            if len(got) == self.n:
                self._owners = got
            return got
        return self._owners

    def status(self):
        st = self.sw.admin_json("status", self.sid)
        it = int(st.get("iteration", 0) or 0)
        if it not in self.iter_seen:
            self.iter_seen[it] = time.monotonic()
        return st

    def round_estimate(self):
        ts = sorted(self.iter_seen.items())
        if len(ts) < 2:
            return 10.0
        return max(1.0, (ts[-1][1] - ts[0][1]) / (ts[-1][0] - ts[0][0]))

    # -- set-up -----------------------------------------------------------------------------
    def setup(self):
        self.tmp.mkdir(parents=True, exist_ok=True)
        datasets = prepare_data(self.tmp / "data", self.n, self.train, self.test)
        self.swarm_file = fixed_rounds_swarm(self.tmp / "fedavg", self.rounds)
        self.sw = LocalSwarm(self.tmp, self.node_bin, nodes=self.n, datasets=datasets,
                             runtime=self.runtime)
        if self.runtime == "runc":
            from runtimes import runc_store, runtime_config, task_image_tarball
            self.store_dir = runc_store(self.node_bin, task_image_tarball())
            for nd in self.sw.nodes:
                p = nd.config_path("default")
                text = p.read_text()
                plain = '[containers]\nruntime = "runc"\n'
                assert plain in text, text
                p.write_text(text.replace(plain, runtime_config("runc", self.store_dir,
                                                                memory="512M")))
        self.node_runs = [[] for _ in range(self.n)]
        self.mgr_log = open(self.tmp / "manager.log", "ab")

    # -- the plan ---------------------------------------------------------------------------
    def plan(self):
        """Faults at random positions over rounds 1..rounds-2 (the last two are left alone so
        that the swarm is still running when the last fault lands: with the last round open,
        faults drawn late found the swarm ended, and a run injected 5 of 8), one in each of
        `nfaults` equal slots of that span: positions drawn independently bunched up (three
        faults in one round), and as each fault takes seconds to inject (a restart, its down
        time), a fast run ended before the bunch was through and a run injected 5 of 8 again.
        Every kind at least once when there are enough faults."""
        kinds = list(KINDS[:min(len(KINDS), self.nfaults)])
        kinds += [self.rng.choice(KINDS) for _ in range(self.nfaults - len(kinds))]
        self.rng.shuffle(kinds)
        span = max(0.5, self.rounds - 2.5)
        slot = span / max(1, len(kinds))
        ats = [0.3 + (i + 0.1 + 0.8 * self.rng.random()) * slot for i in range(len(kinds))]
        faults = [Fault(k, a) for k, a in zip(kinds, ats)]
        for f in faults:
            f.down = round(self.rng.uniform(0.0, self.max_down), 2)
            if f.kind == "node_kill":
                f.target = f"node{self.rng.randrange(self.n)}"
        return faults

    # -- faults -----------------------------------------------------------------------------
    def inject(self, f: Fault, st):
        f.iteration = int(st.get("iteration", 0) or 0)
        f.t = self.elapsed()
        t = time.monotonic()
        if f.kind == "node_kill":
            i = int(f.target[4:])
            r = self.sw.running[i]
            r.proc.kill()
            r.proc.wait(10)
            time.sleep(f.down)
            self.start_node(i)
        elif f.kind == "broker_restart":
            self.sw.broker.restart(down_seconds=f.down)
        else:
            sig = signal.SIGKILL if f.kind == "manager_kill" else signal.SIGTERM
            rc = self.stop_manager(sig)
            if sig == signal.SIGTERM and rc != 0:
                f.note = f"(exit status {rc})"
                self.problems.append(f"the manager exited with status {rc} on SIGTERM")
            time.sleep(f.down)
            self.start_manager()
        f.took = time.monotonic() - t
        self.log(f"chaos: injected {f.describe()}")

    # -- the run ----------------------------------------------------------------------------
    def run(self):
        self.t_begin = time.monotonic()
        self.log(f"chaos: seed {self.seed} (MANTA_CHAOS_SEED={self.seed} replays it); "
                 f"{self.n} nodes, {self.rounds} rounds, {self.nfaults} faults, "
                 f"runtime {self.runtime}")
        try:
            self.setup()
            self.start_manager()
            for i in range(self.n):
                self.start_node(i)
            wait_for(lambda: sum(1 for n in self.sw.admin_json("nodes")["nodes"]
                                 if n.get("status", "CONNECTED") == "CONNECTED") == self.n,
                     timeout=self._budget(30), interval=0.2, what="every node known")
            time.sleep(1.5)   # heard on MQTT too
            self.sid = self.sw.admin("submit", str(self.swarm_file)).stdout.strip()
            self.t0 = time.monotonic()
            self.log(f"chaos: swarm {self.sid} submitted")
            plan = self.plan()
            for f in plan:
                st = self.wait_position(f.at)
                if st["status"] != "RUNNING":
                    f.note = "not injected: the swarm had ended"
                    break
                self.inject(f, st)
                self.faults.append(f)
            self.finish()
        except Exception as e:   # noqa: BLE001 - reported with the state of everything
            self.problems.append(f"{type(e).__name__}: {e}")
        finally:
            self.teardown()
        return self.report()

    def wait_position(self, at):
        """Wait until the swarm is `at` rounds in (iteration int(at), then the fraction of an
        estimated round), or has ended; every wait bounded by round_timeout of no progress."""
        want = int(at)
        last_it, last_t = None, time.monotonic()
        while True:
            st = self.status()
            it = int(st.get("iteration", 0) or 0)
            if st["status"] != "RUNNING" or it >= want:
                break
            if it != last_it:
                last_it, last_t = it, time.monotonic()
            if time.monotonic() - last_t > self.round_timeout:
                raise ChaosFailure(f"no progress for {self.round_timeout:.0f} s at iteration "
                                   f"{it}: {st}")
            self._budget(self.round_timeout)
            time.sleep(0.3)
        if st["status"] == "RUNNING":
            time.sleep(min((at - want) * self.round_estimate(), self._budget(60)))
            st = self.status()
        return st

    def finish(self):
        last_it, last_t = None, time.monotonic()
        while True:
            st = self.status()
            if st["status"] != "RUNNING":
                break
            it = int(st.get("iteration", 0) or 0)
            if it != last_it:
                last_it, last_t = it, time.monotonic()
            if time.monotonic() - last_t > self.round_timeout:
                raise ChaosFailure(f"no progress for {self.round_timeout:.0f} s at iteration "
                                   f"{it}: {st}")
            self._budget(self.round_timeout)
            time.sleep(0.5)
        self.duration = self.elapsed()
        self.final = st
        self.log(f"chaos: swarm ended after {self.duration:.1f} s: {st['status']} "
                 f"({st.get('detail', '')})")
        if not (st["status"] == "STOPPED" and "stopped by task 'scheduler'" in st.get("detail", "")):
            self.problems.append(f"the swarm did not end normally: {st}")
        # The last instances' logs may still be on their way: wait (bounded) until they are in.
        try:
            wait_for(lambda: not self.check_store(final=False), timeout=self._budget(60),
                     interval=0.5, what="every result and log in the store")
        except AssertionError:
            pass
        self.problems += self.check_store(final=True)
        # The swarm has ended: the nodes clean up its tasks (state folders, containers).
        try:
            wait_for(lambda: not self.leftovers(), timeout=self._budget(45), interval=0.5,
                     what="the nodes to clean up")
        except AssertionError:
            pass
        self.left_running = self.leftovers()
        # Stop the nodes normally; then nothing at all may be left.
        for i, r in enumerate(self.sw.running):
            if r.proc.poll() is None:
                r.proc.send_signal(signal.SIGTERM)
        for i, r in enumerate(self.sw.running):
            try:
                rc = r.proc.wait(self._budget(40))
            except subprocess.TimeoutExpired:
                r.proc.kill()
                r.proc.wait(10)
                rc = "killed after 40 s"
            if rc != 0:
                self.problems.append(f"node{i} exited with {rc} on SIGTERM")
        left = self.leftovers(processes=True)
        rc = self.stop_manager(signal.SIGTERM)
        if rc != 0:
            self.problems.append(f"the manager exited with status {rc} on SIGTERM at the end")
        self.mgr_log.flush()
        outputs = [("manager", (self.tmp / "manager.log").read_text(errors="replace"))]
        outputs += [(f"node{i}", "\n".join(r.out + r.err)) for i, runs in
                    enumerate(self.node_runs) for r in runs]
        for who, text in outputs:
            for bad in ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer"):
                if bad in text:
                    # the report itself: the run's folder may be gone when it is read
                    at = text.index(bad)
                    self.problems.append(f"{who}: sanitizer report ({bad}):\n"
                                         + text[max(0, at - 200):at + 4000])
        if self.left_running:
            self.problems.append("left behind after the swarm ended (nodes running, 45 s): "
                                 + "; ".join(self.left_running))
        if left:
            self.problems.append("left behind after the nodes stopped: " + "; ".join(left))
        self.left = left

    # -- checks -----------------------------------------------------------------------------
    def check_store(self, final):
        """What is missing or duplicated in the store (empty list: nothing)."""
        out = []
        db = sqlite3.connect(f"file:{self.sw.store}?mode=ro", uri=True, timeout=10)
        try:
            rows = db.execute("SELECT iteration, node, count(*) FROM results WHERE swarm = ? "
                              "AND tag = 'metrics' GROUP BY iteration, node",
                              (self.sid,)).fetchall()
            logs = db.execute("SELECT iteration, task, node, count(*) FROM task_logs WHERE "
                              "swarm = ? GROUP BY iteration, task, node",
                              (self.sid,)).fetchall()
            sched = [bytes(t) if not isinstance(t, str) else t.encode() for (t,) in db.execute(
                "SELECT text FROM task_logs WHERE swarm = ?", (self.sid,)).fetchall()]
        finally:
            db.close()
        nodes = sorted({n for _, n, _ in rows} | {n for _, _, n, _ in logs})
        self.store_nodes = nodes
        if len({n for _, n, _ in rows}) != self.n and final:
            out.append(f"metrics came from {len({n for _, n, _ in rows})} node(s), not {self.n}")
        for it in range(self.rounds):
            got = [r for r in rows if r[0] == it]
            if len(got) != self.n:
                out.append(f"round {it + 1}: metrics of {len(got)} node(s), not {self.n}")
            for _, node, c in got:
                if c != 1:
                    out.append(f"round {it + 1}: node {node[:8]}'s metrics stored {c} times")
        extra = sorted({r[0] for r in rows if not 0 <= r[0] < self.rounds})
        if extra:
            out.append(f"metrics of iterations beyond the {self.rounds} rounds: {extra}")
        # logs: per round, two tasks on every node (worker, worker_test) and two on one node
        # (aggregator, scheduler); each instance's logs exactly once
        for it in range(self.rounds):
            got = [r for r in logs if r[0] == it]
            per_task = {}
            for _, task, node, c in got:
                per_task.setdefault(task, []).append(node)
                if c != 1:
                    out.append(f"round {it + 1}: logs of task {task[:8]} on node {node[:8]} "
                               f"stored {c} times")
            shape = sorted(len(v) for v in per_task.values())
            if shape != sorted([1, 1, self.n, self.n]):
                out.append(f"round {it + 1}: logs of {len(got)} instance(s), per task {shape}, "
                           f"not [1, 1, {self.n}, {self.n}]")
        extra = sorted({r[0] for r in logs if not 0 <= r[0] < self.rounds})
        if extra:
            out.append(f"logs of iterations beyond the {self.rounds} rounds: {extra}")
        want = f"round limit {self.rounds} reached".encode()
        if not any(want in t for t in sched):
            out.append(f"no scheduler log says '{want.decode()}'")
        if final:
            self.stored = {"metrics": len(rows), "logs": len(logs)}
        return out

    def leftovers(self, processes=False):
        """What the nodes' tasks left: state folders, cgroups, overlay mounts, runc containers
        and (with processes) task processes."""
        out = []
        xids = [self.node_xid(i) for i in range(self.n)]
        homes = [str(nd.home) + "/" for nd in self.sw.nodes]
        for i, x in enumerate(xids):
            if not x:
                out.append(f"node{i}: no single state folder")
                continue
            state = self.sw.nodes[i].home / ".manta" / "state"
            # the task table, undelivered outcomes and logs, the runtime's own task records
            dirs = [state / x / "tasks", state / x / "outbox"]
            dirs += sorted(state.glob(f"runtime/*/{x}-*"))
            for d in dirs:
                entries = sorted(p.name for p in d.iterdir()) if d.is_dir() else []
                if entries:
                    out.append(f"node{i}: state files in {d.relative_to(state)}: {entries}")
        # task names are manta-<node xid:8>-<owner tag>-...: the tag (BLAKE3 of the node's task
        # folder) tells this run's nodes from other nodes of the same alias on this host
        prefixes = tuple(f"manta-{o[:8]}-{o.rsplit('-', 1)[1]}-" for o in self.owners())
        for hier in pathlib.Path("/sys/fs/cgroup").glob("**/manta"):
            try:
                for d in hier.iterdir():
                    if d.is_dir() and d.name.startswith(prefixes):
                        out.append(f"cgroup {d}")
            except OSError:
                pass
        try:
            mounts = pathlib.Path("/proc/mounts").read_text().splitlines()
        except OSError:
            mounts = []
        for m in mounts:
            if any(h in m for h in homes):
                out.append(f"mount {m.split()[1]}")
        if self.runtime == "runc" and os.path.isdir(RUNC_ROOT):
            p = subprocess.run(["runc", "--root", RUNC_ROOT, "list", "-q"], capture_output=True,
                               text=True, timeout=30)
            out += [f"runc container {c}" for c in p.stdout.split() if c.startswith(prefixes)]
        if processes:
            for pid in os.listdir("/proc"):
                if not pid.isdigit() or int(pid) == os.getpid():
                    continue
                try:
                    cmd = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
                    cg = open(f"/proc/{pid}/cgroup").read()
                except OSError:
                    continue
                if any(h in cmd for h in homes) or (prefixes and any(p in cg for p in prefixes)):
                    out.append(f"process {pid} {cmd.replace(chr(0), ' ')[:120]}")
        return out

    # -- the end ----------------------------------------------------------------------------
    def teardown(self):
        # keep every process's output for a post-mortem
        for i, runs in enumerate(self.node_runs):
            for g, r in enumerate(runs):
                try:
                    (self.tmp / f"node{i}.{g}.log").write_text(
                        "\n".join(r.out) + "\n---- stderr\n" + "\n".join(r.err) + "\n")
                except OSError:
                    pass
        if self.sw:
            self.sw.close()   # the manager (SIGTERM), nodes, broker, stray task processes
        if self.mgr_log:
            self.mgr_log.close()
        if self.store_dir:
            shutil.rmtree(self.store_dir, ignore_errors=True)

    def manager_troubles(self, keep=60):
        """The manager log's lines about lost nodes, re-placed or dropped instances, warnings
        and errors, and its restarts (the last `keep`)."""
        marks = ("==== serve", "WARNING", "ERROR", "lost", "carrying on", "placing it again",
                 "deploying it again", "not heard from")
        try:
            text = (self.tmp / "manager.log").read_text(errors="replace")
        except OSError:
            return ["(no manager log)"]
        return [x for x in text.splitlines() if any(m in x for m in marks)][-keep:]

    def report(self):
        ok = not self.problems
        lines = [f"chaos: seed {self.seed}, {self.n} nodes, {self.rounds} rounds, runtime "
                 f"{self.runtime}"]
        lines.append(f"chaos: {len(self.faults)} fault(s) injected and survived"
                     if ok else f"chaos: {len(self.faults)} fault(s) injected")
        for f in self.faults:
            lines.append("  " + f.describe())
        counts = {k: sum(1 for f in self.faults if f.kind == k) for k in KINDS}
        lines.append("  by kind: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if hasattr(self, "duration"):
            lines.append(f"chaos: swarm ended after {self.duration:.1f} s "
                         f"({self.final.get('status')}: {self.final.get('detail', '')})")
        if hasattr(self, "stored"):
            lines.append(f"chaos: stored {self.stored['metrics']} metrics results "
                         f"(want {self.rounds * self.n}) and the logs of {self.stored['logs']} "
                         f"task instances (want {self.rounds * (2 * self.n + 2)})")
        lines.append("chaos: lost: nothing" if ok else "chaos: PROBLEMS:")
        lines += ["  " + p for p in self.problems]
        if not ok:   # what the manager saw go wrong: CI keeps no files, the report must tell
            lines.append("chaos: the manager's warnings and the swarm's troubles:")
            lines += ["  " + x for x in self.manager_troubles()]
        lines.append(f"chaos: logs in {self.tmp}")
        for line in lines:
            self.log(line)
        return {"ok": ok, "seed": self.seed, "faults": [(f.kind, f.target, f.iteration, f.down)
                                                         for f in self.faults],
                "problems": list(self.problems), "duration": getattr(self, "duration", None),
                "text": "\n".join(lines)}
