"""Running tasks end to end with the `process` runtime (no containers needed): the manager's
deploy_task makes the node run `python /usr/src/module.pyz` with the contract's environment,
report PENDING/RUNNING, upload the logs (52-byte header + zlib), enforce the concurrency cap and
the timeout, stop tasks and swarms, run the new payload of a new iteration, refuse GPUs it does
not have, survive its own SIGKILL (adopt, upload once) and clean up on SIGTERM."""
import io
import signal
import time
import zipfile


from test_node_wire import TOKEN
from wire_env import (RunningNode, node_config, system_pb2,
                      tasks_pb2, wait_for, xid)

NODE = (17836332393262621160, 5839336928621298787)  # alias "default"
NODE_XID = "f78761cf8c3621e851097dff9a4b0463"
SWARM = (0x1234, 0xABCDEF)


def module(main_py: str) -> bytes:
    """A zip application as the SDK builds it: __main__.py imports the user module."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("job.py", main_py)
        z.writestr("__main__.py", "# -*- coding: utf-8 -*-\nimport job\njob.main()\n")
    return buf.getvalue()


PRINT_ENV = module(
    "import os, sys\n"
    "def main():\n"
    "    for k in ('TASK_ID', 'SWARM_ID', 'RPC_HOST', 'RPC_PORT'):\n"
    "        print(f'{k}={os.environ.get(k)}')\n"
    "    print('ARGV=' + ' '.join(sys.argv))\n"
    "    sys.exit(int(os.environ.get('MANTA_ITERATION', '0')) % 7)\n")


def sleeper(seconds):
    return module(f"import time\ndef main():\n    print('start', flush=True)\n"
                  f"    time.sleep({seconds})\n    print('end')\n")


def mqtt_task(task, payload, iteration=0, gpu=False, image="manta-task:bookworm"):
    return tasks_pb2.MqttTask(
        swarm_id=system_pb2.PairId(head=SWARM[0], tail=SWARM[1]),
        task_id=system_pb2.PairId(head=0, tail=task), iteration=iteration, circular=0,
        payload=payload, image=image, alias="job", network="None", auth_key="None",
        login_server="None", gpu=gpu).SerializeToString()


def start(node, manager, extra=""):
    node.write_config("default", node_config(TOKEN, manager.port, extra=extra))
    rn = RunningNode(node)
    rn.wait_line("✓ Ready to execute tasks")
    return rn


def send(obs, cmd, payload):
    obs.publish(f"manta/nodes/{NODE_XID}/{cmd}", payload)


def updates(obs, task):
    out = []
    for p, _ in obs.on("manager/update_task_status"):
        u = tasks_pb2.TaskUpdate.FromString(p)
        if u.task_id.tail == task:
            out.append(u.task_status)
    return out


def logs_of(manager, task):
    return [(h, t) for h, t in manager.task_logs() if h["task"] == (0, task)]


def test_task_runs_with_the_contract_environment(node, world):
    _, m, o = world
    rn = start(node, m)
    try:
        assert "Task runtime: process" in rn.out
        send(o, "deploy_task", mqtt_task(1, PRINT_ENV, iteration=3))
        hdr, text = wait_for(lambda: logs_of(m, 1), 20, what="the task's logs")[0]
        assert hdr["swarm"] == SWARM and hdr["node"] == NODE and hdr["iteration"] == 3
        port = [l for l in text.splitlines() if l.startswith("RPC_PORT=")][0].split("=")[1]
        assert f"TASK_ID=01\nSWARM_ID={xid(*SWARM)}\nRPC_HOST=127.0.0.1\n" in text
        assert int(port) > 0
        argv = [l for l in text.splitlines() if l.startswith("ARGV=")][0]
        assert argv.endswith(".pyz")  # python <the module> (the host file: no mount here)
        st = updates(o, 1)
        assert st[:2] == [tasks_pb2.PENDING, tasks_pb2.RUNNING]
        # after the logs, the outcome: exit code 3 is a failure (the reference never says)
        st = wait_for(lambda: len(updates(o, 1)) >= 3 and updates(o, 1), 10, what="FAILED")
        assert st[2] == tasks_pb2.FAILED, st
        log = (node.home / ".manta/logs/nodes/default.log").read_text()
        wait_for(lambda: "exit code 3" in (node.home / ".manta/logs/nodes/default.log").read_text(),
                 5, what="the exit code in the node's log")
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait(60) == 0


def test_concurrency_cap_timeout_and_stop(node, world):
    _, m, o = world
    node.write_config("default", node_config(TOKEN, m.port).replace(
        '[tasks]\nstate_dir = "~/.manta/state"\n',
        '[tasks]\nstate_dir = "~/.manta/state"\ntask_timeout = 4\n'
        '[resources]\nmax_concurrent_tasks = 1\n'))
    rn = RunningNode(node)
    try:
        rn.wait_line("✓ Ready to execute tasks")
        send(o, "deploy_task", mqtt_task(10, sleeper(30)))  # killed by the timeout
        send(o, "deploy_task", mqtt_task(11, sleeper(0.5)))  # waits for the slot
        wait_for(lambda: tasks_pb2.RUNNING in updates(o, 10), 10, what="task 10 running")
        time.sleep(1.5)
        assert tasks_pb2.RUNNING not in updates(o, 11)  # the cap: one at a time
        wait_for(lambda: logs_of(m, 10), 20, what="task 10's logs after the timeout")
        wait_for(lambda: logs_of(m, 11), 20, what="task 11 after the slot freed")
        text = (node.home / ".manta/logs/nodes/default.log").read_text()
        assert "exceeded tasks.task_timeout" in text and "timed out" in text
        # stop_task on a running task
        send(o, "deploy_task", mqtt_task(12, sleeper(30)))
        wait_for(lambda: tasks_pb2.RUNNING in updates(o, 12), 10, what="task 12 running")
        send(o, "stop_task", system_pb2.EnvId(
            swarm_id=system_pb2.PairId(head=SWARM[0], tail=SWARM[1]),
            task_id=system_pb2.PairId(tail=12)).SerializeToString())
        wait_for(lambda: tasks_pb2.STOPPED in updates(o, 12), 20, what="STOPPED")
        wait_for(lambda: logs_of(m, 12), 20, what="task 12's logs")
        # unknown task
        send(o, "stop_task", system_pb2.EnvId(
            swarm_id=system_pb2.PairId(tail=1), task_id=system_pb2.PairId(tail=99)).SerializeToString())
        err = wait_for(lambda: [c for c in m.named("SendError") if "Unable to stop task" in
                                c.request.content], 10, what="the error")[0].request
        assert err.error_id == 19
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait(60) == 0


def test_redeploy_new_iteration_runs_new_payload_and_gpu_refused(node, world):
    _, m, o = world
    rn = start(node, m)
    try:
        send(o, "deploy_task", mqtt_task(20, module("def main():\n    print('first')\n"), 1))
        wait_for(lambda: logs_of(m, 20), 20, what="iteration 1")
        send(o, "deploy_task", mqtt_task(20, module("def main():\n    print('first')\n"), 1))
        err = wait_for(lambda: [c for c in m.named("SendError") if "already running" in
                                c.request.content], 10, what="the duplicate error")[0].request
        assert err.error_id == 19
        send(o, "deploy_task", mqtt_task(20, module("def main():\n    print('second')\n"), 2))
        wait_for(lambda: len(logs_of(m, 20)) >= 2, 20, what="iteration 2")
        hdr, text = logs_of(m, 20)[1]
        assert hdr["iteration"] == 2 and "second" in text  # the NEW payload ran
        send(o, "deploy_task", mqtt_task(21, PRINT_ENV, gpu=True))
        err = wait_for(lambda: [c for c in m.named("SendError") if c.request.error_id == 18], 10,
                       what="DOCKER_ERROR")[0].request
        assert err.content == "GPU support is not enabled for this container manager."
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait(60) == 0


def test_stop_swarm_and_graceful_shutdown_clean_up(node, world):
    _, m, o = world
    rn = start(node, m)
    try:
        send(o, "deploy_task", mqtt_task(30, sleeper(60)))
        send(o, "deploy_task", mqtt_task(31, sleeper(60)))
        wait_for(lambda: tasks_pb2.RUNNING in updates(o, 31), 10, what="both running")
        send(o, "stop_swarm", system_pb2.PairId(head=SWARM[0], tail=SWARM[1]).SerializeToString())
        wait_for(lambda: "Stopping 2 task(s) of swarm" in
                 (node.home / ".manta/logs/nodes/default.log").read_text(), 10, what="stop_swarm")
        state = node.home / ".manta/state" / NODE_XID / "tasks"
        wait_for(lambda: not list(state.iterdir()), 30, what="the swarm's tasks forgotten")
        # graceful shutdown with a task running: stopped, logs uploaded, then exit 0
        send(o, "deploy_task", mqtt_task(32, sleeper(60)))
        wait_for(lambda: tasks_pb2.RUNNING in updates(o, 32), 10, what="task 32 running")
        # RUNNING means started, not that Python has printed yet: wait for its first line
        wait_for(lambda: any("start" in p.read_text(errors="replace")
                             for p in state.glob("*/*/output.log")), 20,
                 what=lambda: f"task 32's output in {sorted(state.rglob('*'))}")
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait(60) == 0
    assert logs_of(m, 32)
    assert "start" in logs_of(m, 32)[0][1]


def test_node_sigkill_task_adopted_logs_once(node, world):
    _, m, o = world
    rn = start(node, m)
    send(o, "deploy_task", mqtt_task(40, sleeper(4)))
    wait_for(lambda: tasks_pb2.RUNNING in updates(o, 40), 10, what="task 40 running")
    rn.kill()  # SIGKILL: the task keeps running without its node
    rn = RunningNode(node)
    try:
        rn.wait_line("✓ Ready to execute tasks")
        text = lambda: (node.home / ".manta/logs/nodes/default.log").read_text()
        wait_for(lambda: "Adopted task" in text(), 10, what="the adoption")
        wait_for(lambda: logs_of(m, 40), 20, what="the adopted task's logs")
        time.sleep(3)
        assert len(logs_of(m, 40)) == 1
        assert "end" in logs_of(m, 40)[0][1]  # it ran to completion while the node was down
    finally:
        rn.signal(signal.SIGTERM)
        assert rn.wait(60) == 0


def test_stop_keep_tasks_then_adopt(node, world):
    """An agent upgrade: stop the agent, not its tasks; the next agent adopts them."""
    _, m, o = world
    node.write_config("default", node_config(TOKEN, m.port))
    p = node.run("start", "-d", timeout=60)
    assert p.returncode == 0, p.stderr
    send(o, "deploy_task", mqtt_task(50, sleeper(5)))
    wait_for(lambda: tasks_pb2.RUNNING in updates(o, 50), 10, what="running")
    p = node.run("stop", "--keep-tasks", timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "leaving its tasks running" in p.stdout
    assert not logs_of(m, 50)  # not stopped, so nothing uploaded yet
    state = node.home / ".manta/state" / NODE_XID / "tasks"
    assert list(state.iterdir())  # its state is kept for the next agent
    p = node.run("start", "-d", timeout=60)
    assert p.returncode == 0, p.stderr
    try:
        wait_for(lambda: logs_of(m, 50), 30, what="the adopted task's logs")
        assert "end" in logs_of(m, 50)[0][1]  # it ran to its end across the agent restart
    finally:
        node.run("stop", "--all", timeout=60)
