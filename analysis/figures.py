"""The statistics page's figures (paper Fig. 2a-f) as PNG or SVG bytes. No Django import.

Each figure is drawn from a :class:`analysis.study_stats.StudyStatistics` through a small *data* function
(``roc_points``, ``group_bars``, ``reader_bars``, ``misdiagnosis_points``) that the tests check against the
exports; the value labels use the exports' formatting, so a figure shows the numbers the CSVs hold.
Matplotlib is used through ``Figure`` objects with the Agg canvas (no pyplot state, safe in a web process)
and imported inside the functions. SVG keeps text as text (``svg.fonttype = none``) and carries no date.

Significance marks (paired t-test exam 1 vs exam 2 of a group): ``*`` p < 0.05, ``**`` p < 0.01. (The
paper's legend prints them the other way round.)
"""

from __future__ import annotations

import io

from analysis import exports
from analysis import study_stats as ss

FORMATS: tuple[str, ...] = ("png", "svg")
CONTENT_TYPES = {"png": "image/png", "svg": "image/svg+xml"}
FIGURES: dict[str, str] = {
    "groups": "Group means ± SD, exam 1 vs exam 2 (paper Fig. 2a)",
    "readers": "Each reader, exam 1 vs exam 2 (paper Fig. 2b)",
    "roc_exam1": "DNN ROC curve with each reader's operating point, exam 1 (paper Fig. 2c)",
    "roc_exam2": "DNN ROC curve with each reader's operating point, exam 2 (paper Fig. 2d)",
    "misdiagnosis_exam1": "Misdiagnosed cases by tumour diameter and degeneration, exam 1 (paper Fig. 2e/f)",
    "misdiagnosis_exam2": "Misdiagnosed cases by tumour diameter and degeneration, exam 2 (paper Fig. 2e/f)",
}
BAR_METRICS = ("accuracy", "ss_avg", "sensitivity", "specificity", "auc")   # the paper's Fig. 2a order
GROUP_COLOURS = {ss.SPECIALIST: ("#9ecae1", "#2171b5"), ss.PRACTITIONER: ("#fdae6b", "#d94801")}
EXAM_COLOURS = {1: "#9e9ac8", 2: "#54278f"}
MISSED_COLOURS = {ss.MISSED_DNN_ONLY: "#1f5fbf", ss.MISSED_READERS_ONLY: "#d62728", ss.MISSED_BOTH: "#7b2cbf"}
DEGENERATION_Y = {True: 1.0, False: 0.0, None: -1.0}
DEGENERATION_TICKS = ((-1.0, "not scored"), (0.0, "no degeneration"), (1.0, "degeneration"))


# --------------------------------------------------------------------------------------------------
# Figure data
# --------------------------------------------------------------------------------------------------


def roc_points(stats: ss.StudyStatistics, exam: int) -> list[dict]:
    """Operating points (1 - specificity, sensitivity) of the readers complete in ``exam``."""
    points = []
    for m in stats.reader_exams:
        if m.exam == exam and m.complete and None not in (m.values["sensitivity"], m.values["specificity"]):
            points.append({"reader": m.reader, "group": m.group, "fpr": 1 - m.values["specificity"],
                           "tpr": m.values["sensitivity"]})
    return points


def significance_mark(p: float | None) -> str:
    if p is None or p != p:
        return ""
    return "**" if p < 0.01 else "*" if p < 0.05 else ""


def group_bars(stats: ss.StudyStatistics) -> list[dict]:
    """Per metric x group x exam: mean, SD, the mean's 95 % CI (``ss.GROUP_INTERVAL_METHOD``; the page and
    group_statistics.csv show it, the bars keep the paper's ± SD), label text, and the exam 1 vs 2 paired
    test's mark."""
    marks = {(c.group, c.metric): significance_mark(c.tests[0].p) for c in stats.comparisons
             if c.kind == "exams" and c.tests}
    bars = []
    for metric in BAR_METRICS:
        for group in ss.GROUPS:
            for exam in ss.EXAMS:
                g = stats.group(group, exam)
                bars.append({"metric": metric, "group": group, "exam": exam, "n": len(g.readers),
                             "mean": g.mean[metric], "sd": g.sd[metric], "ci": g.intervals.get(metric),
                             "label": exports.metric_text(metric, g.mean[metric]),
                             "mark": marks.get((group, metric), "")})
    return bars


