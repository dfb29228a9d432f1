"""A swarm for the dashboard's tests: a manager serving the dashboard (--http), real nodes
(process runtime), a user to sign in with, and a swarm that keeps running, one round every
second or two, until it is stopped (or 300 rounds): `worker` (every node) adds a `metrics`
result {val_acc, loss} and prints a line; `boss` reads them, counts the round and opens the
next one."""
import http.cookiejar
import json
import ssl
import time
import urllib.error
import urllib.request

from manager_env import LocalSwarm, module_dir
from wire_env import free_port, wait_for

PASSWORD = "dash-board-pass"

GRAPH = {
    "worker.py": (
        "import random\n"
        "from manta.light.task import Task\n"
        "class Worker(Task):\n"
        "    def run(self):\n"
        "        r = self.world.globals['round']\n"
        "        acc = 0.5 + 0.4 * (1 - 1 / (r + 1)) + 0.02 * random.random()\n"
        "        self.world.results.add('metrics', {'val_acc': acc, 'loss': 1 - acc})\n"
        "        print(f'worker round {r} val_acc {acc:.4f}', flush=True)\n"
        "def main():\n    Worker().run()\n"),
    "boss.py": (
        "import time\n"
        "from manta.light.task import Task\n"
        "class Boss(Task):\n"
        "    def run(self):\n"
        "        nodes = sorted(self.world.results.select('metrics'))\n"
        "        r = self.world.globals['round'] + 1\n"
        "        self.world.globals['round'] = r\n"
        "        print(f'boss closes round {r - 1}', flush=True)\n"
        "        if r >= 300:\n"
        "            self.world.stop_swarm()\n"
        "            return\n"
        "        time.sleep(0.5)\n"
        "        self.world.schedule_next_iter(node_ids=nodes, task_to_schedule_alias='worker')\n"
        "def main():\n    Boss().run()\n"),
}

SWARM = """
name = "dashboard"
[globals]
round = 0
[[tasks]]
module = "worker.py"
image = "none"
method = "all"
[[tasks]]
module = "boss.py"
image = "none"
method = "any"
fixed = true
maximum = 1
after = ["worker"]
"""


class Client:
    """A browser-like client of the dashboard: a cookie jar and the session's csrf value."""

    def __init__(self, base, cafile=None):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        handlers = [urllib.request.HTTPCookieProcessor(self.jar)]
        if cafile:
            ctx = ssl.create_default_context(cafile=str(cafile))
            handlers.append(urllib.request.HTTPSHandler(context=ctx))
        self.opener = urllib.request.build_opener(*handlers)
        self.csrf = None

    def request(self, method, path, body=None, headers=None, raw=None, timeout=30):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                            else None)
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, method, path, body=None, headers=None):
        status, hdrs, data = self.request(method, path, body, headers)
        return status, json.loads(data), hdrs

    def get(self, path):
        return self.json("GET", path)

    def post(self, path, body=None, csrf=True):
        h = {"X-Manta-Csrf": self.csrf} if csrf and self.csrf else {}
        return self.json("POST", path, body if body is not None else {}, h)

    def login(self, user="ana", password=PASSWORD):
        st, body, hdrs = self.json("POST", "/api/login", {"user": user, "password": password})
        assert st == 200, body
        self.csrf = body["csrf"]
        return body, hdrs


class DashboardSwarm(LocalSwarm):
    """LocalSwarm + the dashboard on a free port + user `ana`."""

    def __init__(self, tmp, node_bin, nodes=2, config=None):
        super().__init__(tmp, node_bin, nodes=nodes)
        self.http_port = free_port()
        self.config = config
        pw = tmp / "password"
        pw.write_text(PASSWORD + "\n")
        self.manager("user", "create", "ana", "--password-file", str(pw), "--store",
                     str(self.store))
        self.swarm_dir = module_dir(tmp, GRAPH)
        (self.swarm_dir / "swarm.toml").write_text(SWARM)

    def base(self, scheme="http"):
        return f"{scheme}://127.0.0.1:{self.http_port}"

    def http_args(self):
        return ["--http", f"127.0.0.1:{self.http_port}"] + (
            ["--config", str(self.config)] if self.config else [])

    def start(self, serve=False):
        """The swarm, its nodes, and a wait until it has run two rounds (results stored).
        serve: `manta_manager serve` and `submit` (the manager stays up when the swarm ends),
        else `manta_manager run` (it ends with the swarm)."""
        if serve:
            self.start_serve(*self.http_args())
            self.start_nodes()
            wait_for(lambda: len([n for n in self.admin_json("nodes")["nodes"]
                                  if n.get("connected")]) == len(self.nodes),
                     timeout=60, interval=0.5, what="the nodes connected")
            self.admin("submit", str(self.swarm_dir / "swarm.toml"))
        else:
            self.start_run(self.swarm_dir / "swarm.toml", "--timeout", "900", *self.http_args())
            self.start_nodes()
        c = Client(self.base())
        wait_for(lambda: self._up(c), timeout=60, interval=0.2, what="the dashboard")
        c.login()
        self.swarm = wait_for(lambda: self._running(c), timeout=120, interval=0.5,
                              what="a running swarm")
        wait_for(lambda: self.rounds(c) >= 2, timeout=180, interval=0.5,
                 what="two rounds of metrics")
        return self

    def _up(self, c):
        try:
            return c.request("GET", "/")[0] == 200
        except OSError:
            return False

    def _running(self, c):
        st, body, _ = c.get("/api/swarms")
        live = [s for s in body.get("swarms", []) if s["status"] == "RUNNING"]
        return live[0]["id"] if live else None

    def rounds(self, c):
        st, body, _ = c.get(f"/api/swarms/{self.swarm}/series?key=metrics.val_acc")
        return len(body.get("mean", [])) if st == 200 else 0


def wait_rounds(sw, c, more, timeout=180):
    now = sw.rounds(c)
    wait_for(lambda: sw.rounds(c) >= now + more, timeout=timeout, interval=0.5,
             what=f"{more} more round(s) of metrics")
    return sw.rounds(c)


def sleep_until(pred, timeout, step=0.2):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None
