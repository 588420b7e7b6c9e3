"""Top-1, top-3 and MRR of every prior setting under every ranking, on each development vignette file.

Run from the repository root::

    python evaluation/compare_rankings.py                 # all vignette files in evaluation/vignettes/
    python evaluation/compare_rankings.py dev.csv dev2.csv

Prints one table per file and the exact McNemar test of top-1 hits between the posterior ranking
and each counterfactual ranking (same cases, same setting). This is how the default ranking was chosen;
see README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

import bayesdx
from bayesdx.counterfactual import RANKINGS
from bayesdx.evaluation.metrics import mcnemar_exact

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ("article", "article_kent", "epidemiology", "uniform")


def ranks(model: bayesdx.Model, frame: pd.DataFrame, ranking: str) -> np.ndarray:
    """1-based rank of each vignette's true cause under ``ranking``."""
    evidence = frame[[c for c in frame.columns if c in model.states]]
    scored = bayesdx.score(evidence, model=model, top_k=len(model.hypotheses), ranking=ranking)
    order = scored[[f"cause_{j}" for j in range(1, len(model.hypotheses) + 1)]].to_numpy(dtype=object)
    return 1 + np.argmax(order == frame["true_cause"].to_numpy(dtype=object)[:, None], axis=1)


def main(argv: list[str]) -> int:
    folder = ROOT / "evaluation" / "vignettes"
    files = [folder / name for name in argv] if argv else sorted(folder.glob("*.csv"))
    for path in files:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False).replace("", np.nan)
        rows, tests = [], []
        for setting in SETTINGS:
            model = bayesdx.load_model(priors=setting)
            hits = {}
            for ranking in RANKINGS:
                r = ranks(model, frame, ranking)
                hits[ranking] = r == 1
                rows.append(
                    {"priors": setting, "ranking": ranking, "top1": np.mean(r == 1), "top3": np.mean(r <= 3), "mrr": np.mean(1.0 / r)}
                )
            for ranking in RANKINGS:
                if ranking != "posterior":
                    m = mcnemar_exact(hits["posterior"], hits[ranking], "posterior", ranking)
                    tests.append(
                        {"priors": setting, "a": "posterior", "b": ranking, "a_only": m.a_only, "b_only": m.b_only, "p_value": m.p_value}
                    )
        print(f"## {path.relative_to(ROOT)} ({len(frame)} vignettes)\n")
        print(pd.DataFrame(rows).to_string(index=False, float_format="%.3f"))
        print("\nExact McNemar on top-1 hits:\n")
        print(pd.DataFrame(tests).to_string(index=False, float_format="%.4f"))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