def reader_bars(stats: ss.StudyStatistics) -> list[dict]:
    """Per metric x reader x exam (complete reader-exams only): value and label text."""
    order = sorted(stats.readers, key=lambda r: (r.group != ss.SPECIALIST, r.group, r.code))
    bars = []
    for metric in BAR_METRICS:
        for reader in order:
            for exam in ss.EXAMS:
                m = stats.reader_exam(reader.code, exam)
                if m.complete and m.values[metric] is not None:
                    value = m.values[metric]
                    bars.append({"metric": metric, "reader": reader.code, "group": reader.group, "exam": exam,
                                 "value": value, "label": exports.metric_text(metric, value)})
    return bars


def misdiagnosis_points(stats: ss.StudyStatistics, exam: int) -> list[dict]:
    """Every case of the exam's misdiagnosis analysis with its plot position and category."""
    analysis = next(m for m in stats.misdiagnosis if m.exam == exam)
    return [{"case": c.case, "truth": c.truth, "x": c.max_diameter_mm, "y": DEGENERATION_Y[c.degeneration],
             "category": c.category} for c in analysis.cases]


# --------------------------------------------------------------------------------------------------
# Drawing
# --------------------------------------------------------------------------------------------------


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _scale(metric: str, value: float | None) -> float | None:
    if value is None:
        return None
    return value if metric == "auc" else 100 * value


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#6b7280")
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_groups(fig, stats: ss.StudyStatistics) -> None:
    bars = group_bars(stats)
    axes = fig.subplots(1, len(BAR_METRICS))
    for ax, metric in zip(axes, BAR_METRICS, strict=True):
        ymax = 1.0 if metric == "auc" else 100.0
        for gi, group in enumerate(ss.GROUPS):
            mark = ""
            for bar in (b for b in bars if b["metric"] == metric and b["group"] == group):
                x = gi + (bar["exam"] - 1.5) * 0.38
                mark = bar["mark"]
                if bar["mean"] is None:
                    continue
                sd = _scale(metric, bar["sd"]) or 0.0
                ax.bar(x, _scale(metric, bar["mean"]), 0.36, yerr=sd, capsize=3,
                       color=GROUP_COLOURS[group][bar["exam"] - 1], edgecolor="#333", linewidth=0.5)
                ax.text(x, _scale(metric, bar["mean"]) + sd + 0.02 * ymax, bar["label"], ha="center",
                        va="bottom", fontsize=6.5, rotation=90)
            if mark:
                ax.text(gi, 1.32 * ymax, mark, ha="center", va="top", fontsize=11)
        if stats.dnn is not None and stats.dnn.values.get(metric) is not None:
            ax.axhline(_scale(metric, stats.dnn.values[metric]), color="#111", linestyle="--", linewidth=1,
                       label="DNN")
        ax.set_ylim(0, 1.35 * ymax)
        ax.set_yticks([ymax * k / 5 for k in range(6)])
        ax.set_xticks(range(len(ss.GROUPS)), [ss.GROUP_LABELS[g] for g in ss.GROUPS], fontsize=7)
        ax.set_title(ss.METRIC_LABELS[metric] + (" " if metric == "auc" else " (%)"), fontsize=9)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(color=GROUP_COLOURS[g][e - 1], label=f"{ss.GROUP_LABELS[g]}, exam {e}")
               for g in ss.GROUPS for e in ss.EXAMS]
    source = f" ({stats.dnn.source})" if stats.dnn is not None else ""
    handles.append(Line2D([], [], color="#111", linestyle="--", label=f"DNN on the study's cases{source}"))
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=7, frameon=False)


