"""Scratch arrays in files: a large database's per-row intermediates, memory-mapped.

A GNN layer's outputs for every row of TPC-H SF1 take 2.2 GiB and a chunked pass holds two
layers at once. In anonymous memory the process must hold them; in a file mapping they are
page cache, which the kernel writes out and drops when memory runs short, so the pass runs in
whatever memory the machine has and only gets slower. The file is unlinked at creation
(nothing is left behind if the process dies) and freed when the array is. Files go to the
temporary directory (``TMPDIR``): on a disk, not a RAM-backed tmpfs, or nothing is gained.
"""

from __future__ import annotations

import tempfile

import numpy as np
import torch


def scratch_tensor(shape: tuple[int, ...], dtype: torch.dtype = torch.float32,
                   device: torch.device | str = "cpu") -> torch.Tensor:
    """An uninitialized tensor of ``shape``: on the CPU backed by an unlinked temporary file,
    elsewhere (a GPU) ordinary device memory."""
    device = torch.device(device)
    scalar = torch.empty((), dtype=dtype)
    nbytes = int(np.prod(shape)) * scalar.element_size()
    if device.type != "cpu" or nbytes == 0:
        return torch.empty(shape, dtype=dtype, device=device)
    with tempfile.TemporaryFile(prefix="t2g-scratch-") as f:
        f.truncate(nbytes)
        # The mapping keeps the unlinked file alive after ``f`` closes, until the array goes.
        mapped = np.memmap(f, dtype=scalar.numpy().dtype, mode="r+", shape=shape)
    return torch.from_numpy(mapped)


def scratch_copy(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor``'s values in a scratch tensor (``scratch_tensor``) on its device."""
    out = scratch_tensor(tuple(tensor.shape), tensor.dtype, tensor.device)
    out.copy_(tensor)
    return out
