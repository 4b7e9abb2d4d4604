"""Run config of the stages with knobs: ``PretrainConfig``, ``TeacherConfig`` and ``KRRConfig`` as ``dg.Config``.

The method's dataclasses stay the single source of every knob and default; each Dagster
config class is generated from one, so the launchpad shows and edits exactly those fields
(with their defaults) and nothing is copied. The seed is not run config: it is the run-wide
``settings.seed``. Fields whose types Dagster's config system cannot express (unions inside
mappings) keep their defaults.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from dagster import Config
from pydantic import Field, create_model

from t2g_lib.feature_codec import StorageConfig
from t2g_lib.krr_config import KRRConfig
from t2g_lib.pretrain import PretrainConfig
from t2g_lib.teacher_config import TeacherConfig

_NOT_RUN_CONFIG = {"seed", "kernel_params"}


def config_class(name: str, params: type, doc: str, fixed: frozenset[str] = frozenset()) -> type[Config]:
    """A ``dg.Config`` with the fields (types and defaults) of dataclass ``params``, less
    ``fixed`` ones (set by the stage itself)."""
    hints = typing.get_type_hints(params)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(params):
        if f.name in _NOT_RUN_CONFIG or f.name in fixed:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        fields[f.name] = (hints[f.name], Field(default=default))
    cls = create_model(name, __base__=Config, __doc__=doc, **fields)
    cls.__module__ = __name__
    return cls


PretrainParams = config_class(
    "PretrainParams", PretrainConfig, "Knobs of cluster pretraining (t2g_lib.pretrain.PretrainConfig)."
)
TeacherParams = config_class(
    "TeacherParams", TeacherConfig, "Knobs of the teacher's soft labels (t2g_lib.teacher.TeacherConfig)."
)
KRRParams = config_class("KRRParams", KRRConfig, "Knobs of the KRR distillation (t2g_lib.krr.KRRConfig).")
StorageParams = config_class(
    "StorageParams", StorageConfig,
    "How the graphs at a byte budget store rows (t2g_lib.feature_codec.StorageConfig).",
)
ABLATION = {"beta": 0.0, "select": "krr", "coreset_fallback": "none"}
"""The ablation is T2G's own KRR graph without the pseudo-label term: no GNN judge, no coreset."""
AblationParams = config_class(
    "AblationParams", KRRConfig, "Knobs of the KRR distillation without the pseudo-label term (beta = 0), "
    "its checkpoint kept by the KRR surrogate, never replaced by a coreset.",
    fixed=frozenset(ABLATION),
)


def pretrain_config(params: Config, seed: int) -> PretrainConfig:
    return PretrainConfig(**params.model_dump(), seed=seed)


def teacher_config(params: Config, seed: int) -> TeacherConfig:
    return TeacherConfig(**params.model_dump(), seed=seed)


def krr_config(params: Config, seed: int, **fixed: Any) -> KRRConfig:
    return KRRConfig(**params.model_dump(), seed=seed, **fixed)
