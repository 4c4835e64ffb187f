"""python -m ail.results: one row per run group, first-reach steps from metrics.csv."""
from __future__ import annotations

import json
from pathlib import Path

from ail.results import collect, table


def _fake_run(root: Path, group: str, seed: int, scores: list[float], algo: str) -> None:
    d = root / group / f"seed{seed}"
    d.mkdir(parents=True)
    rows = ["env_steps,normalized_score"] + [f"{1000 * (i + 1)},{s}" for i, s in enumerate(scores)]
    (d / "metrics.csv").write_text("\n".join(rows) + "\n")
    summary = {"algo": algo, "env": "hopper", "demos": 4, "demo_pairs": 4000, "env_steps": 1000 * len(scores),
               "final_return_mean": 100.0 * scores[-1], "normalized_score": scores[-1]}
    (d / "summary.json").write_text(json.dumps(summary))


def test_variants_of_one_algorithm_get_their_own_rows(tmp_path):
    _fake_run(tmp_path, "dyna-tp5-hopper-d4", 0, [0.1, 0.85, 0.92], "dyna")
    _fake_run(tmp_path, "dyna-tp5-hopper-d4", 1, [0.5, 0.96, 0.97], "dyna")
    _fake_run(tmp_path, "dyna-tp50-hopper-d4", 0, [0.2, 0.3, 0.4], "dyna")
    text = table(collect([tmp_path]))
    rows = {line.split(" | ")[0].strip("| "): line for line in text.splitlines()[2:]}
    assert set(rows) == {"dyna-tp5", "dyna-tp50"}
    # tp5: 0.8 first reached at 2000 by both seeds; 0.95 by one seed only (at 2000).
    assert "| 2,000 (2/2) |" in rows["dyna-tp5"] and "| 2,000 (1/2) |" in rows["dyna-tp5"]
    assert rows["dyna-tp50"].count("never (0/1)") == 3
