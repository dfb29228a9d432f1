"""`manta_node logs`: listing, instance choice, the last N lines, and --follow across appends,
rotation, truncation and Ctrl+C. Every wait is bounded; a follower is always killed."""
import os
import queue
import signal
import subprocess
import sys
import threading
import time

import pytest

DASHES = "-" * 60


def logs_dir(node):
    d = node.home / ".manta" / "logs" / "nodes"
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_log(node, name, text, mode="w"):
    path = logs_dir(node) / name
    with open(path, mode) as f:
        f.write(text)
    return path


def lines(a, b, prefix="line"):
    return "".join(f"{prefix} {i}\n" for i in range(a, b))


def out_lines(p):
    """stdout lines after the 'Using log file ...' line, if any."""
    ls = p.stdout.splitlines()
    if ls and ls[0].startswith("Using log file for instance: "):
        ls = ls[1:]
    return ls


def assert_usage(p, needle):
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert needle in p.stderr
    assert "Run 'manta_node logs --help' for usage." in p.stderr


# ---- help and usage ---------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["logs", "--help"], ["logs", "-h"], ["logs", "x", "--help"]])
def test_help(node, args):
    p = node.run(*args)
    assert p.returncode == 0, p.stderr
    assert "Usage: manta_node logs" in p.stdout
    for opt in ("--lines", "--follow", "--list"):
        assert opt in p.stdout


def test_listed_in_main_help(node):
    p = node.run("--help")
    assert p.returncode == 0
    assert "logs" in p.stdout and "View node logs" in p.stdout


@pytest.mark.parametrize("args,needle", [
    (["logs", "--bogus"], "Option '--bogus' is unknown"),
    (["logs", "-x"], "Option '-x' is unknown"),
    (["logs", "--lines"], "Option '--lines' needs a value"),
    (["logs", "-n"], "Option '-n' needs a value"),
    (["logs", "--lines", "abc"], "--lines takes a non-negative integer, not 'abc'"),
    (["logs", "-n", "-1"], "--lines takes a non-negative integer, not '-1'"),
    (["logs", "--lines=3x"], "--lines takes a non-negative integer, not '3x'"),
    (["logs", "--lines", ""], "--lines takes a non-negative integer, not ''"),
    (["logs", "--lines", " 3"], "--lines takes a non-negative integer"),
    (["logs", "a", "b"], "Too many arguments ('b')"),
])
def test_usage_errors(node, args, needle):
    write_log(node, "a.log", "x\n")
    assert_usage(node.run(*args), needle)


# ---- --list -----------------------------------------------------------------------------------

def test_list_none(node):
    p = node.run("logs", "--list")
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("No log files found.\n")
    assert "~/.manta/logs/nodes" in p.stdout
    assert "manta_node start" in p.stdout
    # Read-only: nothing was created.
    assert not (node.home / ".manta").exists()


def test_list_empty_folder(node):
    logs_dir(node)
    p = node.run("logs", "--list")
    assert p.returncode == 0
    assert "No log files found." in p.stdout


def test_list_several_with_sizes_and_rotation(node):
    write_log(node, "prod.log", "x" * (100 * 1024))           # 0.098 MiB -> 0.1
    write_log(node, "prod.log.1", "old\n")
    write_log(node, "prod.log.2.gz", "older")
    write_log(node, "alpha.log", "y" * (2621440))              # 2.5 MiB
    write_log(node, "empty.log", "")
    write_log(node, "orphan.log.1", "no current file\n")      # a backup without its .log
    write_log(node, "notes.txt", "not a log\n")
    write_log(node, ".hidden.log", "hidden\n")
    (logs_dir(node) / "folder.log").mkdir()
    p = node.run("logs", "--list")
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "Available log files:",
        "  - alpha (2.5 MB) - ~/.manta/logs/nodes/alpha.log",
        "  - empty (0.0 MB) - ~/.manta/logs/nodes/empty.log",
        "  - prod (0.1 MB, 2 rotated) - ~/.manta/logs/nodes/prod.log",
    ]


def test_list_ignores_other_options(node):
    write_log(node, "a.log", "1\n")
    p = node.run("logs", "zzz", "--list", "-n", "3")
    assert p.returncode == 0
    assert "  - a (0.0 MB) - ~/.manta/logs/nodes/a.log" in p.stdout


def test_rotated_file_is_not_an_instance(node):
    write_log(node, "prod.log", "current\n")
    write_log(node, "prod.log.1", "rotated\n")
    p = node.run("logs")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Using log file for instance: prod\ncurrent\n"
    p = node.run("logs", "prod.log.1")
    assert p.returncode == 1
    assert "Error: No log file found for instance 'prod.log.1'" in p.stderr


