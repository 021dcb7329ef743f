"""The spectra figure of a run (`spectra.png`), like the paper's Figure 3 (Appendix F): the top
singular value sigma_0 of every layer of G (left) and of D (right) over iterations, from the
run's stats records, with the collapse onset and each rollback marked.

Reading it: each line is one layer, coloured from the first layer (dark) to the last (light); the
scale turns logarithmic once some value is 20x another (an explosion).
Section 4 finds G's sigma_0 growing through training and exploding at collapse, and D's noisy,
jumping only at collapse. A red dashed line is where a collapse began (the first tripping record
of the streak that stopped or rolled back the run); a green line with its number is where a
rollback went back to; the faint stretch after a red line is what the rollback abandoned
(`rolled_back.jsonl`, dotted), and the run continues from the green line.
"""

from __future__ import annotations

import io
from collections import defaultdict
from typing import Any

from biggan.storage import Location

SPECTRA_FILE = "spectra.png"
MAX_POINTS = 400  # per layer and stretch: a 150k-iteration run's 1,500 records are thinned evenly


def sigma0_series(records: list[dict[str, Any]], net: str) -> dict[str, tuple[list[int], list[float]]]:
    """layer -> (iterations, sigma_0) of `net` ("G" or "D") from stats records, in layer order."""
    prefix, series = f"sv/{net}/", defaultdict(lambda: ([], []))
    for record in records:
        for key, value in record.items():
            if key.startswith(prefix) and key.endswith("/0") and isinstance(value, (int, float)):
                its, values = series[key[len(prefix):-2]]
                its.append(int(record["iteration"]))
                values.append(float(value))
    return dict(series)


def _thin(its: list[int], values: list[float]) -> tuple[list[int], list[float]]:
    step = max(1, len(its) // MAX_POINTS)
    return its[::step], values[::step]


def draw_spectra(records: list[dict[str, Any]], abandoned: list[dict[str, Any]], rollbacks: list[dict[str, Any]],
                 onset: int | None, title: str) -> bytes:
    """The figure as PNG bytes. `records`: the run's stats (its current branch); `abandoned`: the
    records rollbacks discarded; `rollbacks`: the rollback lines (biggan.runs.history); `onset`:
    a collapse onset that did not lead to a rollback (the run stopped there), or None."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    stretches = defaultdict(list)  # each rollback's abandoned records: drawn apart, never joined to another's
    for record in abandoned:
        stretches[record.get("rollback")].append(record)
    targets = defaultdict(list)  # iteration gone back to -> the rollbacks that went there
    for event in rollbacks:
        targets[event["to_iteration"]].append(str(event["rollback"]))

    fig = Figure(figsize=(12, 4.5))
    axes = fig.subplots(1, 2)
    for ax, net in zip(axes, ("G", "D")):
        kept = sigma0_series(records, net)
        dropped = [sigma0_series(stretch, net) for stretch in stretches.values()]
        cmap = matplotlib.colormaps["viridis"]
        layers = list(kept) or [layer for series in dropped for layer in series]
        for index, layer in enumerate(dict.fromkeys(layers)):
            colour = cmap(index / max(1, len(layers) - 1))
            if layer in kept:
                ax.plot(*_thin(*kept[layer]), color=colour, linewidth=0.8)
            for series in dropped:
                if layer in series:
                    ax.plot(*_thin(*series[layer]), color=colour, linewidth=0.8, alpha=0.3, linestyle=":")
        for event in rollbacks:
            at = event.get("onset") if event.get("onset") is not None else event["collapsed_at"]
            ax.axvline(at, color="tab:red", linestyle="--", linewidth=1)
        for to, numbers in targets.items():
            ax.axvline(to, color="tab:green", linewidth=1)
            ax.annotate(f"rollback {', '.join(numbers)}", (to, 1), xycoords=("data", "axes fraction"),
                        xytext=(2, -12), textcoords="offset points", color="tab:green", fontsize=8)
        if onset is not None:
            ax.axvline(onset, color="tab:red", linestyle="--", linewidth=1)
            ax.annotate("collapse onset", (onset, 1), xycoords=("data", "axes fraction"), xytext=(2, -12),
                        textcoords="offset points", color="tab:red", fontsize=8)
        values = [v for series in [kept, *dropped] for _its, vs in series.values() for v in vs if v > 0]
        if values and max(values) > 20 * min(values):  # an explosion: a log scale keeps the rest readable
            ax.set_yscale("log")
            ax.yaxis.set_major_formatter(ScalarFormatter())
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{net}: sigma_0 of {len(layers)} layers (first dark, last light)")
        ax.set_xlabel("iteration")
        ax.set_ylabel("top singular value (raw weight, before SN)")
        ax.grid(True, alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return buffer.getvalue()


def write_spectra(run: Location, records: list[dict[str, Any]], abandoned: list[dict[str, Any]],
                  rollbacks: list[dict[str, Any]], onset: int | None) -> Location:
    """Draw the figure and write it as `<run>/spectra.png` (one write: readers see the old or the new)."""
    target = run / SPECTRA_FILE
    target.write_bytes(draw_spectra(records, abandoned, rollbacks, onset, f"{run.name}: sigma_0 per layer"))
    return target
