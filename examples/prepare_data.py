#!/usr/bin/python3
"""Real data for the FedAvg examples: Fashion-MNIST, split into one partition per node.

    prepare_data.py --nodes 3 --out DIR [--partition iid|dirichlet] [--alpha 0.5] [--seed 0]
                    [--train N] [--test N] [--source /usr/share/datasets/fashion-mnist]

reads the dataset Debian ships (package dataset-fashion-mnist: 60,000 training and 10,000 test
images of 28x28 pixels, 10 classes of clothing, IDX files) and writes DIR/node_<i>/mnist.npz
with the keys of the platform's MNIST example: x_train (N, 28, 28) float32 in [0, 1], y_train
(N,) int64 labels 0-9, x_test, y_test. Every node gets its own training images and its own
held-out test images; no image is on two nodes.

--partition iid (default) deals the images out at random: every node sees every class about
equally. --partition dirichlet --alpha A draws, for each class, the share each node gets from
a Dirichlet(A) distribution (the usual non-IID benchmark of federated learning: A = 100 is
nearly IID, A = 0.5 gives each node a few dominant classes, A = 0.1 nearly one class per
node); a node's test images follow its own class mix. --train / --test cap the images per node
(default: everything, divided among the nodes). Deterministic for a given --seed.
"""
import argparse
import gzip
import pathlib
import struct
import sys

import numpy as np

SOURCE = pathlib.Path("/usr/share/datasets/fashion-mnist")
CLASSES = 10
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
          "Bag", "Ankle boot"]


def read_idx(path: pathlib.Path) -> np.ndarray:
    """An IDX file (gzip-compressed or not): the magic gives the element type and the rank."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def find(source: pathlib.Path, stem: str) -> pathlib.Path:
    for name in (stem + ".gz", stem):
        if (source / name).exists():
            return source / name
    raise FileNotFoundError(f"{source / stem}[.gz] not found: install Debian's "
                            "dataset-fashion-mnist (scripts/deps does) or give --source")


def load(source: pathlib.Path = SOURCE):
    """(x_train uint8 (60000, 28, 28), y_train, x_test (10000, 28, 28), y_test)."""
    return (read_idx(find(source, "train-images-idx3-ubyte")),
            read_idx(find(source, "train-labels-idx1-ubyte")).astype(np.int64),
            read_idx(find(source, "t10k-images-idx3-ubyte")),
            read_idx(find(source, "t10k-labels-idx1-ubyte")).astype(np.int64))


def split_iid(rng, n_items: int, nodes: int):
    return np.array_split(rng.permutation(n_items), nodes)


def shares_dirichlet(rng, y_train, nodes: int, alpha: float, min_items: int = 10):
    """Per class, the share of each node: rows of a (classes, nodes) matrix drawn from
    Dirichlet(alpha), redrawn (a bounded number of times) until every node has at least
    min_items training images."""
    counts = np.bincount(y_train, minlength=CLASSES)
    for _ in range(100):
        p = rng.dirichlet([alpha] * nodes, CLASSES)
        if ((p * counts[:, None]).sum(axis=0) >= min_items).all():
            return p
    return p


def split_by_shares(rng, y, shares):
    """Indices of each node: for every class, its items shuffled and cut by that class's
    shares."""
    nodes = shares.shape[1]
    parts = [[] for _ in range(nodes)]
    for c in range(CLASSES):
        idx = rng.permutation(np.flatnonzero(y == c))
        cuts = (np.cumsum(shares[c])[:-1] * len(idx)).round().astype(int)
        for i, piece in enumerate(np.split(idx, cuts)):
            parts[i].append(piece)
    return [rng.permutation(np.concatenate(p)) for p in parts]


def partition(data, nodes: int, how: str = "iid", alpha: float = 0.5, seed: int = 0,
              train: int = 0, test: int = 0):
    """[(x_train, y_train, x_test, y_test)] per node, images float32 in [0, 1]."""
    x_tr, y_tr, x_te, y_te = data
    rng = np.random.default_rng(seed)
    if how == "iid":
        tr, te = split_iid(rng, len(y_tr), nodes), split_iid(rng, len(y_te), nodes)
    elif how == "dirichlet":
        shares = shares_dirichlet(rng, y_tr, nodes, alpha)
        tr, te = split_by_shares(rng, y_tr, shares), split_by_shares(rng, y_te, shares)
    else:
        raise ValueError(f"unknown partition {how!r}")
    out = []
    for a, b in zip(tr, te):
        a = a[:train] if train else a
        b = b[:test] if test else b
        out.append((x_tr[a].astype(np.float32) / 255.0, y_tr[a], x_te[b].astype(np.float32) / 255.0,
                    y_te[b]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--out", required=True, type=pathlib.Path)
    ap.add_argument("--partition", choices=["iid", "dirichlet"], default="iid")
    ap.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train", type=int, default=0, help="at most this many training images per node")
    ap.add_argument("--test", type=int, default=0, help="at most this many test images per node")
    ap.add_argument("--source", type=pathlib.Path, default=SOURCE)
    a = ap.parse_args(argv)
    if a.nodes < 1 or a.train < 0 or a.test < 0 or a.alpha <= 0:
        ap.error("--nodes must be positive, --train/--test not negative, --alpha positive")
    try:
        data = load(a.source)
    except (OSError, ValueError) as e:
        print(f"prepare_data: {e}", file=sys.stderr)
        return 1
    for i, (x_train, y_train, x_test, y_test) in enumerate(
            partition(data, a.nodes, a.partition, a.alpha, a.seed, a.train, a.test)):
        d = a.out / f"node_{i}"
        d.mkdir(parents=True, exist_ok=True)
        np.savez(d / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
        counts = np.bincount(y_train, minlength=CLASSES)
        print(f"{d / 'mnist.npz'}: {len(y_train)} train / {len(y_test)} test, "
              f"classes {' '.join(map(str, counts))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