def test_manta_home(node, tmp_path):
    mh = tmp_path / "mh"
    (mh / "logs" / "nodes").mkdir(parents=True)
    (mh / "logs" / "nodes" / "w.log").write_text("from manta home\n")
    write_log(node, "other.log", "from ~/.manta\n")
    p = node.run("logs", "--list", env={"MANTA_HOME": str(mh)})
    assert p.returncode == 0
    assert f"  - w (0.0 MB) - {mh}/logs/nodes/w.log" in p.stdout
    assert "other" not in p.stdout
    p = node.run("logs", env={"MANTA_HOME": str(mh)})
    assert p.stdout == "Using log file for instance: w\nfrom manta home\n"


# ---- choosing the instance --------------------------------------------------------------------

def test_no_instance_one_file(node):
    write_log(node, "solo.log", lines(0, 3))
    p = node.run("logs")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Using log file for instance: solo\nline 0\nline 1\nline 2\n"


def test_no_instance_no_file(node):
    p = node.run("logs")
    assert p.returncode == 1
    assert "Error: No log files found and no instance specified" in p.stderr
    assert p.stdout == ""


def test_no_instance_several_files(node):
    write_log(node, "b.log", "1\n")
    write_log(node, "a.log", "1\n")
    p = node.run("logs")
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        "Error: Multiple log files found. Please specify an instance:", "  - a", "  - b"]
    assert p.stdout == ""


def test_exact_match_wins_over_prefix(node):
    write_log(node, "prod.log", "exact\n")
    write_log(node, "prod-2.log", "longer\n")
    p = node.run("logs", "prod")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "exact\n"


def test_unique_prefix(node):
    write_log(node, "production.log", "prefixed\n")
    write_log(node, "staging.log", "other\n")
    p = node.run("logs", "prod")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "Using log file for instance: production\nprefixed\n"


def test_ambiguous_prefix(node):
    write_log(node, "prod-a.log", "a\n")
    write_log(node, "prod-b.log", "b\n")
    write_log(node, "test.log", "t\n")
    p = node.run("logs", "prod")
    assert p.returncode == 1
    assert "Error: Instance 'prod' is ambiguous" in p.stderr
    assert "  - prod-a\n  - prod-b\n" in p.stderr
    assert "test" not in p.stderr
    assert p.stdout == ""


def test_unknown_instance(node):
    write_log(node, "a.log", "1\n")
    write_log(node, "b.log", "1\n")
    p = node.run("logs", "zzz")
    assert p.returncode == 1
    assert "Error: No log file found for instance 'zzz'" in p.stderr
    assert "Available log files:\n  - a\n  - b\n" in p.stderr


def test_unknown_instance_no_files(node):
    p = node.run("logs", "zzz")
    assert p.returncode == 1
    assert "Error: No log file found for instance 'zzz'" in p.stderr
    assert "No log files found." in p.stderr


# ---- the last N lines ------------------------------------------------------------------------

def test_default_is_50_lines(node):
    write_log(node, "a.log", lines(0, 120))
    p = node.run("logs", "a")
    assert p.returncode == 0
    assert out_lines(p) == [f"line {i}" for i in range(70, 120)]


@pytest.mark.parametrize("opt", [["-n", "3"], ["--lines", "3"], ["--lines=3"], ["-n3"]])
def test_three_lines(node, opt):
    write_log(node, "a.log", lines(0, 10))
    p = node.run("logs", *opt, "a")  # options before the instance
    assert p.returncode == 0, p.stderr
    assert p.stdout == "line 7\nline 8\nline 9\n"
    p = node.run("logs", "a", *opt)  # and after it
    assert p.stdout == "line 7\nline 8\nline 9\n"


def test_zero_lines(node):
    write_log(node, "a.log", lines(0, 10))
    p = node.run("logs", "a", "-n", "0")
    assert p.returncode == 0
    assert p.stdout == ""


def test_more_lines_than_the_file_has(node):
    write_log(node, "a.log", lines(0, 4))
    p = node.run("logs", "a", "-n", "1000")
    assert p.returncode == 0
    assert p.stdout == lines(0, 4)
    p = node.run("logs", "a", "-n", "99999999999999999999999")
    assert p.stdout == lines(0, 4)


def test_last_line_without_newline(node):
    write_log(node, "a.log", "one\ntwo\nthree")
    p = node.run("logs", "a", "-n", "2")
    assert p.stdout == "two\nthree\n"


