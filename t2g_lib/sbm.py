"""Stage 5 ``sbm_structure``: the distilled graph's nodes and FK edges from a block model.

The clusters of ``cluster_pretraining`` are the blocks of a heterogeneous, degree-corrected
stochastic block model. Each table gets a budget of synthetic nodes, spread over its blocks
in proportion to block size; each FK relation child -> parent keeps the real block-to-block
linking matrix ``P`` and, inside a parent block, the real skew of in-degrees. Every synthetic
child row gets exactly one parent, as a foreign key has.

Each synthetic node of a block stands for one quantile slice of that block's real rows
(ordered by their total in-degree over all relations), and its propensity to receive
children in a relation is the mean real in-degree of its slice. So heavy parents stay heavy,
and a parent that is heavy in one relation is heavy in the others where the real one is.

Draws use systematic (stratified) sampling: the count of children per parent block and per
parent node is ``floor(n * p)`` plus one with probability equal to the remainder. That is an
unbiased draw from ``p`` with far less noise than independent sampling, which matters at the
small budgets distillation runs at.
"""

from __future__ import annotations

import math

import numpy as np
from relbench.base import Database

from t2g_lib.feature_codec import FeatureCodec
from t2g_lib.graph import GraphSchema, Relation, SyntheticGraph, fkey_index


def budget_per_table(
    sizes: dict[str, int],
    ratio: float | None = None,
    counts: dict[str, int] | None = None,
    min_nodes: int = 2,
) -> dict[str, int]:
    """Synthetic node count n'_t per table: ``ceil(ratio * n_t)`` or an explicit count.

    ``counts`` overrides the ratio table by table; a table with neither is an error, so a
    typo in a table name never silently falls back to some default. Ratio budgets are kept
    within ``[min_nodes, n_t]`` so a tiny table still gets a few nodes to link to.
    """
    counts = dict(counts or {})
    if ratio is not None and not (0.0 < ratio <= 1.0):
        raise ValueError(f"budget ratio must be in (0, 1], got {ratio!r}")
    if min_nodes < 1:
        raise ValueError(f"min_nodes must be at least 1, got {min_nodes!r}")
    unknown = sorted(set(counts) - set(sizes))
    if unknown:
        raise ValueError(f"budget counts name tables that do not exist: {unknown!r}")
    out: dict[str, int] = {}
    for table, n in sizes.items():
        if n < 0:
            raise ValueError(f"table {table!r}: size must be >= 0, got {n!r}")
        if table in counts:
            c = counts[table]
            if isinstance(c, bool) or not isinstance(c, (int, np.integer)):
                raise ValueError(f"table {table!r}: budget count must be an integer, got {c!r}")
            if not (0 <= c <= n) or (c == 0 and n > 0):
                raise ValueError(f"table {table!r}: budget count {c} is outside [1, {n}] "
                                 f"(table has {n} rows)")
            out[table] = int(c)
        elif ratio is not None:
            out[table] = min(n, max(min_nodes, math.ceil(ratio * n)))
        else:
            raise ValueError(f"table {table!r}: no budget (give a ratio or a count for it)")
    return out


def allocate_to_blocks(block_sizes: np.ndarray, n_syn: int) -> np.ndarray:
    """Synthetic nodes per block, proportional to block size, summing exactly to ``n_syn``.

    Largest-remainder rounding; then, while ``n_syn`` allows, every non-empty block gets at
    least one node (taken from the block most over its exact quota), because a block with
    no synthetic node would cut all of its real links out of the distilled graph.
    """
    sizes = np.asarray(block_sizes, dtype=np.int64)
    if sizes.ndim != 1 or (sizes < 0).any():
        raise ValueError("block sizes must be a 1-D array of non-negative counts")
    if n_syn < 0:
        raise ValueError(f"number of synthetic nodes must be >= 0, got {n_syn}")
    total = int(sizes.sum())
    if total == 0:
        if n_syn > 0:
            raise ValueError(f"cannot place {n_syn} synthetic nodes in blocks that are all empty")
        return np.zeros(len(sizes), dtype=np.int64)
    quota = n_syn * sizes / total
    alloc = np.floor(quota).astype(np.int64)
    rest = n_syn - int(alloc.sum())
    # Largest remainder first; ties go to the larger block, then the lower index.
    order = np.lexsort((np.arange(len(sizes)), -sizes, -(quota - alloc)))
    alloc[order[:rest]] += 1
    if n_syn >= int((sizes > 0).sum()):
        for b in np.flatnonzero((sizes > 0) & (alloc == 0)):
            surplus = np.where(alloc >= 2, alloc - quota, -np.inf)
            donor = int(np.argmax(surplus))
            alloc[donor] -= 1
            alloc[b] += 1
    return alloc


