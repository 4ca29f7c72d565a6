"""The benchmark's plots (matplotlib, a bench-only dependency), written beside latest.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_trace"]

#: Line colour per policy.
COLOURS = {"default": "tab:blue", "ancestor": "tab:red", "static": "tab:green"}


def plot_trace(trace: dict[str, Any], out: Path) -> list[Path]:
    """Waiting jobs and agents over the trace per policy, and the wait distribution per policy;
    the files written (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    policies = trace["policies"]
    fig, axes = plt.subplots(len(policies), 1, figsize=(10, 2.6 * len(policies)), sharex=True, squeeze=False)
    for ax, (name, figures) in zip(axes[:, 0], policies.items(), strict=True):
        hours = [t / 3600.0 for t, _, _ in figures["timeline"]]
        ax.step(
            hours,
            [w for _, w, _ in figures["timeline"]],
            where="post",
            label="waiting jobs",
            color="tab:orange",
        )
        ax.step(
            hours,
            [a for _, _, a in figures["timeline"]],
            where="post",
            label="agents",
            color=COLOURS.get(name),
        )
        p95 = figures["wait"]["p95"]
        ax.set_title(f"{name}: {figures['vs_ideal']:.2f} x ideal agent-seconds, p95 wait {p95:.0f} s")
        ax.set_ylabel("count")
        ax.legend(loc="upper right")
    axes[-1, 0].set_xlabel("hours into the trace")
    fig.tight_layout()
    timeline = out / "trace-timeline.png"
    fig.savefig(timeline, dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 4))
    for name, figures in policies.items():
        waits = figures["waits"]
        if waits:
            ax.plot(
                [max(w, 0.1) for w in waits],
                [(i + 1) / len(waits) for i in range(len(waits))],
                label=name,
                color=COLOURS.get(name),
            )
    ax.set_xscale("log")
    ax.set_xlabel("seconds from job scheduled to assigned (log)")
    ax.set_ylabel("share of jobs")
    ax.set_title("Wait distribution per policy")
    ax.legend()
    fig.tight_layout()
    distribution = out / "trace-waits.png"
    fig.savefig(distribution, dpi=100)
    plt.close(fig)
    return [timeline, distribution]
