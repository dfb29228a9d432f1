"""Helpers for model weights as the platform's examples exchange them (task-contract.md 5.3):
a dict {layer: ndarray} <-> a dict {layer: .npy bytes}, recursively over dicts."""
import io

import numpy as np


def numpy_to_bytes(value):
    """np.save() of an array (or of every leaf of a dict of arrays) into .npy bytes."""
    if isinstance(value, dict):
        return {k: numpy_to_bytes(v) for k, v in value.items()}
    buf = io.BytesIO()
    np.save(buf, value)
    return buf.getvalue()


def bytes_to_numpy(value):
    """np.load() of .npy bytes (or of every leaf of a dict of them); pickles are refused."""
    if isinstance(value, dict):
        return {k: bytes_to_numpy(v) for k, v in value.items()}
    return np.load(io.BytesIO(value), allow_pickle=False)
