"""The propagation cut to the rows a KRR step reads gives those rows the whole graph's
embeddings and gradients, and computes only the rows within reach."""

import numpy as np
import pytest
import torch
from torch_geometric.data import HeteroData

from t2g_lib.propagate import propagate, with_time_features
from t2g_lib.propagate_cut import PropagationCut

SIZES = {"a": 40, "b": 120, "c": 7}


def _graph(seed: int = 0) -> tuple[HeteroData, dict[str, torch.Tensor]]:
    """Three node types, parent-child edges both ways (b -> a, a -> c), some rows without
    neighbours, and ages with untimed rows."""
    g = torch.Generator().manual_seed(seed)
    data = HeteroData()
    for nt, n in SIZES.items():
        data[nt].x = torch.randn(n, 3, generator=g)
    parent_of_b = torch.randint(0, SIZES["a"] - 5, (SIZES["b"],), generator=g)  # a's last 5 rows: no children
    parent_of_a = torch.randint(0, SIZES["c"], (SIZES["a"],), generator=g)
    for child, parent, of in (("b", "a", parent_of_b), ("a", "c", parent_of_a)):
        rows = torch.arange(len(of))
        data[child, "to", parent].edge_index = torch.stack([rows, of])
        data[parent, "rev", child].edge_index = torch.stack([of, rows])
    ages = {"b": torch.rand(SIZES["b"], generator=g) * 400, "a": torch.rand(SIZES["a"], generator=g) * 40}
    ages["b"][::9] = float("nan")
    return data, ages


def _inputs(x: dict[str, torch.Tensor], ages: dict[str, torch.Tensor] | None):
    def rows_of(nt: str, rows: torch.Tensor) -> torch.Tensor:
        sub = None if ages is None else ({nt: ages[nt][rows]} if nt in ages else {})
        return with_time_features({nt: x[nt][rows]}, sub)[nt]
    return rows_of


@pytest.mark.parametrize("aggr", ["mean", "sum"])
@pytest.mark.parametrize("timed", [False, True])
def test_cut_rows_get_the_whole_graph_values_and_gradients(aggr: str, timed: bool) -> None:
    data, ages = _graph()
    ages = ages if timed else None
    wanted = {"a": np.array([3, 0, 17, 3]), "b": np.array([5, 99]), "c": None}
    weights = {nt: torch.randn(SIZES[nt], 3 * (3 + (5 if timed else 0))) for nt in SIZES}

    whole_x = {nt: data[nt].x.clone().requires_grad_() for nt in SIZES}
    for nt in SIZES:
        data[nt].x = whole_x[nt]
    whole = {nt: propagate(data, 2, nt, None, aggr, ages) for nt in SIZES}

    cut_x = {nt: whole_x[nt].detach().clone().requires_grad_() for nt in SIZES}
    z = PropagationCut(data).embed(wanted, 2, _inputs(cut_x, ages), aggr)

    loss_whole = loss_cut = 0.0
    for nt, rows in wanted.items():
        picked = whole[nt] if rows is None else whole[nt][torch.as_tensor(rows)]
        got = z.take(nt, rows)
        assert torch.allclose(got, picked, atol=1e-6)
        w = weights[nt] if rows is None else weights[nt][torch.as_tensor(rows)]
        loss_whole = loss_whole + (picked * w).sum()
        loss_cut = loss_cut + (got * w).sum()
    loss_whole.backward()
    loss_cut.backward()
    for nt in SIZES:
        assert torch.allclose(cut_x[nt].grad, whole_x[nt].grad, atol=1e-5), nt


def test_cut_computes_only_the_rows_within_reach() -> None:
    data, _ = _graph()
    cut = PropagationCut(data)
    rows, edges = cut.rows_per_hop({"b": np.array([4])}, 2)
    parent = int(data["b", "to", "a"].edge_index[1, 4])
    siblings = np.flatnonzero(data["b", "to", "a"].edge_index[1].numpy() == parent)
    grandparent = int(data["a", "to", "c"].edge_index[1, parent])
    assert set(rows[2]) == {"b"} and rows[2]["b"].tolist() == [4]
    assert rows[1]["b"].tolist() == [4] and rows[1]["a"].tolist() == [parent]
    assert rows[0]["b"].tolist() == siblings.tolist()  # the parent's children feed its state
    assert rows[0]["a"].tolist() == [parent] and rows[0]["c"].tolist() == [grandparent]
    assert sum(map(len, rows[0].values())) < sum(SIZES.values()) / 5
    assert {et[2] for et in edges[1]} == {"b"}  # the last hop only into the row read


def test_rows_the_cut_was_not_planned_for_are_refused() -> None:
    data, _ = _graph()
    z = PropagationCut(data).embed({"a": np.array([1, 2])}, 1, _inputs({nt: data[nt].x for nt in SIZES}, None))
    assert z.take("a", np.array([2])).shape == (1, 6)
    with pytest.raises(KeyError, match="not planned"):
        z.take("a", np.array([3]))
    with pytest.raises(KeyError, match="not planned"):
        z.take("a", np.array([SIZES["a"] - 1]))
