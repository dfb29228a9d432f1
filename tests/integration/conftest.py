"""Shared fixtures: the binaries under test and an isolated home directory per test."""
import os
import pathlib
import subprocess

import pytest

SOURCE_DIR = pathlib.Path(os.environ.get("MANTA_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
SHARED_DIR = pathlib.Path(os.environ.get("MANTA_SHARED_DIR", SOURCE_DIR.parent / "shared"))

# MANTA_NO_SKIP=1 (scripts/test sets it, so in CI): a skipped test fails, with the skip's reason,
# so a lost prerequisite (root, runc, a tool) cannot leave the suite green while testing
# nothing. pytest's xfail is not a skip and is left alone. Without the variable, skips stay skips.
NO_SKIP = os.environ.get("MANTA_NO_SKIP") == "1"


def _no_skip(report) -> None:
    if NO_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        where, why = "", str(report.longrepr)
        if isinstance(report.longrepr, tuple):  # (path, line, "Skipped: reason")
            path, line, why = report.longrepr
            where = f" ({path}:{line})" if line is not None else f" ({path})"
        report.outcome = "failed"
        report.longrepr = (f"MANTA_NO_SKIP=1: this test was skipped{where}, which fails it: "
                           f"{why.removeprefix('Skipped: ')}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    _no_skip(outcome.get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A whole file skipped while collected (pytest.importorskip or allow_module_level)."""
    outcome = yield
    _no_skip(outcome.get_result())


def _binary(name: str, env_var: str) -> str:
    path = os.environ.get(env_var)
    if path:
        return path
    for build in ("build/gcc", "build/asan", "build"):
        cand = SOURCE_DIR / build / name
        if cand.exists():
            return str(cand)
    pytest.skip(f"{name} not built (set {env_var})")


@pytest.fixture(scope="session")
def node_bin() -> str:
    return _binary("manta_node", "MANTA_NODE_BIN")


class Node:
    """Runs manta_node with HOME pointing at a private folder."""

    def __init__(self, binary: str, home: pathlib.Path):
        self.binary = binary
        self.home = home
        self.env = {
            "HOME": str(home),
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
        }
        for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if k in os.environ:
                self.env[k] = os.environ[k]

    @property
    def nodes_dir(self) -> pathlib.Path:
        return self.home / ".manta" / "nodes"

    def config_path(self, name: str) -> pathlib.Path:
        return self.nodes_dir / f"{name}.toml"

    def run(self, *args, input=None, env=None, timeout=30, check_sanitizers=True):
        e = dict(self.env)
        if env:
            e.update(env)
        p = subprocess.run([self.binary, *args], input=input, capture_output=True, text=True,
                           env=e, timeout=timeout, cwd=self.home, stdin=None if input is not None else subprocess.DEVNULL)
        if check_sanitizers:
            assert p.returncode not in (86, 87), f"sanitizer report:\n{p.stderr}"
            assert "ERROR: AddressSanitizer" not in p.stderr, p.stderr
            assert "runtime error:" not in p.stderr, p.stderr
        return p

    def write_config(self, name: str, text: str) -> pathlib.Path:
        self.nodes_dir.mkdir(parents=True, exist_ok=True)
        path = self.config_path(name)
        path.write_text(text)
        return path


@pytest.fixture
def node(node_bin, tmp_path) -> Node:
    home = tmp_path / "home"
    home.mkdir()
    return Node(node_bin, home)


@pytest.fixture
def world(tmp_path):
    """A broker, a fake manager that accepts the tests' node token, and an observer of
    manager/#: (broker, manager, observer). Imported here lazily: wire_env imports this file."""
    from test_node_wire import TOKEN
    from wire_env import Broker, FakeManager, Observer
    b = Broker(tmp_path / "broker").start()
    m = FakeManager(b, token=TOKEN).start()
    o = Observer(b)
    yield b, m, o
    o.close()
    m.stop()
    b.stop()
