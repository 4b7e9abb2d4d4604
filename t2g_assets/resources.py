"""Resources: where data and artifacts live, run-wide settings, and the torch device."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from dagster import ConfigurableResource
from pydantic import Field

from t2g_lib.distilled_recipe import DistilledRecipe
from t2g_lib.text_hash import TEXT_MODEL_BUDGET


class T2GSettings(ConfigurableResource):
    """Run-wide settings: folders, seed and the gates' thresholds."""

    data_dir: str = Field(description="Folder of RelBench-format datasets (one per database).")
    storage_dir: str = Field(description="Where tensors, models and distilled databases go.")
    text_cache_dir: str = Field(description="Cache of text embeddings, shared by every database.")
    seed: int = Field(default=0, description="Seed of every stochastic stage.")
    text_model_budget: int = Field(
        default=TEXT_MODEL_BUDGET,
        description="Distinct strings per text column embedded by the sentence model; a column with more is hashed.",
    )
    max_dangling_fraction: float = Field(
        default=0.05, description="Share of foreign keys allowed to dangle before the check fails."
    )
    utility_floor: Optional[float] = Field(
        default=0.5,
        description="Minimum utility retention of T2G (best model) for the distilled database "
        "to be published; null turns the gate off (the check then always passes).",
    )
    budgets: list[str] = Field(
        default=["0.01"],
        description="Budgets the sensors distill every task at: row ratios ('0.01') or counts ('n500').",
    )
    eval_models: list[str] = Field(default=["sage", "hgt", "han"], description="GNNs trained by evaluation_scores.")
    eval_epochs: int = Field(default=5, description="Epochs of full-data training (early-stopped on val).")
    eval_steps_distilled: int = Field(
        default=DistilledRecipe.steps,
        description="Optimizer steps of training on a distilled graph (as distilled_features' gnn_steps, so "
        "evaluation reuses the GNN judge's model of the kept graph).",
    )
    eval_batch_size_distilled: Optional[int] = Field(
        default=DistilledRecipe.batch_size,
        description="Labelled examples per step on a distilled graph, each batch cut to what its seeds "
        "read; null: every example each step.",
    )
    eval_han_batch_size_distilled: Optional[int] = Field(
        default=DistilledRecipe.han_batch_size,
        description="HAN's labelled examples per step on a distilled graph (it learns better from smaller "
        "batches than SAGE and HGT); null: eval_batch_size_distilled.",
    )
    eval_patience_distilled: Optional[int] = Field(
        default=DistilledRecipe.patience,
        description="Scorings of real val without improvement after which training on a distilled graph "
        "stops (as distilled_features' gnn_patience); null: every step runs.",
    )
    few_labels_reference: bool = Field(
        default=False,
        description="Also train each evaluation model on the full database with only as many train labels as "
        "T2G's graph holds (the 'few_labels' row): what so few labels teach. Costs about one full-data "
        "training; the benchmarks turn it on.",
    )

    def distilled_recipe(self) -> DistilledRecipe:
        """How evaluation trains every model on a distilled graph."""
        return DistilledRecipe(steps=self.eval_steps_distilled, batch_size=self.eval_batch_size_distilled,
                               patience=self.eval_patience_distilled, han_batch_size=self.eval_han_batch_size_distilled)

    def dataset_path(self, database: str) -> Path:
        return Path(self.data_dir) / database


class ComputeDevice(ConfigurableResource):
    """The torch device every torch stage runs on: ``auto`` picks CUDA when present."""

    device: str = Field(default="auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'.")
    num_threads: int = Field(default=0, description="CPU threads for torch (0: torch's default).")

    def torch_device(self):
        import torch

        if self.num_threads > 0:
            torch.set_num_threads(self.num_threads)

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def default_data_dir() -> str:
    return os.environ.get("T2G_DATA_DIR", str(Path.cwd() / "data"))


def default_storage_dir() -> str:
    return os.environ.get("T2G_STORAGE_DIR", str(Path.cwd() / "storage"))
