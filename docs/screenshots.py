"""Screenshots of what the Dagster UI shows a person, re-runnable by anyone.

Distills the small shop fixture (``tests/shop.py``) with ``t2g distill --evaluate`` into a
temporary Dagster home, starts ``dagster dev`` on loopback over it, and has headless
Chromium (Debian's ``chromium`` package) photograph the asset graph and the pages of the
assets whose metadata a person reads: the table sizes, the schema, the score table.
Writes PNGs to ``docs/screenshots/``.

    .venv/bin/python docs/screenshots.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
BIN = Path(sys.executable).parent
PAGES = {
    "asset-graph": "/asset-groups",
    "raw_tables": "/assets/raw_tables",
    "validated_schema": "/assets/validated_schema",
    "evaluation_scores": "/assets/evaluation_scores",
}


def main() -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Chromium: apt-get install chromium")
    sys.path.insert(0, str(ROOT / "tests"))
    from shop import make_shop

    from t2g_cli.ui import dagster_dev

    tmp = Path(tempfile.mkdtemp(prefix="t2g-screens-"))
    make_shop(tmp / "data" / "shop")
    home = tmp / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "T2G_DATA_DIR": str(tmp / "data"),
           "T2G_STORAGE_DIR": str(tmp / "storage"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    subprocess.run([str(BIN / "t2g"), "distill", "shop", "churn", "--ratio", "0.2", "--evaluate",
                    "--models", "sage"], cwd=ROOT, env=env, check=False)
    with dagster_dev(ROOT, env) as (port, _):
        OUT.mkdir(parents=True, exist_ok=True)
        for name, path in PAGES.items():
            subprocess.run(
                [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                 "--window-size=1600,1200", "--virtual-time-budget=20000",
                 f"--screenshot={OUT / (name + '.png')}", f"http://127.0.0.1:{port}{path}"],
                check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120,
            )
            print(f"wrote {OUT / (name + '.png')}")
    shutil.rmtree(tmp, ignore_errors=True)

if __name__ == "__main__":
    main()
