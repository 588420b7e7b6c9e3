"""Hostile-input fuzzing of the CSV path and the Python API (issue 15): counts runs, clean runs and defects.

    python benchmarks/fuzz.py [--cli 800] [--api 5600] [--seed 0]

A CLI run is *clean* when it either exits 0 with every input row written once, in order, with the results
``bayesdx.score`` gives for the same rows, or exits 1 with an ``Error: <file>, line N ...`` message and no
output file. Anything else (exit 0 with a row missing, reordered, merged or mis-scored; a traceback; a
partial output file) is a *defect* and is printed. An API input is clean when ``rank_causes`` returns a
result without NaN that agrees with ``score``, or raises one of the documented errors.
"""

from __future__ import annotations

import argparse
import io
import math
import random
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from click.testing import CliRunner

import bayesdx
from bayesdx.cli import main

VARIABLES = ["fever", "age_group", "muscle_weakness", "electromyography", "frequency", "painful_cramps"]


def _base_rows(rng: random.Random, model: bayesdx.Model, n: int) -> list[list[str]]:
    rows = []
    for k in range(n):
        row = [f"c{k}"]
        for v in VARIABLES:
            row.append(rng.choice(["", *model.answers(v)]))
        row.append(rng.choice(["ok", '5" tall', "a,b", "line\nbreak", "=1+1", "café", ""]))
        rows.append(row)
    return rows


def _csv(rows: list[list[str]], sep: str = ",") -> str:
    out = io.StringIO()
    import csv

    writer = csv.writer(out, delimiter=sep, lineterminator="\n")
    writer.writerow(["case_id", *VARIABLES, "rationale"])
    writer.writerows(rows)
    return out.getvalue()


MUTATIONS = [
    ("plain", lambda t, r: t),
    ("stray_quote", lambda t, r: t.replace("ok", 'o"k', 1)),
    ("semicolon", lambda t, r: t.replace(",", ";")),
    ("bad_state", lambda t, r: t.replace("yes", "perhaps", 1)),
    ("short_row", lambda t, r: t.replace("\n", ",\n", 2).replace(",\n", "\n", 1)),
    ("blank_lines", lambda t, r: t.replace("\n", "\n\n", 3)),
    ("crlf", lambda t, r: t.replace("\n", "\r\n")),
    ("bare_cr", lambda t, r: t.replace('"line\nbreak"', '"line\rbreak"')),
    ("unclosed_quote", lambda t, r: t + 'cX,"yes\n'),
    ("bom", lambda t, r: "\ufeff" + t),
    ("unknown_column", lambda t, r: t.replace("rationale", "ratonale", 1)),
    ("duplicate_header", lambda t, r: t.replace("painful_cramps", "fever", 1)),
]


def fuzz_cli(n: int, rng: random.Random, model: bayesdx.Model) -> tuple[int, int, list[str]]:
    runner = CliRunner()
    clean, defects = 0, []
    folder = Path(tempfile.mkdtemp())
    for k in range(n):
        name, mutate = MUTATIONS[k % len(MUTATIONS)]
        rows = _base_rows(rng, model, rng.randint(1, 12))
        text = mutate(_csv(rows), rng)
        source = folder / f"in{k}.csv"
        source.write_bytes(text.encode("utf-8"))
        out = folder / f"out{k}.csv"
        args = ["score", str(source), "-o", str(out), "-q", "--no-next-step", "--top-k", "2"]
        if rng.random() < 0.3:
            args.append("--skip-invalid")
        result = runner.invoke(main, args)
        problem = None
        if result.exit_code == 0:
            got = pd.read_csv(out, dtype=str, keep_default_na=False)
            import csv

            with open(source, encoding="utf-8-sig", newline="") as handle:  # the oracle: the csv module
                records = [
                    r
                    for r in csv.reader(handle, delimiter=";" if name == "semicolon" else ",")
                    if r and not (len(r) == 1 and not r[0].strip())
                ]
            header, data = records[0], records[1:]
            if got["case_id"].tolist() != [r[0] if r else "" for r in data]:
                problem = "rows lost or reordered"
            else:
                keep = [k for k in range(len(got)) if "error" not in got or got["error"].iloc[k] == ""]
                if any(len(data[k]) != len(header) for k in keep):
                    problem = "a malformed row was scored"
                else:
                    evidence = pd.DataFrame([data[k] for k in keep], columns=header)
                    evidence = evidence[[c for c in header if c in model.states]]
                    expected = bayesdx.score(evidence, model=model, top_k=2)
                    valid = got.iloc[keep]
                    if valid["cause_1"].tolist() != expected["cause_1"].tolist():
                        problem = "mis-scored"
                    elif not np.allclose(valid["probability_1"].astype(float), expected["probability_1"], atol=1e-12):
                        problem = "mis-scored probability"
        elif result.exit_code == 1:
            if "Traceback" in result.output or not result.output.startswith("Error: "):
                problem = "unclear error"
            elif out.exists():
                problem = "partial output left"
        else:
            problem = f"exit code {result.exit_code}"
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            problem = f"exception {type(result.exception).__name__}: {result.exception}"
        if problem:
            defects.append(f"cli {name} #{k}: {problem}")
        else:
            clean += 1
    return n, clean, defects


def fuzz_api(n: int, rng: random.Random, model: bayesdx.Model) -> tuple[int, int, list[str]]:
    values = [
        "yes",
        "no",
        "",
        None,
        float("nan"),
        np.float32("nan"),
        True,
        False,
        3,
        "YES",
        "abnormal",
        "neurogenic",
        "adult",
        "child",
        "daily",
        pd.NA,
        np.str_("yes"),
        b"yes",
        ["yes"],
    ]
    names = [*VARIABLES, "fevr", 7, "leg_twitching"]
    clean, defects = 0, []
    allowed = (bayesdx.BayesdxError, TypeError, ValueError)
    for k in range(n):
        evidence = {rng.choice(names): rng.choice(values) for _ in range(rng.randint(0, 5))}
        try:
            dx = bayesdx.rank_causes(evidence, model=model, next_steps=False)
        except allowed:
            clean += 1
            continue
        except Exception as exc:
            defects.append(f"api #{k} {evidence!r}: {type(exc).__name__}: {exc}")
            continue
        probabilities = [c.probability for c in dx.causes]
        if any(math.isnan(p) for p in probabilities):
            defects.append(f"api #{k} {evidence!r}: NaN")
            continue
        frame = bayesdx.score([evidence], model=model, top_k=1)
        if frame["cause_1"].iloc[0] != dx.causes[0].id:
            defects.append(f"api #{k} {evidence!r}: score and rank_causes disagree")
            continue
        clean += 1
    return n, clean, defects


def main_(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cli", type=int, default=800)
    parser.add_argument("--api", type=int, default=5600)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    model = bayesdx.load_model()
    total = 0
    for label, (tried, clean, defects) in (("CLI runs", fuzz_cli(args.cli, rng, model)), ("API inputs", fuzz_api(args.api, rng, model))):
        print(f"{label}: {tried} tried, {clean} clean, {len(defects)} defects")
        for d in defects[:20]:
            print("  ", d)
        total += len(defects)
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main_())
