#!/usr/bin/env bash
# Regenerate docs/results/ (the reduced SAM Figure 2 and MGAIL Table 1) from scratch or from
# whatever runs already exist: finished runs are left alone, unfinished ones resume.
#   bash docs/results/regenerate.sh [extra launch.py overrides, e.g. hydra/launcher=slurm]
set -euo pipefail
cd "$(dirname "$0")/../.."
python launch.py --config-dir sweeps --config-name sam_figure2_reduced -m runtime.progress=false "$@"
python launch.py --config-dir sweeps --config-name mgail_table1_reduced -m runtime.progress=false "$@"
python launch.py --config-dir sweeps --config-name mgail_table1_reduced -m env=hopper demos=4 runtime.progress=false "$@"
python -m ail.report runs/sam-figure2 --out docs/results/figure2
python -m ail.report runs/mgail-table1 --out docs/results/table1