def _block_counts(child_blocks: np.ndarray, parent_blocks: np.ndarray, parent_index: np.ndarray,
                  k_child: int, k_parent: int) -> np.ndarray:
    """(k_child, k_parent) counts of child rows by (own block, parent's block)."""
    ok = parent_index >= 0
    flat = np.asarray(child_blocks)[ok] * k_parent + np.asarray(parent_blocks)[parent_index[ok]]
    return np.bincount(flat, minlength=k_child * k_parent).reshape(k_child, k_parent).astype(np.float64)


def _parent_marginal(counts: np.ndarray, parent_blocks: np.ndarray, k_parent: int) -> np.ndarray:
    """Where parents of a child fall overall; block sizes if no child has a parent."""
    col = counts.sum(axis=0)
    if col.sum() == 0:
        col = np.bincount(np.asarray(parent_blocks, dtype=np.int64), minlength=k_parent).astype(np.float64)
    if col.sum() == 0:
        return np.full(k_parent, 1.0 / k_parent)
    return col / col.sum()


def linking_matrix(
    child_blocks: np.ndarray,
    parent_blocks: np.ndarray,
    parent_index: np.ndarray,
    k_child: int,
    k_parent: int,
) -> np.ndarray:
    """P[a, b]: share of child rows in block a whose parent lies in block b.

    ``parent_index`` is the parent row of each child row (-1: missing key, excluded). A
    child block with no linked rows gets the parent block marginal, the best guess there
    is, so every row of P is a distribution.
    """
    parent_index = np.asarray(parent_index, dtype=np.int64)
    counts = _block_counts(child_blocks, parent_blocks, parent_index, k_child, k_parent)
    return _normalise_rows(counts, _parent_marginal(counts, parent_blocks, k_parent))


def _normalise_rows(counts: np.ndarray, marginal: np.ndarray) -> np.ndarray:
    rows = counts.sum(axis=1, keepdims=True)
    return np.where(rows > 0, counts / np.maximum(rows, 1.0), marginal[None, :])


