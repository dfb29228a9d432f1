"""The dashboard's JSON API (docs/dashboard.md) against a real manager, real nodes and a running
swarm: nothing but the page is served without a session; sign-in by password and by user token;
the shape of every answer; the live stream; the one write (stop) and its CSRF guard; sessions
ending by sign-out, by expiry and with their user; bad input; HTTPS with tls_cert/tls_key."""
import http.client
import json
import re
import socket
import subprocess
import time

import pytest

from dashboard_env import PASSWORD, Client, DashboardSwarm, wait_rounds
from manager_env import LocalSwarm
from test_node_tls import pki  # noqa: F401  (the fixture: a CA, server and client certs)
from wire_env import free_port, wait_for

HEX32 = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def dash(tmp_path_factory, node_bin):
    sw = DashboardSwarm(tmp_path_factory.mktemp("dash"), node_bin, nodes=2).start()
    yield sw
    sw.close()


@pytest.fixture
def client(dash):
    c = Client(dash.base())
    c.login()
    return c


def api_paths(swarm):
    return [("GET", "/api/session"), ("GET", "/api/nodes"), ("GET", "/api/swarms"),
            ("GET", f"/api/swarms/{swarm}"), ("GET", f"/api/swarms/{swarm}/keys"),
            ("GET", f"/api/swarms/{swarm}/series?key=metrics.val_acc"),
            ("GET", f"/api/swarms/{swarm}/logs"), ("GET", "/api/events"),
            ("POST", f"/api/swarms/{swarm}/stop"), ("POST", "/api/logout")]


def test_nothing_but_the_page_without_a_session(dash):
    c = Client(dash.base())
    for method, path in api_paths(dash.swarm):
        st, hdrs, body = c.request(method, path, {} if method == "POST" else None)
        assert st == 401, (path, st, body)
        assert hdrs["Content-Type"] == "application/json", path
        assert "Sign in" in json.loads(body)["error"], body
    # a forged or stale cookie is no session either
    c.jar.set_cookie(_cookie("manta_session", "0" * 64))
    assert c.get("/api/nodes")[0] == 401
    # the page itself (no data) is served, with its security headers
    st, hdrs, body = c.request("GET", "/")
    assert st == 200 and hdrs["Content-Type"].startswith("text/html"), hdrs
    assert "default-src 'self'" in hdrs["Content-Security-Policy"]
    assert hdrs["X-Content-Type-Options"] == "nosniff" and hdrs["X-Frame-Options"] == "DENY"
    for asset, kind in (("/app.js", "text/javascript"), ("/app.css", "text/css")):
        st, hdrs, body = c.request("GET", asset)
        assert st == 200 and hdrs["Content-Type"].startswith(kind) and len(body) > 100, asset
    assert c.request("GET", "/favicon.ico")[0] == 204  # none, and no 404 in the console
    assert c.request("GET", "/nope.html")[0] == 404
    assert c.request("GET", "/../../etc/passwd")[0] == 404


def _cookie(name, value):
    import http.cookiejar
    return http.cookiejar.Cookie(0, name, value, None, False, "127.0.0.1", False, False, "/",
                                 True, False, None, False, None, None, {})


