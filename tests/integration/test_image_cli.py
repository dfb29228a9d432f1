"""`manta_node image import|list|rm`: the runc runtime's local image store, driven as a user would."""
import io
import json
import os
import pathlib
import shutil
import subprocess
import tarfile

import pytest


def make_rootfs(path: pathlib.Path) -> pathlib.Path:
    """A small root file system: files, a symlink, an executable, a private folder."""
    (path / "bin").mkdir(parents=True)
    (path / "etc").mkdir()
    (path / "srv" / "private").mkdir(parents=True)
    (path / "bin" / "tool").write_text("#!/bin/sh\necho tool\n")
    (path / "bin" / "tool").chmod(0o755)
    (path / "bin" / "sh").symlink_to("tool")
    (path / "etc" / "os-release").write_text('NAME="Manta test"\n')
    (path / "srv" / "private" / "data").write_bytes(os.urandom(3000))
    (path / "srv" / "private").chmod(0o750)
    return path


def snapshot(root: pathlib.Path) -> dict:
    """path -> (kind, mode, content or link target) for every entry under root."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = str(p.relative_to(root))
        st = p.lstat()
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir", st.st_mode & 0o7777)
        else:
            out[rel] = ("file", st.st_mode & 0o7777, p.read_bytes())
    return out


@pytest.fixture
def rootfs(tmp_path) -> pathlib.Path:
    return make_rootfs(tmp_path / "src-rootfs")


def store_of(node) -> pathlib.Path:
    return node.home / ".manta" / "images"


def make_tar(src: pathlib.Path, dest: pathlib.Path, mode: str) -> pathlib.Path:
    with tarfile.open(dest, mode) as tf:
        for p in sorted(src.iterdir()):
            tf.add(p, arcname=p.name)
    return dest


def no_leftovers(store: pathlib.Path):
    if store.exists():
        hidden = [p.name for p in store.iterdir() if p.name.startswith(".")]
        assert hidden == [], f"temporary folders left in the store: {hidden}"


# ---- help and usage -------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["image", "--help"], ["image", "help"], ["image", "import", "--help"],
    ["image", "list", "--help"], ["image", "rm", "--help"], ["image", "import", "-h"],
])
def test_help_exits_zero(node, args):
    p = node.run(*args)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Usage: manta_node image")


def test_listed_in_main_help(node):
    p = node.run("--help")
    assert "image" in p.stdout and "Manage the runc image store" in p.stdout


@pytest.mark.parametrize("args,needle", [
    (["image"], "Usage: manta_node image"),
    (["image", "frobnicate"], "Unknown action 'frobnicate'"),
    (["image", "import"], "Expected an image NAME and a DIR or TARBALL"),
    (["image", "import", "x"], "Expected an image NAME and a DIR or TARBALL"),
    (["image", "import", "x", "y", "z"], "Too many arguments ('z')"),
    (["image", "import", "Bad Name!", "/"], "Invalid image name 'Bad Name!'"),
    (["image", "import", "-x", "/"], "Unknown option '-x'"),
    (["image", "list", "--bogus"], "Unknown option '--bogus'"),
    (["image", "list", "extra"], "Too many arguments"),
    (["image", "list", "--config"], "needs a value"),
    (["image", "rm"], "Expected the NAME of an image"),
    (["image", "rm", "../etc"], "Invalid image name '../etc'"),
    (["image", "list", "--config", "a", "--store", "/tmp"], "either --config or --store"),
])
def test_usage_errors(node, args, needle):
    p = node.run(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    assert needle in p.stderr


# ---- import, list, rm ----------------------------------------------------------------------

def test_import_dir_list_rm(node, rootfs):
    p = node.run("image", "list")
    assert p.returncode == 0
    assert "No images in ~/.manta/images" in p.stdout
    assert "manta_node image import NAME DIR|TARBALL" in p.stdout

    p = node.run("image", "import", "manta-task:bookworm", str(rootfs))
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("Imported image 'manta-task:bookworm' (")
    assert "~/.manta/images" in p.stdout

    img = store_of(node) / "manta-task%3Abookworm"
    assert snapshot(img / "rootfs") == snapshot(rootfs)
    meta = json.loads((img / "image.json").read_text())
    assert meta["name"] == "manta-task:bookworm"
    assert meta["source"] == str(rootfs)
    assert meta["size"] > 3000
    assert meta["created"].endswith("Z")
    no_leftovers(store_of(node))

    p = node.run("image", "list")
    assert p.returncode == 0
    lines = p.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "CREATED"]
    assert lines[1].split()[0] == "manta-task:bookworm"
    assert meta["created"] in lines[1]

    p = node.run("image", "list", "--json")
    assert p.returncode == 0
    listed = json.loads(p.stdout)
    assert [i["name"] for i in listed] == ["manta-task:bookworm"]
    assert listed[0]["size"] == meta["size"]

    p = node.run("image", "rm", "manta-task:bookworm")
    assert p.returncode == 0, p.stderr
    assert "Removed image 'manta-task:bookworm'" in p.stdout
    assert not img.exists()
    no_leftovers(store_of(node))
    assert "No images" in node.run("image", "list").stdout


@pytest.mark.parametrize("suffix,mode", [(".tar.gz", "w:gz"), (".tar.xz", "w:xz"), (".tar", "w")])
def test_import_tarball(node, rootfs, tmp_path, suffix, mode):
    tar = make_tar(rootfs, tmp_path / f"image{suffix}", mode)
    p = node.run("image", "import", "busy", str(tar))
    assert p.returncode == 0, p.stderr
    # no tag means :latest, as with Docker
    assert "Imported image 'busy:latest'" in p.stdout
    img = store_of(node) / "busy%3Alatest"
    assert snapshot(img / "rootfs") == snapshot(rootfs)
    assert "busy:latest" in node.run("image", "list").stdout
    # the short name finds it again
    p = node.run("image", "rm", "busy")
    assert p.returncode == 0, p.stderr
    assert not img.exists()


def test_import_oci_bundle_folder(node, rootfs, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text("{}")
    shutil.copytree(rootfs, bundle / "rootfs", symlinks=True)
    p = node.run("image", "import", "from-bundle:1", str(bundle))
    assert p.returncode == 0, p.stderr
    assert snapshot(store_of(node) / "from-bundle%3A1" / "rootfs") == snapshot(rootfs)


def test_duplicate_needs_force(node, rootfs, tmp_path):
    assert node.run("image", "import", "dup:1", str(rootfs)).returncode == 0
    p = node.run("image", "import", "dup:1", str(rootfs))
    assert p.returncode == 1
    assert "already exists" in p.stderr and "--force" in p.stderr

    other = make_rootfs(tmp_path / "other")
    (other / "etc" / "os-release").write_text('NAME="replaced"\n')
    p = node.run("image", "import", "--force", "dup:1", str(other))
    assert p.returncode == 0, p.stderr
    rootfs_in_store = store_of(node) / "dup%3A1" / "rootfs"
    assert (rootfs_in_store / "etc" / "os-release").read_text() == 'NAME="replaced"\n'
    no_leftovers(store_of(node))
    assert len(json.loads(node.run("image", "list", "--json").stdout)) == 1


def test_names_map_to_distinct_folders(node, rootfs):
    for name in ("a/b:c", "a_b:c", "a:b_c", "registry.example.com/team/img@sha256:abc"):
        p = node.run("image", "import", name, str(rootfs))
        assert p.returncode == 0, p.stderr
    names = [i["name"] for i in json.loads(node.run("image", "list", "--json").stdout)]
    assert sorted(names) == sorted(["a/b:c", "a_b:c", "a:b_c",
                                    "registry.example.com/team/img@sha256:abc"])
    for d in store_of(node).iterdir():
        assert "/" not in d.name and ":" not in d.name


# ---- errors ---------------------------------------------------------------------------------

def test_missing_source(node, tmp_path):
    p = node.run("image", "import", "x:1", str(tmp_path / "nope"))
    assert p.returncode == 1
    assert "does not exist" in p.stderr
    assert not store_of(node).exists() or not any(store_of(node).iterdir())


def test_not_a_tarball(node, tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_text("this is not an archive\n")
    p = node.run("image", "import", "x:1", str(junk))
    assert p.returncode == 1
    assert "Error: Cannot import image 'x:1'" in p.stderr
    assert "cannot extract" in p.stderr
    assert not (store_of(node) / "x%3A1").exists()
    no_leftovers(store_of(node))


def test_docker_save_archive_is_explained(node, tmp_path):
    tar = tmp_path / "saved.tar"
    with tarfile.open(tar, "w") as tf:
        for name, data in (("manifest.json", b"[]"), ("repositories", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    p = node.run("image", "import", "saved:1", str(tar))
    assert p.returncode == 1
    assert "docker export" in p.stderr
    no_leftovers(store_of(node))


def test_rm_missing(node):
    p = node.run("image", "rm", "ghost:1")
    assert p.returncode == 1
    assert "Image 'ghost:1' is not in the image store" in p.stderr
    assert "manta_node image list" in p.stderr


def test_rm_several_reports_each(node, rootfs):
    assert node.run("image", "import", "one:1", str(rootfs)).returncode == 0
    p = node.run("image", "rm", "one:1", "ghost:2")
    assert p.returncode == 1
    assert "Removed image 'one:1'" in p.stdout
    assert "ghost:2" in p.stderr


# ---- where the store is ---------------------------------------------------------------------

def test_store_from_configuration(node, rootfs, tmp_path):
    store = tmp_path / "custom-store"
    node.write_config("prod", f'[identity]\nsecured_token = "x"\n\n[containers]\nimage_store = "{store}"\n')
    p = node.run("image", "import", "--config", "prod", "cfg:1", str(rootfs))
    assert p.returncode == 0, p.stderr
    assert (store / "cfg%3A1" / "rootfs" / "bin" / "tool").exists()
    assert not store_of(node).exists()
    assert "cfg:1" in node.run("image", "list", "-c", "prod").stdout
    # the default configuration's store is another one
    assert "No images" in node.run("image", "list").stdout
    # --store names a folder directly
    assert "cfg:1" in node.run("image", "list", "--store", str(store)).stdout


def test_default_configuration_store(node, rootfs, tmp_path):
    store = tmp_path / "default-store"
    node.write_config("default", f'[identity]\nsecured_token = "x"\n\n[containers]\nimage_store = "{store}"\n')
    assert node.run("image", "import", "d:1", str(rootfs)).returncode == 0
    assert (store / "d%3A1").is_dir()


def test_named_configuration_missing(node):
    p = node.run("image", "list", "--config", "nope")
    assert p.returncode == 1
    assert "Configuration 'nope' not found" in p.stderr


# ---- an image in use ------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="mounting an overlay needs root")
def test_image_in_use_is_kept(node, rootfs, tmp_path):
    assert node.run("image", "import", "busy:1", str(rootfs)).returncode == 0
    lower = store_of(node) / "busy%3A1" / "rootfs"
    upper, work, merged = (tmp_path / n for n in ("upper", "work", "merged"))
    for d in (upper, work, merged):
        d.mkdir()
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={lower},upperdir={upper},workdir={work}", str(merged)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount an overlay here: {r.stderr}")
    try:
        p = node.run("image", "rm", "busy:1")
        assert p.returncode == 1
        assert "in use by 1 task" in p.stderr
        p = node.run("image", "import", "--force", "busy:1", str(rootfs))
        assert p.returncode == 1
        assert "in use" in p.stderr
        assert (merged / "bin" / "tool").exists()
    finally:
        subprocess.run(["umount", str(merged)], check=False)
    p = node.run("image", "rm", "busy:1")
    assert p.returncode == 0, p.stderr
