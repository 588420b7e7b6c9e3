"""Reproduce the committed report evaluation/reports/dev/ from scratch: all four prior settings on dev.csv.

Run from the repository root (needs matplotlib: ``pip install -e ".[plots]"``)::

    python evaluation/compare_priors.py            # writes evaluation/reports/dev/
    python evaluation/compare_priors.py -o OUT     # somewhere else

The numbers change whenever the network or the priors change; re-run this script and commit its output.
Nothing here is tuned to the vignettes: 1000 bootstrap resamples, 1000 prior draws with log-odds spread 0.5,
2000 sampled cases per setting, simulated consultations of every case, seed 0, and the metrics weighted by
the case mixes of the ``article`` and ``epidemiology`` settings besides the balanced ones. (The defaults of
:func:`bayesdx.evaluation.evaluate` skip the consultations and the prior Monte Carlo, which take most of
the time.)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bayesdx.evaluation import evaluate

ROOT = Path(__file__).resolve().parents[1]
VIGNETTES = Path("evaluation") / "vignettes" / "dev.csv"  # relative to ROOT, as the report records it
REPORT = ROOT / "evaluation" / "reports" / "dev"
SETTINGS = ("article", "article_kent", "epidemiology", "uniform")
CASE_MIXES = ("article", "epidemiology")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=REPORT, help=f"report folder (default: {REPORT})")
    args = parser.parse_args(argv)
    output = args.output.resolve()
    os.chdir(ROOT)
    start = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - start:6.1f}s] {message}", file=sys.stderr, flush=True)

    result = evaluate(VIGNETTES, priors=SETTINGS, report_dir=output, progress=say, next_steps=True, n_prior_draws=1000, case_mix=CASE_MIXES)
    print(result.metrics_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