def test_sign_in(dash):
    c = Client(dash.base())
    t0 = time.monotonic()
    st, body, _ = c.json("POST", "/api/login", {"user": "ana", "password": "wrong-password"})
    assert st == 401 and body["error"] == "The user name or the password is wrong.", body
    assert time.monotonic() - t0 >= 0.9  # a refused sign-in is answered late
    st, body2, _ = c.json("POST", "/api/login", {"user": "nobody", "password": "wrong-password"})
    assert st == 401 and body2 == body  # the same answer for an unknown user
    st, body, _ = c.json("POST", "/api/login", {"user": "ana"})
    assert st == 400 and "Sign in with" in body["error"]
    st, _, raw = c.request("POST", "/api/login", raw=b"{not json")
    assert st == 400
    assert c.json("GET", "/api/login")[0] == 405
    st, _, raw = c.request("POST", "/api/login", raw=b"x" * (17 * 1024))
    assert st == 413, raw
    assert not list(c.jar)  # no cookie for any of these

    session, hdrs = c.login("ana", PASSWORD)
    cookie = hdrs["Set-Cookie"]
    assert cookie.startswith("manta_session=") and "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie and "Secure" not in cookie  # plain HTTP here
    assert session["user"] == "ana" and re.match(r"^[0-9a-f]{64}$", session["csrf"])
    assert session["expires_ms"] > time.time() * 1000 + 7 * 3600 * 1000  # 8 h by default
    assert session["manager"]["node_port"] == dash.port
    st, again, _ = c.get("/api/session")
    assert st == 200 and again == session


def test_sign_in_with_a_user_token(dash):
    tok = dash.manager("token", "create", "--user", "ana", "--store",
                       str(dash.store)).stdout.strip()
    c = Client(dash.base())
    st, body, _ = c.json("POST", "/api/login", {"token": tok})
    assert st == 200 and body["user"] == "ana", body
    assert c.get("/api/nodes")[0] == 200
    st, body, _ = Client(dash.base()).json("POST", "/api/login", {"token": tok[:-4] + "AAAA"})
    assert st == 401 and "token was refused" in body["error"], body


def test_nodes(dash, client):
    def loaded():
        st, body, _ = client.get("/api/nodes")
        nodes = body["nodes"]
        return body if all(n["cpu"] and n["history"] for n in nodes) and len(nodes) == 2 else None
    body = wait_for(loaded, timeout=60, interval=0.5, what="both nodes with a load sample")
    assert body["now_ms"] > 0
    assert sorted(n["alias"] for n in body["nodes"]) == ["node0", "node1"]
    for n in body["nodes"]:
        assert HEX32.match(n["id"]) and n["status"] == "CONNECTED", n
        assert n["hostname"] and n["platform"].startswith("Linux"), n
        assert n["datasets"] == [] and isinstance(n["running"], int), n
        assert 0 <= n["cpu"]["percent"] <= 100 and n["cpu"]["count"] >= 1, n
        assert 0 < n["memory"]["percent"] < 100 and 0 < n["memory"]["used"] < n["memory"]["total"]
        assert n["last_seen_ms"] > body["now_ms"] - 60000, n
        t, cpu, mem = n["history"][-1]
        assert t <= body["now_ms"] and 0 <= cpu <= 100 and 0 < mem < 100, n["history"]
    st, body, _ = client.get("/api/nodes?history=0")
    assert st == 200 and all("history" not in n for n in body["nodes"])


def test_swarms_and_one_swarm(dash, client):
    st, body, _ = client.get("/api/swarms")
    assert st == 200
    s = next(s for s in body["swarms"] if s["id"] == dash.swarm)
    assert s["name"] == "dashboard" and s["status"] == "RUNNING" and s["iteration"] >= 1, s
    assert s["detail"] == "" and s["updated_ms"] >= s["created_ms"] > 0, s

    wait_rounds(dash, client, 1)
    st, one, _ = client.get(f"/api/swarms/{dash.swarm}")
    assert st == 200 and one["id"] == dash.swarm and one["status"] == "RUNNING"
    g = one["graph"]
    assert [(t["alias"], t["method"], t["order"]) for t in g["tasks"]] == [
        ("worker", "all", 0), ("boss", "any", 1)], g
    assert g["edges"] == [{"from": "worker", "to": "boss"}]
    p = one["placement"]
    assert p["iteration"] == one["iteration"]
    assert p["tasks"], p
    for t in p["tasks"]:
        assert t["alias"] in ("worker", "boss") and HEX32.match(t["node"]), t
        assert t["node_alias"] in ("node0", "node1"), t
        assert t["state"] in ("DEPLOYED", "RUNNING", "DONE", "FAILED", "DROPPED", "STOPPED"), t
    h = one["history"]
    assert len(h) >= 2 and [e["iteration"] for e in h] == list(range(len(h))), h
    assert h[0]["instances"] == 3 and h[0]["errors"] == 0, h  # two workers + the boss
    assert h[0]["end_ms"] >= h[0]["start_ms"] > 0
    assert one["errors"] == []


