"""FastHGTConv computes what PyG's HGTConv computes, forward and backward."""

import torch
from torch_geometric.nn import HGTConv

from t2g_lib.hgt import FastHGTConv


def test_fast_hgt_matches_pyg_values_and_gradients():
    node_types = ["a", "b", "c"]
    edge_types = [("a", "r0", "b"), ("b", "r1", "a"), ("c", "r2", "a"), ("a", "r3", "c")]
    gen = torch.Generator().manual_seed(0)
    sizes = {"a": 7, "b": 5, "c": 4}
    x = {nt: torch.randn(n, 8, generator=gen) for nt, n in sizes.items()}
    edges = {
        et: torch.stack([torch.randint(0, sizes[et[0]], (12,), generator=gen),
                         torch.randint(0, sizes[et[2]], (12,), generator=gen)])
        for et in edge_types
    }
    torch.manual_seed(3)
    ref = HGTConv(8, 8, (node_types, edge_types), heads=2)
    fast = FastHGTConv(8, 8, (node_types, edge_types), heads=2)
    fast.load_state_dict(ref.state_dict())
    outs = []
    for conv in (ref, fast):
        conv.zero_grad()
        out = conv(x, edges)
        sum((o ** 2).sum() for o in out.values() if o is not None).backward()
        outs.append((out, {n: p.grad.clone() for n, p in conv.named_parameters() if p.grad is not None}))
    (out_ref, grad_ref), (out_fast, grad_fast) = outs
    assert out_ref.keys() == out_fast.keys()
    for nt in out_ref:
        torch.testing.assert_close(out_fast[nt], out_ref[nt])
    assert grad_ref.keys() == grad_fast.keys() and any("k_rel" in n for n in grad_fast)
    for n in grad_ref:
        torch.testing.assert_close(grad_fast[n], grad_ref[n])