def _systematic_counts(p: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Counts per category summing to n with E[count] = n * p (stratified draw)."""
    exact = n * p / p.sum()
    base = np.floor(exact).astype(np.int64)
    extra = n - int(base.sum())
    if extra > 0:
        points = rng.random() + np.arange(extra)
        cum = np.cumsum(exact - base)
        cum[-1] = extra  # guard against float round-off dropping the last point
        base += np.diff(np.searchsorted(points, cum, side="right"), prepend=0)
    return base


def _check_inputs(db: Database, gs: GraphSchema, pseudo_labels: dict[str, np.ndarray],
                  centroids: dict[str, np.ndarray], budgets: dict[str, int], target_table: str) -> None:
    if target_table not in gs.tables:
        raise ValueError(f"target table {target_table!r} is not in the database")
    for t in gs.tables:
        n = len(db.table_dict[t].df)
        for what, d in (("pseudo-labels", pseudo_labels), ("centroids", centroids), ("budget", budgets)):
            if t not in d:
                raise ValueError(f"table {t!r}: no {what}")
        labels, cent = np.asarray(pseudo_labels[t]), np.asarray(centroids[t])
        if labels.shape != (n,):
            raise ValueError(f"table {t!r}: pseudo-labels have shape {labels.shape}, expected ({n},)")
        if cent.ndim != 2 or cent.shape[0] == 0:
            raise ValueError(f"table {t!r}: centroids must be a non-empty (k, d) array, got {cent.shape}")
        if n and (labels.min() < 0 or labels.max() >= cent.shape[0]):
            raise ValueError(f"table {t!r}: pseudo-labels must lie in [0, {cent.shape[0]})")
        if not (0 <= budgets[t] <= n):
            raise ValueError(f"table {t!r}: budget {budgets[t]} is outside [0, {n}]")


def _in_degrees(db: Database, gs: GraphSchema) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """Per relation: parent row of each real child row, and real in-degree of each parent row."""
    parent_of, indeg = {}, {}
    for rel in gs.relations:
        parent_of[rel.index] = fkey_index(db, rel)
        ok = parent_of[rel.index] >= 0
        indeg[rel.index] = np.bincount(parent_of[rel.index][ok], minlength=len(db.table_dict[rel.parent].df))
    return parent_of, indeg


def _propensities(gs: GraphSchema, table: str, labels: np.ndarray, blocks_syn: np.ndarray,
                  indeg: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Per relation into ``table``: each synthetic node's mean real in-degree of its slice."""
    rels = [r for r in gs.relations if r.parent == table]
    out = {r.index: np.zeros(len(blocks_syn)) for r in rels}
    if not rels:
        return out
    total = sum(indeg[r.index] for r in rels)
    for b in np.unique(blocks_syn):
        members = np.flatnonzero(labels == b)
        members = members[np.argsort(total[members], kind="stable")]
        slots = np.flatnonzero(blocks_syn == b)
        for slot, rows in zip(slots, np.array_split(members, len(slots))):
            for r in rels:
                out[r.index][slot] = indeg[r.index][rows].mean()
    return out


def _draw_parents(rel: Relation, child_syn_blocks: np.ndarray, parent_syn_blocks: np.ndarray,
                  P: np.ndarray, marginal: np.ndarray, propensity: np.ndarray,
                  rng: np.random.Generator) -> np.ndarray:
    """One parent per synthetic child: block by P (filled blocks only), node by propensity."""
    if len(child_syn_blocks) and not len(parent_syn_blocks):
        raise ValueError(f"relation {rel.child!r}.{rel.fkey_col!r} -> {rel.parent!r}: "
                         f"parent table has no synthetic nodes to point to")
    k_parent = P.shape[1]
    filled = np.bincount(parent_syn_blocks, minlength=k_parent) > 0
    target_block = np.empty(len(child_syn_blocks), dtype=np.int64)
    for a in np.unique(child_syn_blocks):
        kids = np.flatnonzero(child_syn_blocks == a)
        p = P[a] * filled
        if p.sum() == 0:
            p = marginal * filled
        if p.sum() == 0:
            p = filled.astype(np.float64)
        n_per_block = _systematic_counts(p, len(kids), rng)
        target_block[rng.permutation(kids)] = np.repeat(np.arange(k_parent), n_per_block)
    parents = np.empty(len(child_syn_blocks), dtype=np.int64)
    for b in np.unique(target_block):
        kids = np.flatnonzero(target_block == b)
        nodes = np.flatnonzero(parent_syn_blocks == b)
        w = propensity[nodes]
        w = w if w.sum() > 0 else np.ones(len(nodes))
        n_per_node = _systematic_counts(w, len(kids), rng)
        parents[rng.permutation(kids)] = np.repeat(nodes, n_per_node)
    return parents


def generate_sbm(
    db: Database,
    pseudo_labels: dict[str, np.ndarray],
    centroids: dict[str, np.ndarray],
    budgets: dict[str, int],
    target_table: str,
    seed: int,
    codec: FeatureCodec | None = None,
) -> SyntheticGraph:
    """The distilled graph's structure: synthetic nodes per block, FK edges from the SBM.

    Features are the block centroids (the KRR stage refines them), target labels zeros
    (filled later), stored through ``codec`` when given. Synthetic nodes are laid out block
    by block. Same seed, same graph.
    """
    gs = GraphSchema.from_database(db)
    _check_inputs(db, gs, pseudo_labels, centroids, budgets, target_table)
    rng = np.random.default_rng(seed)
    labels = {t: np.asarray(pseudo_labels[t], dtype=np.int64) for t in gs.tables}
    k = {t: int(np.asarray(centroids[t]).shape[0]) for t in gs.tables}
    blocks = {
        t: np.repeat(np.arange(k[t]), allocate_to_blocks(np.bincount(labels[t], minlength=k[t]), budgets[t]))
        for t in gs.tables
    }
    parent_of, indeg = _in_degrees(db, gs)
    propensity: dict[int, np.ndarray] = {}
    for t in gs.tables:
        propensity.update(_propensities(gs, t, labels[t], blocks[t], indeg))
    parents: dict[int, np.ndarray] = {}
    for rel in gs.relations:
        kc, kp = k[rel.child], k[rel.parent]
        counts = _block_counts(labels[rel.child], labels[rel.parent], parent_of[rel.index], kc, kp)
        marginal = _parent_marginal(counts, labels[rel.parent], kp)
        P = _normalise_rows(counts, marginal)
        parents[rel.index] = _draw_parents(rel, blocks[rel.child], blocks[rel.parent], P, marginal,
                                           propensity[rel.index], rng)
    x = {t: np.asarray(centroids[t], dtype=np.float32)[blocks[t]] for t in gs.tables}
    y = np.zeros(budgets[target_table], dtype=np.float32)
    return SyntheticGraph(gs, target_table, x, parents, y, blocks).with_codec(codec)


def sbm_report(structure: SyntheticGraph, db: Database, pseudo_labels: dict[str, np.ndarray]) -> dict:
    """Real vs synthetic linking matrices per relation, budget and block fill per table.

    JSON-ready, for asset metadata. Differences are taken over the child blocks that have
    both real linked rows and synthetic children: elsewhere the synthetic row of P is only
    the fallback marginal and says nothing about fidelity.
    """
    gs = structure.schema
    labels = {t: np.asarray(pseudo_labels[t], dtype=np.int64) for t in gs.tables}
    syn_blocks = {t: np.asarray(structure.blocks[t], dtype=np.int64) for t in gs.tables}
    k = {
        t: int(max(labels[t].max(initial=-1), syn_blocks[t].max(initial=-1)) + 1)
        for t in gs.tables
    }
    tables = {}
    for t in gs.tables:
        real = np.bincount(labels[t], minlength=k[t])
        fill = np.bincount(syn_blocks[t], minlength=k[t])
        tables[t] = {
            "budget": int(len(syn_blocks[t])),
            "real_rows": int(len(labels[t])),
            "real_block_sizes": real.tolist(),
            "block_fill": fill.tolist(),
            "empty_blocks_with_real_rows": int(((real > 0) & (fill == 0)).sum()),
        }
    relations = []
    for rel in gs.relations:
        kc, kp = k[rel.child], k[rel.parent]
        real_parent = fkey_index(db, rel)
        syn_parent = np.asarray(structure.parents[rel.index], dtype=np.int64)
        real_P = linking_matrix(labels[rel.child], labels[rel.parent], real_parent, kc, kp)
        syn_P = linking_matrix(syn_blocks[rel.child], syn_blocks[rel.parent], syn_parent, kc, kp)
        real_rows = _block_counts(labels[rel.child], labels[rel.parent], real_parent, kc, kp).sum(axis=1) > 0
        syn_rows = np.bincount(syn_blocks[rel.child][syn_parent >= 0], minlength=kc) > 0
        diff = np.abs(real_P - syn_P)[real_rows & syn_rows]
        relations.append({
            "relation": rel.index,
            "child": rel.child,
            "fkey_col": rel.fkey_col,
            "parent": rel.parent,
            "real_P": real_P.round(6).tolist(),
            "synthetic_P": syn_P.round(6).tolist(),
            "max_abs_diff": float(diff.max()) if diff.size else 0.0,
            "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
        })
    return {"tables": tables, "relations": relations}


def budget_for(db: Database, budget: str, codec: FeatureCodec | None = None) -> dict[str, int]:
    """Synthetic nodes per table for a partition's budget text (``"0.01"`` or ``"n200"``).

    A ratio is a share of the database's bytes, table by table: with a ``codec`` (rows
    stored as fewer, smaller coefficients), each table gets as many more rows as the
    codec's saving per row allows, less the codec's own bytes."""
    from t2g_lib.task_data import parse_budget

    sizes = {name: len(t.df) for name, t in db.table_dict.items()}
    spec = parse_budget(budget)
    if "count" in spec:
        return budget_per_table(sizes, counts={t: min(spec["count"], n) for t, n in sizes.items()})
    if codec is None:
        return budget_per_table(sizes, ratio=spec["ratio"])
    gs = GraphSchema.from_database(db)
    fkeys = {t: sum(r.child == t for r in gs.relations) for t in gs.tables}
    full = {t: codec.basis[t].shape[1] * 4 + 8 * fkeys[t] for t in gs.tables}  # float32 row + int32 pairs
    stored = {t: codec.row_bytes(t) + 8 * fkeys[t] + 4 for t in gs.tables}  # + a float32 age
    target = spec["ratio"] * sum(sizes[t] * full[t] for t in gs.tables)
    share = spec["ratio"] * max(0.0, 1.0 - codec.nbytes() / target)
    counts = {t: min(n, max(2, math.floor(share * n * full[t] / stored[t]))) for t, n in sizes.items()}
    return budget_per_table(sizes, counts=counts)


def sbm_markdown(
    structure: SyntheticGraph, db: Database, pseudo_labels: dict[str, np.ndarray], budgets: dict[str, int]
) -> tuple[str, str]:
    """Two tables for a person: real rows vs synthetic nodes per table, and how far each
    relation's synthetic linking matrix is from the real one (``sbm_report``)."""
    report = sbm_report(structure, db, pseudo_labels)
    sizes = {name: len(t.df) for name, t in db.table_dict.items()}
    budget_md = "| table | real rows | synthetic nodes |\n|---|---:|---:|\n" + "\n".join(
        f"| {t} | {sizes[t]} | {budgets[t]} |" for t in sizes
    )
    relations_md = (
        "| child.fkey -> parent | max abs diff of linking matrix | mean abs diff |\n|---|---:|---:|\n"
        + "\n".join(
            f"| {r['child']}.{r['fkey_col']} -> {r['parent']} | {r['max_abs_diff']:.3f} | {r['mean_abs_diff']:.3f} |"
            for r in report["relations"]
        )
    )
    return budget_md, relations_md
