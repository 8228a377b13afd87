"""The planning page's figure: cases needed against readers for the wanted power (issue 19). No Django."""

from __future__ import annotations

import io


def render(result: dict, fmt: str = "png") -> bytes:
    """K needed (y) for each J (x) from `planning.plan(..., table=True)`, the chosen design marked."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    rows = [r for r in result["table"] if r["cases"]]
    ax.plot([r["readers"] for r in rows], [r["cases"] for r in rows], color="#1d4ed8", lw=2,
            label=f"cases for power {result['target_power']:g}")
    design = result.get("design")
    if design:
        ax.scatter([design["readers"]], [design["cases"]], color="#b91c1c", zorder=3,
                   label=f"J = {design['readers']}, K = {design['cases']}: power {design['power']:.3f}")
    ax.set_xlabel("readers (J)")
    ax.set_ylabel("cases (K)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(f"{result['analysis']}, effect size {result['effect_size']:.3f} AUC "
                 f"({result['effect_size_source']}), alpha {result['alpha']:g}", fontsize=9)
    buffer = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "planning"}):
        fig.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "svg" else {"Software": None})
    return buffer.getvalue()
