"""`make install` / `cmake --install` put manta_node under the chosen prefix."""
import os
import subprocess

from conftest import SOURCE_DIR


def test_cmake_install_prefix_and_destdir(tmp_path):
    build = os.environ.get("MANTA_BUILD_DIR")
    assert build, "MANTA_BUILD_DIR is set by CTest"
    env = dict(os.environ, DESTDIR=str(tmp_path / "stage"))
    p = subprocess.run(["cmake", "--install", build, "--prefix", "/opt/manta"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    binary = tmp_path / "stage" / "opt" / "manta" / "bin" / "manta_node"
    assert binary.exists()
    out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("manta_node ")


def test_makefile_install_honours_prefix(tmp_path):
    # Dry run: the install rule passes PREFIX and DESTDIR through to cmake --install.
    p = subprocess.run(["make", "-n", "-C", str(SOURCE_DIR), "install", f"PREFIX={tmp_path}/p",
                        "DESTDIR=/stage"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert f"DESTDIR=/stage cmake --install build/release --prefix {tmp_path}/p" in p.stdout
