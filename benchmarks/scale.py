"""Benchmark: what the chain costs as the database grows. Wall time and peak resident memory
per stage on TPC-H at several scale factors (and Lahman for reference), with the fitted
log-log slope of each against rows.

Per database, ``t2g distill <db> <task> --ratio R`` runs in a child process with its own
Dagster instance and storage (so nothing is reused: no cached tokens, no text cache). The
process tree's resident memory is sampled with psutil every ``--interval`` seconds. The CLI
runs every stage in its one process, one after another, and Python seldom returns memory to
the system, so per stage two numbers: the largest sample between its STEP_START and its
STEP_SUCCESS in the run's event log (``peak_rss``, which may be an earlier stage's high
water mark), and how far that is above the last sample before it started (``growth``, what
the stage itself added). The run's peak is the 8 GiB target's number. The conversion from
``tpchgen-cli`` parquet (``t2g prepare tpch --scale``) is timed as a stage of its own. Each finished database is appended with its commit to
``benchmarks/results/scale.jsonl``; a rerun skips it. ``--report`` writes the markdown table
and a log-log plot (``scale.md``, ``scale.png``) with fitted slopes against rows: time per
stage and whole, and the whole run's peak memory.

    python -m benchmarks.scale --scales 0.01,0.1,0.3,1 --lahman
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.full_model import RESULTS, commit, read_jsonl

OUT = RESULTS / "scale.jsonl"
TASKS = {"lahman": "player-retention"}
TPCH_TASK = "customer-reorder"
TIMELINE_STEP = 5.0  # seconds between the memory samples a row keeps


class TreeMemory:
    """Resident memory of a process and all its children, sampled in a thread: all of it
    (``rss``) and its anonymous part (``anon``: resident less file-backed and shared pages).
    Memory-mapped stage files (tokens) count in ``rss`` while paged in, but they are clean
    file pages the kernel can drop under pressure; ``anon`` is what the process must hold."""

    def __init__(self, pid: int, interval: float) -> None:
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.anon: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
                rss = anon = 0
                for p in procs:
                    try:
                        info = p.memory_info()
                    except psutil.Error:
                        continue
                    rss, anon = rss + info.rss, anon + info.rss - info.shared
                now = time.time()
                self.samples.append((now, rss))
                self.anon.append((now, anon))
            except psutil.Error:
                return
            self._stop.wait(self.interval)

    def timeline(self, step: float) -> list[list[float]]:
        """[seconds from the first sample, resident bytes, anonymous bytes], at most one
        sample per ``step`` seconds: the curve the report plots."""
        out, last = [], -float("inf")
        t0 = self.samples[0][0] if self.samples else 0.0
        for (t, rss), (_, anon) in zip(self.samples, self.anon):
            if t - last >= step:
                out.append([round(t - t0, 1), rss, anon])
                last = t
        return out

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, start: float = 0.0, end: float = float("inf"), anon: bool = False) -> int:
        """The largest sample (of ``anon`` memory if set) in [start, end], or the last one
        before it for a step shorter than the sampling interval."""
        inside = [r for t, r in (self.anon if anon else self.samples) if start <= t <= end]
        return max(inside) if inside else self.before(start, anon)

    def before(self, start: float, anon: bool = False) -> int:
        """The last sample before ``start`` (0 before any)."""
        return next((r for t, r in reversed(self.anon if anon else self.samples) if t < start), 0)


class MemoryCap:
    """A memory cgroup (v2, else v1) holding a process tree to ``limit`` bytes, page cache
    included: the kernel reclaims file pages (memory-mapped tokens, scratch files) inside it
    and kills the tree if what it must hold does not fit. Its ``peak`` is the kernel's
    account of the group's highest usage. Needs a writable cgroup hierarchy (root)."""

    def __init__(self, limit: int) -> None:
        base = Path("/sys/fs/cgroup")
        name = f"t2g-scale-{os.getpid()}"
        if (base / "cgroup.controllers").exists():
            self.path, self.limit_file, self.peak_file = base / name, "memory.max", "memory.peak"
        else:
            self.path, self.limit_file, self.peak_file = base / "memory" / name, "memory.limit_in_bytes", \
                "memory.max_usage_in_bytes"
        try:
            self.path.mkdir()
            (self.path / self.limit_file).write_text(str(limit))
        except OSError as e:
            raise SystemExit(f"--memory-limit needs a writable memory cgroup ({self.path}): {e}") from e
        self.limit = limit

    def enter(self) -> None:
        """Run in the child before it execs: move it into the group."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def peak(self) -> int:
        return int((self.path / self.peak_file).read_text())

    def close(self) -> None:
        """Remove the group; processes the run left in it (a worker pool winding down) are
        killed first, as the group cannot be removed while it holds any."""
        for _ in range(100):
            pids = (self.path / "cgroup.procs").read_text().split()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.1)
        self.path.rmdir()


def _monitored(cmd: list[str], env: dict[str, str], interval: float,
               cap: MemoryCap | None = None) -> tuple[float, TreeMemory, str, int]:
    """Run ``cmd`` (inside ``cap`` if given); its wall seconds, the memory samples, its output
    and exit status (raises on failure outside a cap: only a capped run may fail and be a row)."""
    t0 = time.time()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=cap.enter if cap else None)
    mem = TreeMemory(proc.pid, interval)
    out, _ = proc.communicate()
    mem.stop()
    if proc.returncode != 0 and cap is None:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-3000:]}")
    return time.time() - t0, mem, out, proc.returncode


def _stage_windows(dagster_home: Path) -> list[tuple[str, float, float]]:
    """(stage, start, end) of every step of every run in one Dagster instance, oldest first."""
    from dagster import DagsterInstance

    from t2g_cli.runner import step_windows

    with DagsterInstance.from_config(str(dagster_home)) as inst:
        return [(step, start, end) for run in reversed(inst.get_runs())
                for step, start, end, _ in step_windows(inst, run.run_id)]


def _krr_outcome(dagster_home: Path) -> dict:
    """What the KRR stage did (its materialization's ``kept``, ``best_step``, ``conceded_at``):
    a run that concedes to the herding coreset early stops sooner, so its time says so."""
    from dagster import AssetKey, DagsterInstance

    with DagsterInstance.from_config(str(dagster_home)) as inst:
        event = inst.get_latest_materialization_event(AssetKey("distilled_features"))
    if event is None or event.asset_materialization is None:
        return {}
    meta = event.asset_materialization.metadata
    return {k: meta[k].value for k in ("kept", "best_step", "conceded_at") if k in meta}


def measure(database: str, scale: float | None, ratio: str, interval: float,
            executor: str = "in-process", memory_limit: int | None = None) -> dict:
    """One database end to end in fresh folders: per stage seconds and peak memory, with the
    memory sampled over time (``timeline``: seconds from the start, resident and anonymous
    bytes, every ``TIMELINE_STEP`` seconds). ``executor="dask"`` runs the chain's steps on a
    local two-worker Dask cluster; ``memory_limit`` runs it in a memory cgroup of that many
    bytes, where it may fail (the row says how)."""
    import pyarrow.parquet as pq

    t2g = str(Path(sys.executable).with_name("t2g"))
    ran_on = commit()  # the code the run imports: the tree may move on while it runs
    with tempfile.TemporaryDirectory(prefix="t2g-scale-") as tmp:
        tmp = Path(tmp)
        home, data = tmp / "home", tmp / "data"
        home.mkdir()
        (home / "dagster.yaml").write_text((Path(__file__).parents[1] / "dagster.yaml").read_text())
        env = {**os.environ, "DAGSTER_HOME": str(home), "T2G_DATA_DIR": str(data), "T2G_STORAGE_DIR": str(tmp / "st"),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
               "TMPDIR": str(tmp)}  # scratch files on the same disk, gone with the folder
        if executor == "dask":
            env["T2G_EXECUTOR"] = "dask"
            if memory_limit:  # the cgroup's limit shared out: Dask pauses a worker before the kernel kills it
                env["T2G_DASK_MEMORY_LIMIT"] = str(memory_limit // 2)
        name, task = (f"tpch-sf{scale:g}", TPCH_TASK) if scale is not None else (database, TASKS[database])
        stages = []
        prep = [t2g, "prepare", "tpch", "--scale", f"{scale:g}"] if scale is not None else [t2g, "prepare", database]
        seconds, mem, _, _ = _monitored(prep, env, interval)
        stages.append({"stage": "prepare", "seconds": seconds, "peak_rss": mem.peak(), "growth": mem.peak()})
        rows = sum(pq.read_metadata(f).num_rows for f in (data / name / "db").glob("*.parquet"))
        cap = MemoryCap(memory_limit) if memory_limit else None
        try:
            wall, mem, out, status = _monitored(
                [t2g, "distill", name, task, "--ratio", ratio, "--out", str(tmp / "st")], env, interval, cap)
            cgroup_peak = cap.peak() if cap else None
        finally:
            if cap:
                cap.close()
        krr = _krr_outcome(home)
        start = mem.samples[0][0] if mem.samples else time.time()
        for stage, begin, end in _stage_windows(home):
            peak = mem.peak(begin, end)
            stages.append({"stage": stage, "seconds": end - begin, "peak_rss": peak, "growth": peak - mem.before(begin),
                           "peak_anon": mem.peak(begin, end, anon=True), "window": [begin - start, end - start]})
    row = {"database": name, "scale": scale, "rows": rows, "ratio": ratio, "commit": ran_on,
           "executor": executor, "memory_limit": memory_limit, "cgroup_peak": cgroup_peak,
           "distill_seconds": wall, "peak_rss": mem.peak(), "peak_anon": mem.peak(anon=True),
           "stages": stages, "timeline": mem.timeline(TIMELINE_STEP), "krr": krr,
           "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%d %H:%M")}
    if status != 0:
        last = out.strip().splitlines()[-1][-300:] if out.strip() else ""
        killed = " (killed: over the memory limit)" if status == -9 else ""
        row["failed"] = f"exit {status}{killed}: {last}"
    return row


def slope(x: list[float], y: list[float]) -> float:
    """Least-squares slope of log y against log x (NaN with fewer than two points)."""
    if len(x) < 2:
        return float("nan")
    return float(np.polyfit(np.log(x), np.log(np.maximum(y, 1e-9)), 1)[0])


def run_kind(r: dict) -> str:
    """How a row ran: the executor, the memory cgroup's limit, and a failure."""
    kind = r.get("executor", "in-process")
    if r.get("memory_limit"):
        kind += f", {r['memory_limit'] / 2**30:g} GiB cgroup"
    return kind + (" **FAILED**" if "failed" in r else "")


def krr_text(krr: dict | None) -> str:
    """The KRR stage's outcome in a cell ("-" where the row did not record it)."""
    if not krr:
        return "-"
    conceded = f", conceded at step {krr['conceded_at']}" if krr.get("conceded_at") is not None else ""
    return f"{krr.get('kept', '?')} (step {krr.get('best_step', '?')}{conceded})"


def report(rows: list[dict]) -> str:
    if not rows:
        return "No rows yet.\n"
    gib = 2.0**30
    stage_names = list(dict.fromkeys(s["stage"] for r in rows for s in r["stages"]))
    lines = ["| database | rows | run | " + " | ".join(f"{s} s (+GiB)" for s in stage_names)
             + " | distill s | peak GiB | peak anon GiB | cgroup peak GiB | rows/s | KRR kept | commit |",
             "|---|---:|---|" + "---:|" * len(stage_names) + "---:|---:|---:|---:|---:|---|---|"]
    for r in sorted(rows, key=lambda r: r["rows"]):
        by = {s["stage"]: s for s in r["stages"]}
        cells = [f"{by[s]['seconds']:.0f} (+{by[s]['growth'] / gib:.1f})" if s in by else "-" for s in stage_names]
        lines.append(f"| {r['database']} | {r['rows']:,} | {run_kind(r)} | " + " | ".join(cells)
                     + f" | {r['distill_seconds']:.0f} | {r['peak_rss'] / gib:.1f} | "
                     + (f"{r['peak_anon'] / gib:.1f}" if "peak_anon" in r else "-")
                     + (f" | {r['cgroup_peak'] / gib:.1f}" if r.get("cgroup_peak") else " | -")
                     + f" | {r['rows'] / r['distill_seconds']:,.0f} | {krr_text(r.get('krr'))}"
                     f" | {r['commit']} |")
    anon_rows = [r for r in rows if any("peak_anon" in s for s in r["stages"])]
    anon = []
    if anon_rows:
        names = [s for s in stage_names if s != "prepare"]
        anon = ["", "Peak anonymous memory per stage (GiB; what the process itself held, without file pages):", "",
                "| database | run | " + " | ".join(names) + " | commit |", "|---|---|" + "---:|" * len(names) + "---|"]
        for r in sorted(anon_rows, key=lambda r: r["rows"]):
            by = {s["stage"]: s for s in r["stages"]}
            anon.append(f"| {r['database']} | {run_kind(r)} | "
                        + " | ".join(f"{by[s]['peak_anon'] / gib:.1f}" if "peak_anon" in by.get(s, {}) else "-"
                                     for s in names) + f" | {r['commit']} |")
    failures = [f"- {r['database']} at {r['commit']} ({run_kind(r)}): {r['failed']}" for r in rows if "failed" in r]
    notes = [f"- {r['database']} at {r['commit']} ({run_kind(r)}): {r['note']}" for r in rows if r.get("note")]
    tpch = latest_tpch(rows)
    n = [r["rows"] for r in tpch]
    fits = [f"- whole distillation: time slope {slope(n, [r['distill_seconds'] for r in tpch]):.2f}, "
            f"memory slope {slope(n, [r['peak_rss'] for r in tpch]):.2f}"]
    for s in stage_names:
        have = [r for r in tpch if any(x["stage"] == s for x in r["stages"])]
        sec = [next(x["seconds"] for x in r["stages"] if x["stage"] == s) for r in have]
        fits.append(f"- {s}: time slope {slope([r['rows'] for r in have], sec):.2f}")
    return ("\n".join(lines + anon) + "\n\nPer stage: seconds (memory the stage added above what the process held "
            "when it started, GiB). Peak GiB: the whole run's resident memory at its highest; peak anon GiB: its "
            "anonymous part (not measured before 2026-12-06), without the memory-mapped files (tokens, embeddings, "
            "scratch) the kernel can drop. Cgroup peak: the kernel's account of a run held in a memory cgroup "
            "(``--memory-limit``), page cache included. A database measured again (``--remeasure``) has a row per "
            "commit.\n"
            + ("\nFailed runs:\n\n" + "\n".join(failures) + "\n" if failures else "")
            + ("\nConditions of some runs:\n\n" + "\n".join(notes) + "\n" if notes else "")
            + "\nFitted log-log slopes against rows on TPC-H, the latest in-process measurement of each scale "
            "(1.0 = linear):\n\n" + "\n".join(fits) + "\n")


def latest_tpch(rows: list[dict]) -> list[dict]:
    """The last finished in-process measurement of each TPC-H scale, by rows."""
    latest = {r["database"]: r for r in rows if r["scale"] is not None and "failed" not in r
              and r.get("executor", "in-process") == "in-process"}
    return sorted(latest.values(), key=lambda r: r["rows"])


def plot_timeline(rows: list[dict], path: Path) -> None:
    """Memory over time of the latest runs of the largest database measured with a timeline,
    one panel per run kind, stages marked: where in the chain the peak is."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in rows if r.get("timeline")]
    if not timed:
        return
    top = max(r["rows"] for r in timed)
    latest = {run_kind(r): r for r in timed if r["rows"] == top}
    fig, axes = plt.subplots(len(latest), 1, figsize=(11, 3.2 * len(latest)), squeeze=False)
    for ax, (kind, r) in zip(axes[:, 0], latest.items()):
        t = [p[0] / 60 for p in r["timeline"]]
        ax.plot(t, [p[1] / 2**30 for p in r["timeline"]], label="resident")
        ax.plot(t, [p[2] / 2**30 for p in r["timeline"]], label="anonymous")
        if r.get("memory_limit"):
            ax.axhline(r["memory_limit"] / 2**30, color="red", ls=":", label="cgroup limit")
        for s in r["stages"]:
            if "window" in s and s["seconds"] > 0.02 * r["distill_seconds"]:
                ax.axvspan(s["window"][0] / 60, s["window"][1] / 60, alpha=0.08, color="gray")
                ax.text(s["window"][0] / 60, ax.get_ylim()[1] * 0.92, s["stage"], fontsize=7)
        ax.set(xlabel="minutes", ylabel="GiB", title=f"{r['database']} ({kind}) at {r['commit']}")
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tpch = latest_tpch(rows)
    if not tpch:
        return
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    n = [r["rows"] for r in tpch]
    a.loglog(n, [r["distill_seconds"] for r in tpch], "o-", label="whole distillation")
    for s in dict.fromkeys(x["stage"] for r in tpch for x in r["stages"]):
        have = [r for r in tpch if any(x["stage"] == s for x in r["stages"])]
        a.loglog([r["rows"] for r in have], [next(x["seconds"] for x in r["stages"] if x["stage"] == s) for r in have],
                 ".--", label=s)
    a.set(xlabel="rows", ylabel="seconds", title="time")
    a.legend(fontsize=7)
    b.loglog(n, [r["peak_rss"] / 2**30 for r in tpch], "o-")
    b.set(xlabel="rows", ylabel="peak resident GiB", title="memory")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="0.01,0.1", help="comma-separated TPC-H scale factors")
    ap.add_argument("--lahman", action="store_true", help="also Lahman, for reference")
    ap.add_argument("--ratio", default="0.01")
    ap.add_argument("--interval", type=float, default=0.5, help="seconds between memory samples")
    ap.add_argument("--report", action="store_true", help="run nothing: write the table and plot")
    ap.add_argument("--remeasure", action="store_true", help="measure databases again (a row per commit)")
    ap.add_argument("--executor", choices=["in-process", "dask"], default="in-process",
                    help="in-process: `t2g distill` as a user runs it; dask: its steps on a local two-worker cluster")
    ap.add_argument("--memory-limit", type=float, default=None, metavar="GIB",
                    help="run the distillation in a memory cgroup of this many GiB (needs root)")
    args = ap.parse_args()
    if not args.report:
        limit = int(args.memory_limit * 2**30) if args.memory_limit else None
        done = {(r["database"], r["ratio"], r.get("executor", "in-process"), r.get("memory_limit"))
                for r in read_jsonl(OUT)}
        todo = [("tpch", float(s)) for s in args.scales.split(",") if s] + ([("lahman", None)] if args.lahman else [])
        for database, scale in todo:
            name = f"tpch-sf{scale:g}" if scale is not None else database
            if (name, args.ratio, args.executor, limit) in done and not args.remeasure:
                continue
            print(f"{time.strftime('%H:%M:%S')} {name}: distilling at {args.ratio} ({args.executor}"
                  + (f", {args.memory_limit:g} GiB cgroup" if limit else "") + ")", flush=True)
            row = measure(database, scale, args.ratio, args.interval, args.executor, limit)
            with OUT.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(f"{time.strftime('%H:%M:%S')} {name}: {row['rows']:,} rows, {row['distill_seconds']:.0f} s, "
                  f"peak {row['peak_rss'] / 2**30:.1f} GiB" + (f", FAILED {row['failed']}" if "failed" in row else ""),
                  flush=True)
    rows = read_jsonl(OUT)
    md = report(rows)
    (RESULTS / "scale.md").write_text(md)
    plot(rows, RESULTS / "scale.png")
    plot_timeline(rows, RESULTS / "scale-timeline.png")
    print(md)


if __name__ == "__main__":
    main()
