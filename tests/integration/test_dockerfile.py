"""The Dockerfile: built offline from the locally imported Debian base in an isolated dockerd,
then run as the operator guide shows (host Docker socket, MANTA_NODE_TOKEN from the
environment): the containerised node registers, and runs a task as a sibling container."""
import os
import subprocess
import time

import pytest

from conftest import SOURCE_DIR
from runtimes import IMAGE, Dockerd, task_image_tarball
from test_node_wire import TOKEN
from test_tasks_process import NODE_XID, logs_of, module, mqtt_task, send
from wire_env import Broker, FakeManager, Observer, node_config, wait_for

DOCKER = "/usr/bin/docker"

if os.environ.get("MANTA_SANITIZED"):
    # The image compiles its own Release binary from the sources; building it again in the
    # sanitizer pass would test nothing new and cost minutes.
    pytestmark = pytest.mark.skip(reason="the Dockerfile is tested once, in the plain build")


@pytest.fixture(scope="module")
def dockerd():
    d = Dockerd()
    try:
        d.import_image(task_image_tarball())
        yield d
    finally:
        d.stop()


def docker(d, *args, timeout=120, **kw):
    env = dict(os.environ, DOCKER_BUILDKIT="0")
    return subprocess.run([DOCKER, "-H", f"unix://{d.sock}", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, **kw)


def test_dockerfile_builds_and_the_node_runs_in_a_container(dockerd, tmp_path):
    p = docker(dockerd, "build", "--network", "host", "--build-arg", f"BASE={IMAGE}", "-t",
               "manta/node:test", str(SOURCE_DIR), timeout=1800)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    b = Broker(tmp_path / "broker").start()
    m = FakeManager(b, token=TOKEN).start()
    o = Observer(b)
    home = tmp_path / "home"
    (home / ".manta" / "nodes").mkdir(parents=True)
    (home / ".manta" / "nodes" / "default.toml").write_text(
        node_config("${MANTA_NODE_TOKEN}", m.port,
                    containers='[containers]\nruntime = "docker"\n'))
    name = f"manta-node-test-{os.getpid()}"
    try:
        p = docker(dockerd, "run", "-d", "--name", name, "--network", "host",
                   "-v", f"{dockerd.sock}:/var/run/docker.sock",
                   "-e", f"HOME={home}", "-v", f"{home}/.manta:{home}/.manta",
                   "-e", f"MANTA_NODE_TOKEN={TOKEN}", "manta/node:test")
        assert p.returncode == 0, p.stderr
        m.wait_call("RegisterNode", timeout=60)
        wait_for(lambda: "✓ Ready to execute tasks" in docker(dockerd, "logs", name).stdout, 30,
                 what="the containerised node to be ready")
        # it runs a task as a sibling container on the host's Docker
        send(o, "deploy_task", mqtt_task(60, module("def main():\n    print('sibling')\n"),
                                         image=IMAGE))
        _, text = wait_for(lambda: logs_of(m, 60), 90, what="the task's logs")[0]
        assert "sibling" in text
    finally:
        logs = docker(dockerd, "logs", name)
        docker(dockerd, "stop", "-t", "30", name, timeout=90)
        out = docker(dockerd, "logs", name).stdout
        docker(dockerd, "rm", "-f", name)
        o.close()
        m.stop()
        b.stop()
    assert "Node stopped gracefully" in out, logs.stdout + logs.stderr
