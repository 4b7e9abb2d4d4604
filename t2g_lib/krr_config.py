"""The knobs of KRR distillation, in a module of their own: the Dagster definitions build
their run config from them at start-up, which must not import torch."""

from __future__ import annotations

from dataclasses import dataclass, field

from t2g_lib.distilled_recipe import DistilledRecipe


@dataclass
class KRRConfig:
    """Knobs of the KRR distillation; ``beta=0`` is the no-pseudo-label ablation."""

    kernel: str = "ntk"
    ridge: float = 1e-3
    hops: int = 2
    beta: float = 0.5
    steps: int = 300
    lr: float = 0.03
    batch_size: int = 1024
    eval_every: int = 10
    pseudo_batch_size: int = 512
    num_neighbors: list[int] = field(default_factory=lambda: [8, 8])
    init_noise: float = 0.01
    seed: int = 0
    kernel_params: dict[str, float | int] = field(default_factory=dict)
    pseudo_pool_batches: int = 8  # distinct pseudo-label batches embedded per table
    aggr: str = "sum"  # how the propagation combines neighbours: "mean" or "sum" (counts show)
    temporal: bool = True  # rows carry ages: real ones at their seed's time, synthetic ones learned
    support_size: int = 2048  # synthetic target nodes in one step's (and validation's) KRR solve
    pseudo_support_size: int = 512  # synthetic nodes per table in one step's pseudo-label solve
    pseudo_tables: int = 4  # tables drawn per step for the pseudo-label term (its mean over them); 0: every table
    age_init: str = "examples"  # target-table children start at a real example's ages, or "block_median"
    start: str = "centroids"  # the SBM graph at its centroids, or "herding": a subgraph coreset of real examples
    select: str = "gnn"  # keep the checkpoint the evaluation GNN ("gnn"), or the KRR surrogate ("krr"), scores best on val
    gnn_every: int = 100  # with select="gnn": the GNN judges the start, every gnn_every-th step, the last, the surrogate's best
    gnn_first: int = 50  # with a coreset to weigh: the GNN judges KRR first at this step, not at its start (0: at the start)
    gnn_steps: int = DistilledRecipe.steps  # optimizer steps of each judging GNN (as evaluation trains)
    gnn_batch_size: int | None = DistilledRecipe.batch_size  # examples per judging step; None: every example
    gnn_han_batch_size: int | None = DistilledRecipe.han_batch_size  # HAN's batches in the recipe evaluation shares with the judge; None: gnn_batch_size
    gnn_patience: int | None = DistilledRecipe.patience  # judged val scorings without improvement before a judging GNN stops; None: never
    coreset_fallback: str = "histories"  # with select="gnn": the herding coreset of "histories" (or "subgraphs", "none") kept if it judges better
    labels: str = "teacher"  # train examples labelled by the teacher's out-of-fold predictions (when given), or "hard"
    concede: float | None = 0.05  # with a coreset fallback: KRR stops at a judged step (after the start) whose GNN val trails the coreset's by more than this fraction; None: never
    coreset_feature_dim: int = 8  # components per row of that coreset (its own codec, in the same bytes); 0: as the KRR graph
    coreset_labels: list[str] = field(default_factory=lambda: ["teacher", "hard"])  # labellings of that coreset the judge weighs (the teacher's where there is one)
    coreset_label_times: list[int] = field(default_factory=lambda: [0, 1])  # label times per entity history (0: all), one coreset judged per entry (krr_start.herding_coresets)
    val_rows: int | None = 10_000  # val labels the surrogate and the judge score on, drawn with the seed (task_data.with_val_sample); None: all
    pool_rows: int | None = 131_072  # labelled train rows embedded for the task term (and no more than steps x batch_size); None: no cap beyond that

    def judge_recipe(self) -> DistilledRecipe:
        """How the GNN judge trains on each graph it scores."""
        return DistilledRecipe(steps=self.gnn_steps, batch_size=self.gnn_batch_size, patience=self.gnn_patience,
                               han_batch_size=self.gnn_han_batch_size)