def test_keys_and_series(dash, client):
    st, body, _ = client.get(f"/api/swarms/{dash.swarm}/keys")
    assert st == 200 and body["keys"] == ["metrics.loss", "metrics.val_acc"], body
    st, s, _ = client.get(f"/api/swarms/{dash.swarm}/series?key=metrics.val_acc")
    assert st == 200 and s["key"] == "metrics.val_acc" and s["seq"] > 0
    assert sorted(n["alias"] for n in s["nodes"]) == ["node0", "node1"]
    for n in s["nodes"]:
        its = [p[0] for p in n["points"]]
        assert its == sorted(its) and its[:2] == [0, 1], n
        assert all(0.5 <= v <= 0.95 for _, v in n["points"]), n
    mean = dict(map(tuple, s["mean"]))
    by_node = [dict(map(tuple, n["points"])) for n in s["nodes"]]
    for it, v in mean.items():
        vals = [b[it] for b in by_node if it in b]
        assert v == pytest.approx(sum(vals) / len(vals)), (it, vals, v)
    # after=SEQ: only what came since, with the mean of the iterations it touches
    seq = s["seq"]
    wait_rounds(dash, client, 1)
    st, more, _ = client.get(f"/api/swarms/{dash.swarm}/series?key=metrics.val_acc&after={seq}")
    assert st == 200 and more["seq"] > seq
    new_its = {p[0] for n in more["nodes"] for p in n["points"]}
    assert new_its and min(new_its) >= max(mean), (new_its, mean)
    assert {m[0] for m in more["mean"]} == new_its
    # the whole series again (kept between requests, read on from where it stopped): the first
    # answer's points and the new ones, each (node, iteration) once
    st, full, _ = client.get(f"/api/swarms/{dash.swarm}/series?key=metrics.val_acc")
    assert st == 200 and full["seq"] >= more["seq"]
    got = {(n["node"], p[0]): p[1] for n in full["nodes"] for p in n["points"]}
    assert len(got) == sum(len(n["points"]) for n in full["nodes"])
    for part in (s, more):
        for n in part["nodes"]:
            for it, v in n["points"]:
                assert got[(n["node"], it)] == pytest.approx(v), (n["node"], it)
    assert [m[0] for m in full["mean"]] == sorted({it for _, it in got})
    st, none, _ = client.get(f"/api/swarms/{dash.swarm}/series?key=metrics.val_acc"
                             f"&after={10**12}")
    assert st == 200 and none["nodes"] == [] and none["mean"] == []
    # a key that is no number of this swarm: empty, not an error
    st, other, _ = client.get(f"/api/swarms/{dash.swarm}/series?key=metrics.nope")
    assert st == 200 and other["nodes"] == [] and other["mean"] == []
    for bad in ("", "?key=", "?key=metrics.val_acc&after=x", "?key=metrics.val_acc&after=-1"):
        st, body, _ = client.get(f"/api/swarms/{dash.swarm}/series{bad}")
        assert st == 400 and body["error"], (bad, body)


