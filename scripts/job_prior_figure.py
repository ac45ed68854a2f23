"""Draw six jobs from the prior over jobs (``foreseer.predictors.pfn.job_prior``) into
``docs/figures/job_prior.png``: each job's observed curves, coloured by the configuration's first
feature, so how nearby configurations share a curve shows.

Run: ``.venv/bin/python scripts/job_prior_figure.py [--seed 0]``
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from foreseer.predictors.pfn.job_prior import sample_job

OUT = Path(__file__).resolve().parents[1] / "docs" / "figures" / "job_prior.png"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--configs", type=int, default=20, help="configurations per job")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    figure = Figure(figsize=(12, 6.5), layout="constrained")
    FigureCanvasAgg(figure)
    colours = colormaps["viridis"]
    for i in range(6):
        job = sample_job(args.configs, rng)
        ax = figure.add_subplot(2, 3, i + 1)
        for feature, curve in sorted(zip(job.features[:, 0], job.curves, strict=True), key=lambda p: p[0]):
            ax.plot(np.arange(1, len(curve) + 1), curve, color=colours(feature), linewidth=0.9, alpha=0.8)
        ax.set_title(f"job {i + 1}: {job.dims} feature{'s' * (job.dims > 1)}", fontsize=9)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    figure.supxlabel("epoch")
    figure.supylabel("observed value (colour: the configuration's first feature)")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(OUT, dpi=60)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