def _draw_readers(fig, stats: ss.StudyStatistics) -> None:
    bars = reader_bars(stats)
    readers = list(dict.fromkeys(b["reader"] for b in bars))
    axes = fig.subplots(len(BAR_METRICS), 1, sharex=True)
    for ax, metric in zip(axes, BAR_METRICS, strict=True):
        ax.set_ylabel(ss.METRIC_LABELS[metric] + ("" if metric == "auc" else " %"), fontsize=8)
        ax.set_ylim(0, 1.3 if metric == "auc" else 130)
        ax.set_yticks([0, 0.5, 1.0] if metric == "auc" else [0, 50, 100])
        for bar in (b for b in bars if b["metric"] == metric):
            x = readers.index(bar["reader"]) + (bar["exam"] - 1.5) * 0.38
            ax.bar(x, _scale(metric, bar["value"]), 0.36, color=EXAM_COLOURS[bar["exam"]])
            ax.text(x, _scale(metric, bar["value"]) + 0.02 * (1.0 if metric == "auc" else 100), bar["label"],
                    ha="center", va="bottom", fontsize=6, rotation=90)
    if not readers:
        _empty(axes[0], "no reader has completed an exam yet")
        return
    groups = {b["reader"]: b["group"] for b in bars}
    axes[-1].set_xticks(range(len(readers)), [f"{r}\n{groups[r]}" for r in readers], fontsize=7)
    from matplotlib.patches import Patch

    fig.legend(handles=[Patch(color=EXAM_COLOURS[e], label=ss.EXAM_LABELS[e]) for e in ss.EXAMS],
               loc="outside lower center", ncol=2, fontsize=7, frameon=False)


def _draw_roc(fig, stats: ss.StudyStatistics, exam: int) -> None:
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="#bbb", linewidth=0.8, linestyle=":")
    if stats.dnn is not None and stats.dnn.roc is not None:
        roc, ci = stats.dnn.roc, stats.dnn.intervals.get("auc")
        interval = f" (95 % CI {ci.low:.3f}–{ci.high:.3f})" if ci is not None else ""
        ax.plot(roc.fpr, roc.tpr, color="#111", linewidth=1.6,
                label=f"DNN ({stats.dnn.source} likelihood), AUC {exports.metric_text('auc', roc.auc)}{interval}")
    markers = {ss.SPECIALIST: "o", ss.PRACTITIONER: "s"}
    current = roc_points(stats, exam)
    if exam == 2:
        before = {p["reader"]: p for p in roc_points(stats, 1)}
        for p in current:
            if p["reader"] in before:
                b = before[p["reader"]]
                ax.annotate("", (p["fpr"], p["tpr"]), (b["fpr"], b["tpr"]),
                            arrowprops={"arrowstyle": "->", "color": "#999", "linewidth": 0.8})
                ax.scatter(b["fpr"], b["tpr"], marker=markers.get(b["group"], "^"), facecolors="none",
                           edgecolors="#999", s=30)
    for group in (*ss.GROUPS, None):
        pts = [p for p in current if (p["group"] == group if group else p["group"] not in ss.GROUPS)]
        if pts:
            ax.scatter([p["fpr"] for p in pts], [p["tpr"] for p in pts], marker=markers.get(group, "^"), s=40,
                       color=GROUP_COLOURS.get(group, ("#777", "#777"))[1], zorder=3,
                       label=ss.GROUP_LABELS.get(group, "other readers"))
    for p in current:
        ax.annotate(p["reader"], (p["fpr"], p["tpr"]), textcoords="offset points", xytext=(4, -9), fontsize=7)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.set_xlabel("1 - specificity")
    ax.set_ylabel("sensitivity")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right", fontsize=7)
    if not current:
        ax.text(0.5, 0.55, "no reader has completed this exam yet", ha="center", color="#6b7280")


def misdiagnosis_unavailable(stats: ss.StudyStatistics, exam: int) -> str:
    """Why the exam's misdiagnosis map cannot be drawn ("" when it can): no reader has finished the exam."""
    analysis = next(m for m in stats.misdiagnosis if m.exam == exam)
    return "" if analysis.analysed else f"no reader has finished exam {exam} yet: nothing to map"