def test_logs(dash, client):
    st, body, _ = client.get(f"/api/swarms/{dash.swarm}/logs")
    assert st == 200 and body["logs"], body
    logs = body["logs"]
    assert [entry["seq"] for entry in logs] == sorted(entry["seq"] for entry in logs)
    assert body["seq"] == logs[-1]["seq"]
    for entry in logs:
        assert HEX32.match(entry["node"]) and entry["node_alias"] in ("node0", "node1"), entry
        assert entry["task"] in ("worker", "boss") and entry["ts_ms"] > 0, entry
    assert any("worker round 0 val_acc" in e["text"] for e in logs)
    # search (case-insensitive), node, iteration, limit, after
    st, found, _ = client.get(f"/api/swarms/{dash.swarm}/logs?q=BOSS%20CLOSES%20round%200")
    assert st == 200 and [e["task"] for e in found["logs"]] == ["boss"], found
    node = logs[0]["node"]
    st, mine, _ = client.get(f"/api/swarms/{dash.swarm}/logs?node={node}&iteration=1")
    assert mine["logs"] and all(e["node"] == node and e["iteration"] == 1 for e in mine["logs"])
    st, two, _ = client.get(f"/api/swarms/{dash.swarm}/logs?limit=2")
    assert [e["seq"] for e in two["logs"]] == [e["seq"] for e in
                                                client.get(f"/api/swarms/{dash.swarm}/logs?limit=2000")[1]["logs"]][-2:]
    seq = body["seq"]
    wait_rounds(dash, client, 1)
    st, since, _ = client.get(f"/api/swarms/{dash.swarm}/logs?after={seq}")
    assert since["logs"] and all(e["seq"] > seq for e in since["logs"])
    for bad in ("?limit=0", "?limit=2001", "?iteration=-1", "?after=x", "?node=zz"):
        st, body, _ = client.get(f"/api/swarms/{dash.swarm}/logs{bad}")
        assert st == 400 and body["error"], (bad, body)


def test_unknown_things(dash, client):
    for path in ("/api/swarms/" + "0" * 32, "/api/swarms/xyz", "/api/swarms/" + "f" * 40,
                 "/api/swarms/" + "0" * 32 + "/keys", "/api/nope", f"/api/swarms/{dash.swarm}/x"):
        st, body, _ = client.get(path)
        assert st == 404 and body["error"], (path, body)
    st, body, _ = client.json("PUT", "/api/nodes")
    assert st == 405
    st, body, _ = client.json("GET", f"/api/swarms/{dash.swarm}/stop")
    assert st == 405


def _sse(dash, client, want, timeout=60):
    """Read the live stream until every event in `want` came; returns them in order."""
    cookie = "; ".join(f"{c.name}={c.value}" for c in client.jar)
    conn = http.client.HTTPConnection("127.0.0.1", dash.http_port, timeout=timeout)
    conn.request("GET", "/api/events", headers={"Cookie": cookie})
    r = conn.getresponse()
    assert r.status == 200 and r.getheader("Content-Type") == "text/event-stream"
    events, seen, end = [], set(), time.monotonic() + timeout
    event = None
    while not want <= seen and time.monotonic() < end:
        line = r.fp.readline().decode().rstrip("\n")
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            events.append((event, json.loads(line[6:])))
            seen.add(event)
    conn.close()
    return events


def test_live_events(dash, client):
    events = _sse(dash, client, {"hello", "nodes", "change"})
    kinds = [e for e, _ in events]
    assert kinds[0] == "hello" and events[0][1] == {"user": "ana"}, events
    nodes = next(d for e, d in events if e == "nodes")
    assert len(nodes["nodes"]) == 2 and all("history" not in n for n in nodes["nodes"])
    change = next(d for e, d in events if e == "change")
    assert isinstance(change["gen"], int)


def test_sessions_end(dash):
    # sign-out
    c = Client(dash.base())
    c.login()
    assert c.post("/api/logout", csrf=False)[0] == 403  # a POST needs the csrf header
    st, body, hdrs = c.post("/api/logout")
    assert st == 200 and body == {"ok": True}
    assert "Max-Age=0" in hdrs["Set-Cookie"]
    assert c.get("/api/nodes")[0] == 401
    # the user removed: their sessions end, the live stream too
    pw = dash.tmp / "bob-password"
    pw.write_text("bob-password-1\n")
    dash.manager("user", "create", "bob", "--password-file", str(pw), "--store", str(dash.store))
    b = Client(dash.base())
    b.login("bob", "bob-password-1")
    assert b.get("/api/swarms")[0] == 200
    dash.manager("user", "delete", "bob", "--store", str(dash.store))
    assert b.get("/api/swarms")[0] == 401


