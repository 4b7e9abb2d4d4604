"""PNG figures of the evaluation table, drawn with matplotlib's Agg renderer.

Figures are built as ``matplotlib.figure.Figure`` objects, never through pyplot, so no
global backend or figure registry is touched (safe in a Dagster worker, no display).

Both take the DataFrame of ``evaluate.evaluate_methods`` (or several, concatenated, e.g.
one per budget) and return PNG bytes for asset metadata or a report.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from t2g_lib.evaluate import FEW_LABELS, FULL


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    buf = io.BytesIO()
    FigureCanvasAgg(fig).print_png(buf)
    return buf.getvalue()


def _figure(n_panels: int, width: float = 4.5, height: float = 3.6):
    from matplotlib.figure import Figure

    n = max(n_panels, 1)
    fig = Figure(figsize=(width * n, height), dpi=110, layout="tight")
    return fig, fig.subplots(1, n, squeeze=False)[0]


def plot_metric_vs_compression(df: pd.DataFrame) -> bytes:
    """Test metric against compression ratio (log x): one panel per GNN, one line per method
    across budgets; horizontal references: the same GNN on the full data (dashed), on the
    full data with as few labels as T2G (dash-dot), and every other full-data model, such
    as the GBM reference (dotted)."""
    distilled = df[~df["method"].isin([FULL, FEW_LABELS])]
    models = list(dict.fromkeys(distilled["model"])) or list(dict.fromkeys(df["model"]))
    others = df[(df["method"] == FULL) & ~df["model"].isin(models)]
    fig, axes = _figure(len(models))
    metric = str(df["metric"].iloc[0]) if len(df) else "metric"
    for ax, model in zip(axes, models):
        for method, rows in distilled[distilled["model"] == model].groupby("method", sort=False):
            rows = rows.sort_values("compression_ratio")
            ax.errorbar(rows["compression_ratio"], rows["value"], yerr=rows["value_std"],
                        marker="o", capsize=3, label=str(method))
        sub = df[df["model"] == model]
        for method, style, label in ((FULL, "--", "full data"), (FEW_LABELS, "-.", "full data, few labels")):
            ref = sub[sub["method"] == method]
            if len(ref):
                ax.axhline(float(ref["value"].mean()), color="black", linestyle=style, label=label)
        for other, rows in others.groupby("model", sort=False):
            ax.axhline(float(rows["value"].mean()), color="grey", linestyle=":", label=f"{other} (full data)")
        ax.set_xscale("log")
        ax.set_xlabel("compression ratio (full bytes / graph bytes)")
        ax.set_ylabel(f"test {metric}")
        ax.set_title(str(model))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
    return _png(fig)


def plot_retention_bars(df: pd.DataFrame) -> bytes:
    """Utility retention per method (grouped by method, one bar per model); 1 = as good as
    full data, 0 = no better than the trivial predictor."""
    sub = df[df["method"] != FULL].copy()
    if sub["compression_ratio"].nunique() > 1:
        sub["label"] = [f"{m}\n{r:,.0f}x" for m, r in zip(sub["method"], sub["compression_ratio"])]
    else:
        sub["label"] = sub["method"].astype(str)
    labels = list(dict.fromkeys(sub["label"]))
    models = list(dict.fromkeys(sub["model"]))
    fig, axes = _figure(1, width=max(5.0, 1.1 * len(labels) * max(len(models), 1) ** 0.5))
    ax = axes[0]
    width = 0.8 / max(len(models), 1)
    pos = np.arange(len(labels))
    for i, model in enumerate(models):
        rows = sub[sub["model"] == model].groupby("label", sort=False)["utility_retention"].mean()
        ax.bar(pos + i * width, [rows.get(lab, np.nan) for lab in labels], width, label=str(model))
    ax.axhline(1.0, color="black", linestyle="--", linewidth=1)
    ax.axhline(0.0, color="grey", linewidth=1)
    ax.set_xticks(pos + width * (len(models) - 1) / 2, labels, rotation=30, ha="right")
    ax.set_ylabel("utility retention")
    ax.legend(fontsize="small")
    return _png(fig)
