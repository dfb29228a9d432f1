"""Helpers for values as the platform's examples exchange them (task-contract.md 5.3):

* numpy_to_bytes / bytes_to_numpy: an array <-> .npy bytes (np.save / np.load), recursively
  over dicts ({layer: array} <-> {layer: .npy bytes}, what FedAvg examples send);
* dict_to_bytes / bytes_to_dict: any msgpack-able value <-> msgpack bytes (how globals and
  results travel);
* torchmodel_to_bytes / bytes_to_torchmodel: a torch model (or state dict) <-> torch.save bytes,
  when torch is installed (the manta-task:torch image).

numpy, msgpack and torch are imported when a helper is first used, not at import.
"""
import io


def numpy_to_bytes(value):
    """np.save() of an array (or of every leaf of a dict of arrays) into .npy bytes."""
    if isinstance(value, dict):
        return {k: numpy_to_bytes(v) for k, v in value.items()}
    import numpy as np
    buf = io.BytesIO()
    np.save(buf, value)
    return buf.getvalue()


def bytes_to_numpy(value):
    """np.load() of .npy bytes (or of every leaf of a dict of them); pickles are refused."""
    if isinstance(value, dict):
        return {k: bytes_to_numpy(v) for k, v in value.items()}
    import numpy as np
    return np.load(io.BytesIO(value), allow_pickle=False)


def dict_to_bytes(value) -> bytes:
    """msgpack of a value, as the SDK encodes globals and results (use_bin_type=True)."""
    import msgpack
    return msgpack.packb(value, use_bin_type=True)


def bytes_to_dict(value: bytes):
    """The value of msgpack bytes (raw=False: str stays str, bytes stay bytes)."""
    import msgpack
    return msgpack.unpackb(value, raw=False)


def torchmodel_to_bytes(model) -> bytes:
    """torch.save() of a model (or a state dict, or any tensor structure) into bytes."""
    import torch
    buf = io.BytesIO()
    torch.save(model, buf)
    return buf.getvalue()


def bytes_to_torchmodel(value: bytes):
    """torch.load() of torchmodel_to_bytes() output, on the CPU: with weights_only=True first
    (tensors and plain containers only), then, for whole model objects, without (a pickle:
    only for bytes from a trusted task of the same swarm)."""
    import torch
    try:
        return torch.load(io.BytesIO(value), map_location="cpu", weights_only=True)
    except Exception:
        return torch.load(io.BytesIO(value), map_location="cpu", weights_only=False)