def test_stop_the_swarm(dash, client):
    """Last of the module: the one write ends the swarm."""
    st, body, _ = client.post(f"/api/swarms/{dash.swarm}/stop", csrf=False)
    assert st == 403 and "X-Manta-Csrf" in body["error"]
    st, body, _ = client.json("POST", f"/api/swarms/{dash.swarm}/stop", {},
                              {"X-Manta-Csrf": "0" * 64})
    assert st == 403
    assert client.get(f"/api/swarms/{dash.swarm}")[1]["status"] == "RUNNING"
    st, body, _ = client.post(f"/api/swarms/{dash.swarm}/stop")
    assert st == 200 and body == {"ok": True, "message": f"Swarm {dash.swarm} has stopped."}
    st, one, _ = client.get(f"/api/swarms/{dash.swarm}")
    assert one["status"] == "STOPPED" and "stopped by user ana" in one["detail"], one
    st, body, _ = client.post(f"/api/swarms/{dash.swarm}/stop")
    assert st == 409 and "already ended (STOPPED)" in body["error"], body
    rc, out = dash.wait(timeout=120)  # `manta_manager run` ends with its swarm
    assert rc == 0 and "STOPPED" in out, out


def test_session_expiry_and_https(tmp_path, node_bin, pki):  # noqa: F811
    cfg = tmp_path / "manager.toml"
    cfg.write_text(f'tls_cert = "{pki}/server.crt"\ntls_key = "{pki}/server.key"\n'
                   "http_session_ttl = 5\n")
    sw = LocalSwarm(tmp_path, node_bin, nodes=0)
    port = free_port()
    pw = tmp_path / "pw"
    pw.write_text(PASSWORD + "\n")
    sw.manager("user", "create", "ana", "--password-file", str(pw), "--store", str(sw.store))
    try:
        sw.start_serve("--config", str(cfg), "--http", f"127.0.0.1:{port}")
        c = Client(f"https://127.0.0.1:{port}", cafile=pki / "ca.crt")
        wait_for(lambda: _https_up(c), timeout=30, interval=0.2, what="the dashboard over TLS")
        session, hdrs = c.login()
        assert "Secure" in hdrs["Set-Cookie"] and "HttpOnly" in hdrs["Set-Cookie"]
        assert c.get("/api/swarms")[0] == 200
        # plain HTTP on the TLS port is refused
        with pytest.raises((http.client.HTTPException, ConnectionError, socket.timeout, OSError)):
            h = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            h.request("GET", "/api/session")
            h.getresponse().read()
        time.sleep(max(0.0, session["expires_ms"] / 1000 - time.time()) + 0.5)
        st, body, _ = c.get("/api/swarms")
        assert st == 401 and "ended" in body["error"], body
        sw.proc.terminate()
        out = sw.proc.communicate(timeout=30)[0]
        assert f"dashboard on https://127.0.0.1:{port}/" in out, out
    finally:
        sw.close()


def _https_up(c):
    try:
        return c.request("GET", "/")[0] == 200
    except OSError:
        return False


def test_bad_address_is_a_clear_error(tmp_path, node_bin):
    sw = LocalSwarm(tmp_path, node_bin, nodes=0)
    try:
        for addr, words in (("nowhere", "is not HOST:PORT"),
                            ("203.0.113.9:8080", "could not be served on 203.0.113.9:8080")):
            p = subprocess.run([sw.mgr, "serve", *sw.common_args(), "--http", addr],
                               capture_output=True, text=True, env=sw.env, timeout=60)
            assert p.returncode != 0 and words in p.stderr, (addr, p.stderr)
            assert "Traceback" not in p.stderr and "Assertion" not in p.stderr
    finally:
        sw.close()