def test_empty_lines_and_empty_file(node):
    write_log(node, "a.log", "x\n\n\ny\n")
    assert node.run("logs", "a", "-n", "3").stdout == "\n\ny\n"
    write_log(node, "e.log", "")
    p = node.run("logs", "e")
    assert p.returncode == 0 and p.stdout == ""


def test_lines_across_block_boundaries(node):
    # Lines of varied lengths around the reader's block size.
    body = "".join(f"{i} " + "z" * ((i * 7919) % 70000) + "\n" for i in range(60))
    write_log(node, "a.log", body)
    want = body.splitlines(keepends=True)
    for n in (1, 2, 5, 17, 59, 60, 61):
        p = node.run("logs", "a", "-n", str(n))
        assert p.returncode == 0
        assert p.stdout == "".join(want[-n:]), n


def test_large_file_is_fast_and_not_read_whole(node, tmp_path):
    path = logs_dir(node) / "big.log"
    row = b"x" * 99 + b"\n"
    with open(path, "wb") as f:
        chunk = row * 10000
        for _ in range(55):
            f.write(chunk)
        f.write(b"last A\nlast B\nlast C\n")
    assert path.stat().st_size > 50 * 1024 * 1024
    t0 = time.monotonic()
    p = node.run("logs", "big", "-n", "3")
    elapsed = time.monotonic() - t0
    assert p.returncode == 0, p.stderr
    assert p.stdout == "last A\nlast B\nlast C\n"
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    # Peak memory of the command stays far below the file's size.
    probe = ("import resource, subprocess, sys\n"
             "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True, timeout=30)\n"
             "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    r = subprocess.run([sys.executable, "-c", probe, node.binary, "logs", "big", "-n", "3"],
                       env=node.env, cwd=node.home, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert int(r.stdout) < 40 * 1024, f"peak RSS {r.stdout.strip()} KiB"


# ---- --follow ---------------------------------------------------------------------------------

class Follower:
    """manta_node logs --follow as a subprocess; stdout lines collected by a thread."""

    def __init__(self, node, *args):
        self.proc = subprocess.Popen([node.binary, "logs", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env=node.env, cwd=node.home, text=True, bufsize=1)
        self.lines = []
        self._q = queue.Queue()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()
        self.stderr = ""

    def _read(self):
        for line in self.proc.stdout:
            self._q.put(line)
        self._q.put(None)

    def _pump(self, timeout):
        try:
            item = self._q.get(timeout=timeout)
        except queue.Empty:
            return
        if item is not None:
            self.lines.append(item)

    def wait_for(self, pred, timeout=10.0, what="output"):
        deadline = time.monotonic() + timeout
        while not pred(self.lines):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}; got {self.lines!r}")
            self._pump(min(left, 0.1))

    def wait_line(self, text, timeout=10.0):
        self.wait_for(lambda ls: text + "\n" in ls, timeout, repr(text))

    def settle(self, seconds):
        """Collect whatever arrives within `seconds`."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._pump(min(left, 0.05))

    def stop(self, sig=signal.SIGINT, timeout=10.0):
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise AssertionError("the follower did not stop on the signal")
        self._t.join(timeout=5)
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                self.lines.append(item)
        self.stderr = self.proc.stderr.read()
        assert "ERROR: AddressSanitizer" not in self.stderr, self.stderr
        assert "runtime error:" not in self.stderr, self.stderr
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)
        for s in (self.proc.stdout, self.proc.stderr):
            try:
                s.close()
            except Exception:
                pass

    def body(self):
        """The log lines: after the dashes, without the final stop message."""
        ls = [line.rstrip("\n") for line in self.lines]
        ls = ls[ls.index(DASHES) + 1:]
        if ls and ls[-1] == "Stopped following log file":
            ls = ls[:-1]
        return ls


@pytest.fixture
def follow(node):
    started = []

    def start(*args):
        f = Follower(node, *args)
        started.append(f)
        return f
    yield start
    for f in started:
        f.kill()


def append(path, text):
    with open(path, "a") as f:
        f.write(text)
        f.flush()


def test_follow_header_last_lines_and_appends(node, follow):
    path = write_log(node, "prod.log", lines(0, 10))
    f = follow("prod", "-f", "-n", "3")
    f.wait_line(DASHES)
    f.wait_line("line 9")
    assert [x.rstrip("\n") for x in f.lines[:6]] == [
        "Following log file: ~/.manta/logs/nodes/prod.log", "Press Ctrl+C to stop", DASHES,
        "line 7", "line 8", "line 9"]
    append(path, lines(10, 13))
    f.wait_line("line 12")
    for i in range(13, 40):
        append(path, f"line {i}\n")
        time.sleep(0.01)
    f.wait_line("line 39")
    assert f.stop() == 0
    assert f.lines[-1] == "Stopped following log file\n"
    assert f.body() == [f"line {i}" for i in range(7, 40)]


def test_follow_without_instance_and_zero_lines(node, follow):
    path = write_log(node, "only.log", lines(0, 5))
    f = follow("--follow", "--lines", "0")
    f.wait_line(DASHES)
    assert f.lines[0] == "Using log file for instance: only\n"
    append(path, "fresh\n")
    f.wait_line("fresh")
    assert f.stop() == 0
    assert f.body() == ["fresh"]


def test_follow_holds_partial_lines(node, follow):
    path = write_log(node, "p.log", "start\n")
    f = follow("p", "-f")
    f.wait_line("start")
    append(path, "half a ")
    f.settle(0.5)
    assert f.body() == ["start"]  # not printed before its newline
    append(path, "line\n")
    f.wait_line("half a line")
    append(path, "unfinished")
    f.settle(0.4)
    assert f.stop() == 0
    # The held bytes are printed when the follow ends.
    assert f.body() == ["start", "half a line", "unfinished"]


def test_follow_very_long_line(node, follow):
    path = write_log(node, "long.log", "a" * 100000)  # already longer than what is held
    f = follow("long", "-f", "-n", "1")
    f.wait_line(DASHES)
    append(path, "b" * 150000)
    f.settle(0.3)
    append(path, "c\nnext\n")
    f.wait_line("next")
    assert f.stop() == 0
    assert f.body() == ["a" * 100000 + "b" * 150000 + "c", "next"]


def test_follow_survives_rotation(node, follow):
    d = logs_dir(node)
    path = write_log(node, "prod.log", lines(0, 5))
    f = follow("prod", "-f", "-n", "100")
    f.wait_line("line 4")
    append(path, lines(5, 10))
    f.wait_line("line 9")

    # Rotation 1, in one go: rename, the writer's last bytes (the last line unfinished) to
    # the renamed file, then the new file with its lines.
    os.rename(path, d / "prod.log.1")
    append(d / "prod.log.1", lines(10, 13) + "line 13")
    append(d / "prod.log.1", " (end)\n")
    write_log(node, "prod.log", lines(14, 20))
    f.wait_line("line 19")

    # Rotation 2, slowly: the follower sees the file missing for a while, the old file
    # still grows, then the successor appears.
    os.rename(d / "prod.log.1", d / "prod.log.2")
    os.rename(path, d / "prod.log.1")
    f.settle(0.3)
    append(d / "prod.log.1", lines(20, 25))
    f.wait_line("line 24")
    f.settle(0.3)
    append(d / "prod.log.1", "line 25 no newline")
    write_log(node, "prod.log", "")
    f.settle(0.3)
    append(path, lines(26, 30))
    f.wait_line("line 29")

    assert f.stop() == 0
    want = [f"line {i}" for i in range(0, 30)]
    want[13] = "line 13 (end)"
    want[25] = "line 25 no newline"
    assert f.body() == want
    assert "rotated" in f.stderr


def test_follow_truncation_in_place(node, follow):
    path = write_log(node, "t.log", lines(0, 20))
    f = follow("t", "-f", "-n", "2")
    f.wait_line("line 19")
    with open(path, "r+") as fh:
        fh.truncate(0)
    f.settle(0.5)  # the follower notices the file got shorter
    append(path, lines(0, 3, prefix="again"))
    f.wait_line("again 2")
    # Truncated while a line was half written: the fragment is ended, the rest follows.
    append(path, "fragment")
    f.settle(0.3)
    with open(path, "w") as fh:
        fh.write("")
    f.settle(0.5)
    append(path, "after\n")
    f.wait_line("after")
    assert f.stop() == 0
    assert f.body() == ["line 18", "line 19", "again 0", "again 1", "again 2", "fragment",
                        "after"]
    assert "truncated" in f.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_follow_stops_on_signal(node, follow, sig):
    write_log(node, "s.log", "one\n")
    f = follow("s", "-f")
    f.wait_line("one")
    t0 = time.monotonic()
    assert f.stop(sig) == 0
    assert time.monotonic() - t0 < 2.0
    assert f.lines[-1] == "Stopped following log file\n"
    assert f.stderr == ""


def test_follow_missing_instance_fails_fast(node):
    write_log(node, "a.log", "1\n")
    p = node.run("logs", "nope", "-f", timeout=10)
    assert p.returncode == 1
    assert "No log file found for instance 'nope'" in p.stderr
