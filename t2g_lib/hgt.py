"""HGT with a CPU-friendly per-relation linear.

PyG's ``HeteroLinear`` without pyg-lib's ``segment_matmul`` (no wheel for this torch) writes
each relation's rows into a preallocated output by slice assignment. Its backward then
allocates and zero-fills a full-size gradient per relation and head, which on Lahman's 42
edge types made one HGT batch take 15 s. Splitting the input and concatenating the products
computes the same values with a backward that only concatenates: about 35x faster.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.nn import HGTConv
from torch_geometric.nn.dense.linear import HeteroLinear


class SplitHeteroLinear(HeteroLinear):
    """``HeteroLinear`` whose fallback path splits by type instead of slice-assigning."""

    def forward_naive(self, x: Tensor, type_ptr: Tensor) -> Tensor:
        sizes = (type_ptr[1:] - type_ptr[:-1]).tolist()
        return torch.cat([part @ w for part, w in zip(x.split(sizes), self.weight.unbind(0))], dim=0)


class FastHGTConv(HGTConv):
    """``HGTConv`` with its relation linears (``k_rel``, ``v_rel``) as ``SplitHeteroLinear``,
    holding the weights PyG initialised."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in ("k_rel", "v_rel"):
            old: HeteroLinear = getattr(self, name)
            new = SplitHeteroLinear(old.in_channels, old.out_channels, old.num_types, bias=False, is_sorted=True)
            new.load_state_dict(old.state_dict())
            setattr(self, name, new)