def _draw_misdiagnosis(fig, stats: ss.StudyStatistics, exam: int) -> None:
    unavailable = misdiagnosis_unavailable(stats, exam)
    if unavailable:     # without readers every case would read "correct by both"
        ax = fig.subplots(1, 1)
        ax.text(0.5, 0.5, unavailable, ha="center", va="center", transform=ax.transAxes, color="#6b7280")
        ax.set_axis_off()
        return
    points = misdiagnosis_points(stats, exam)
    axes = fig.subplots(1, 2, sharey=True)
    panels = (("sarcoma", "(e) sarcomas"), ("leiomyoma", "(f) leiomyomas"))
    for ax, (truth, title) in zip(axes, panels, strict=True):
        mine = [p for p in points if p["truth"] == truth]
        sized = [p for p in mine if p["x"] is not None]
        for category in ("", *MISSED_COLOURS):          # correct cases first, underneath the misses
            group = [(i, p) for i, p in enumerate(sized) if p["category"] == category]
            if not group:
                continue
            jitter = [((i * 7919) % 11 - 5) * 0.03 for i, _ in group]   # deterministic, keeps rows apart
            ys = [p["y"] + j for (_, p), j in zip(group, jitter, strict=True)]
            ax.scatter([p["x"] for _, p in group], ys,
                       s=40 if category else 14, color=MISSED_COLOURS.get(category, "#c8ccd2"),
                       edgecolors="#333" if category else "none", linewidths=0.4, zorder=3)
        counts = {k: sum(p["category"] == k for p in mine) for k in MISSED_COLOURS}
        summary = ", ".join(f"{ss.MISSED_LABELS[k]} {n}" for k, n in counts.items())
        missing = len(mine) - len(sized)
        hidden = f"\n({missing} without size not shown)" if missing else ""
        ax.set_title(f"{title}: missed by {summary}{hidden}", fontsize=8)
        ax.set_xlabel("largest tumour diameter (mm)")
        ax.set_yticks([y for y, _ in DEGENERATION_TICKS], [t for _, t in DEGENERATION_TICKS], fontsize=7)
        ax.set_ylim(-1.5, 1.5)
        if not mine:
            _empty(ax, f"no {truth} cases")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=f"missed by {ss.MISSED_LABELS[k]}")
               for k, c in MISSED_COLOURS.items()]
    handles.append(Line2D([], [], marker="o", linestyle="", color="#c8ccd2", label="correct by both"))
    fig.legend(handles=handles, loc="outside lower center", ncol=4, fontsize=7, frameon=False)


def _draw(fig, stats: ss.StudyStatistics, name: str) -> None:
    if name == "groups":
        _draw_groups(fig, stats)
    elif name == "readers":
        _draw_readers(fig, stats)
    elif name.startswith("roc_exam"):
        _draw_roc(fig, stats, int(name[-1]))
    else:
        _draw_misdiagnosis(fig, stats, int(name[-1]))


SIZES = {"groups": (10, 4.2), "readers": (8, 8.5), "roc_exam1": (5.6, 5.6), "roc_exam2": (5.6, 5.6),
         "misdiagnosis_exam1": (10, 4.4), "misdiagnosis_exam2": (10, 4.4)}


def render(stats: ss.StudyStatistics, name: str, fmt: str, *, note: str = "") -> bytes:
    """The figure ``name`` (a key of FIGURES) as ``fmt`` (png | svg) bytes; ``note`` goes under the title
    (e.g. "SYNTHETIC data")."""
    if name not in FIGURES:
        raise ValueError(f"unknown figure {name!r}; expected one of {', '.join(FIGURES)}")
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected png or svg")
    import matplotlib

    width, height = SIZES[name]
    if name == "readers":
        width = max(6.0, 1.1 * len(stats.readers) + 2)
    fig = _figure(width, height)
    _draw(fig, stats, name)
    fig.suptitle(FIGURES[name] + (f"\n{note}" if note else ""), fontsize=9)
    buffer = io.BytesIO()
    metadata = {"Date": None} if fmt == "svg" else {"Software": None}
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "analysis"}):
        fig.savefig(buffer, format=fmt, metadata=metadata)
    return buffer.getvalue()
