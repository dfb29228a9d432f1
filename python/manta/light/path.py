"""MantaPath: a path on the node's datasets, written like a pathlib path.

    p = MantaPath("images") / "cats" / "001.png"  # dataset "images", file cats/001.png
    p.name, p.stem, p.suffix, str(p)              # "001.png", "001", ".png", "images/cats/001.png"
    self.local.exists(p); self.local.list_dir(p.parent); p.read_text(); p.iterdir()

The first component is the dataset (the key of the node's [datasets.mappings]), the rest a path
inside a folder dataset. Accepted by every `Local` method wherever a dataset name is. The
SDK's own MantaPath sends an empty dataset name, which the reference node serves only when a
dataset is mapped under "" (task-contract.md 6); this one names the dataset. This project's
node serves both forms (an empty name with the whole path, or the whole path as the name).

As in the SDK, importing this module builds a module-level `Local()` from the environment
(no connection before the first call): a bad RPC_PORT fails at `import manta.light`.
"""
import posixpath

from manta.light.local import Local

local = Local()


class MantaPath:
    def __init__(self, path, is_file: bool = True):
        if isinstance(path, MantaPath):
            path = path._path
        path = str(path)
        norm = posixpath.normpath(path) if path else "."
        self._path = "" if norm == "." else norm.lstrip("/")
        self.is_file = is_file

    # pathlib-like ------------------------------------------------------------------------------
    def __str__(self) -> str:
        return self._path

    def __repr__(self) -> str:
        return f"MantaPath({self._path!r}, is_file={self.is_file})"

    def __eq__(self, other) -> bool:
        return isinstance(other, MantaPath) and other._path == self._path

    def __hash__(self) -> int:
        return hash(self._path)

    def __truediv__(self, other) -> "MantaPath":
        other = str(other)
        return MantaPath(posixpath.join(self._path, other) if self._path else other)

    def __rtruediv__(self, other) -> "MantaPath":
        return MantaPath(posixpath.join(str(other), self._path))

    @property
    def parts(self) -> tuple:
        return tuple(p for p in self._path.split("/") if p)

    @property
    def name(self) -> str:
        return self.parts[-1] if self.parts else ""

    @property
    def suffix(self) -> str:
        n = self.name
        i = n.rfind(".")
        return n[i:] if 0 < i < len(n) - 1 else ""

    @property
    def stem(self) -> str:
        n, s = self.name, self.suffix
        return n[:-len(s)] if s else n

    @property
    def parent(self) -> "MantaPath":
        return MantaPath("/".join(self.parts[:-1]), is_file=False)

    def _dataset_and_path(self):
        parts = self.parts
        return (parts[0], "/".join(parts[1:])) if parts else ("", "")

    # on the node's datasets, through the module-level Local -------------------------------------
    def read_bytes(self) -> bytes:
        return local.get_binary_data(self).getvalue()

    def read_text(self, encoding=None, errors=None, newline=None) -> str:
        return local.read_file_lines(self, encoding, errors, newline).getvalue()

    def exists(self) -> bool:
        return local.exists(self)

    def iterdir(self) -> list:
        return [MantaPath(posixpath.join(self._path, p.value), is_file=p.is_file)
                for p in local.list_dir(self).paths]
