"""A chaos test (issue 13): FedAvg on real data (Fashion-MNIST) on 4 nodes for 10 rounds while
a seeded random driver SIGKILLs and restarts nodes, restarts the broker and restarts the
manager (SIGKILL and SIGTERM). It passes when the swarm ends normally, every round's results
and every task instance's logs are stored exactly once, and nothing is left behind (see
chaos_driver.py). The seed is printed; MANTA_CHAOS_SEED=N replays a run's faults (their
timing follows the swarm's progress). MANTA_CHAOS_RUNTIME=process|runc picks the runtime;
by default runc when it can run here (root, runc, overlayfs) and the task image is already
cached (building it takes longer than this test may), else process. bench/chaos.py is the long
version."""
import os
import pathlib
import shutil

from chaos_driver import ChaosRun

ROUNDS = 10
FAULTS = 8
# Seconds for the whole run (set-up, swarm, checks). The deadline scales with the binaries'
# speed: sanitizer builds run the same work several times slower (CTest allows 900 s a file).
DEADLINE = 330
DEADLINE_SANITIZED = 800


def sanitized(binary):
    with open(binary, "rb") as f:
        return b"AddressSanitizer" in f.read()


def default_runtime():
    cache = pathlib.Path(os.environ.get("MANTA_IMAGE_CACHE",
                                        pathlib.Path.home() / ".cache" / "manta" / "images"))
    try:
        overlay = "\toverlay\n" in pathlib.Path("/proc/filesystems").read_text()
    except OSError:
        overlay = False
    if (os.geteuid() == 0 and shutil.which("runc") and overlay
            and (cache / "manta-task%3Abookworm.tar.gz").exists()):
        return "runc"
    return "process"


def test_fedavg_survives_chaos(tmp_path, node_bin):
    seed = os.environ.get("MANTA_CHAOS_SEED")
    run = ChaosRun(tmp_path, node_bin, nodes=4, rounds=ROUNDS, faults=FAULTS,
                   seed=int(seed) if seed else None,
                   runtime=os.environ.get("MANTA_CHAOS_RUNTIME") or default_runtime(),
                   train=3000, test=500,
                   deadline=DEADLINE_SANITIZED if sanitized(node_bin) else DEADLINE,
                   round_timeout=200 if sanitized(node_bin) else 90)
    rep = run.run()
    assert rep["ok"], rep["text"]
    assert len(rep["faults"]) >= 6, rep["text"]
