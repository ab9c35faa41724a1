#!/usr/bin/env python3
"""Draws db_bench results (the CSV it writes) as SVG bar charts, with no dependencies.

    scripts/plot-bench.py target/db_bench.csv docs/img

writes, per run:
  db_bench_ratios.svg      lsm-core throughput / each peer's, per workload (median of
                           rounds), with lines at 1.0 (parity) and 1.3 (the goal)
  db_bench_write_amp.svg   write amplification per write workload and engine (not
                           fillsync8, whose per-write fsyncs dwarf the rest)

and prints the median table as Markdown (paste it into docs/benchmarks.md).
"""

import csv
import statistics
import sys
from collections import defaultdict
from pathlib import Path

COLORS = {"lsm": "#1f77b4", "fjall": "#ff7f0e", "rocksdb": "#2ca02c"}
OTHER_COLORS = ["#9467bd", "#8c564b", "#e377c2"]


def load(path):
    """(workload, engine) -> list of row dicts, in first-seen workload order."""
    rows = defaultdict(list)
    order = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            key = (r["workload"], r["engine"])
            if r["workload"] not in order:
                order.append(r["workload"])
            rows[key].append(r)
    return rows, order


def median(rows, field):
    vals = [float(r[field]) for r in rows if r[field] not in ("", "NaN", "nan")]
    return statistics.median(vals) if vals else float("nan")


def color(series, i):
    """An engine's color; a ratio series "lsm / peer" takes the peer's."""
    engine = series.split(" / ")[-1]
    return COLORS.get(engine, OTHER_COLORS[i % len(OTHER_COLORS)])


def esc(s):
    return s.replace("&", "&amp;").replace("<", "&lt;")


def bar_chart(title, groups, series, values, ylabel, lines=()):
    """groups: x labels; series: names; values[(group, series)] -> float or nan."""
    width, height = 900, 420
    left, right, top, bottom = 70, 75, 50, 120
    plot_w, plot_h = width - left - right, height - top - bottom
    finite = [v for v in values.values() if v == v]
    ymax = max(finite + [y for y, _ in lines] + [1e-9]) * 1.15
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="15">{esc(title)}</text>',
    ]

    def y_of(v):
        return top + plot_h - v / ymax * plot_h

    # Axis with five ticks.
    for i in range(6):
        v = ymax * i / 5
        y = y_of(v)
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    out.append(
        f'<text x="16" y="{top + plot_h / 2}" transform="rotate(-90 16 {top + plot_h / 2})" '
        f'text-anchor="middle">{esc(ylabel)}</text>'
    )
    slot = plot_w / max(len(groups), 1)
    bar = slot * 0.8 / max(len(series), 1)
    for gi, g in enumerate(groups):
        x0 = left + gi * slot + slot * 0.1
        for si, s in enumerate(series):
            v = values.get((g, s), float("nan"))
            if v != v:
                continue
            x = x0 + si * bar
            y = y_of(v)
            out.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar - 1:.1f}" '
                f'height="{top + plot_h - y:.1f}" fill="{color(s, si)}">'
                f"<title>{esc(g)} {esc(s)}: {v:.3f}</title></rect>"
            )
            out.append(
                f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle" '
                f'font-size="9">{v:.2f}</text>'
            )
        lx = left + gi * slot + slot / 2
        out.append(
            f'<text x="{lx:.1f}" y="{top + plot_h + 14}" text-anchor="end" '
            f'transform="rotate(-35 {lx:.1f} {top + plot_h + 14})">{esc(g)}</text>'
        )
    for y_val, label in lines:
        y = y_of(y_val)
        out.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" '
            f'stroke="#d62728" stroke-dasharray="5,4"/>'
        )
        # Labels in the right margin; the lower line's below it, so close lines stay legible.
        below = y_val == min(v for v, _ in lines) and len(lines) > 1
        ty = y + 11 if below else y - 1
        out.append(f'<text x="{left + plot_w + 4}" y="{ty:.1f}" fill="#d62728">{esc(label)}</text>')
    out.append(f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="black"/>')
    for si, s in enumerate(series):
        x = left + 10 + si * 170
        out.append(f'<rect x="{x}" y="{height - 22}" width="12" height="12" fill="{color(s, si)}"/>')
        out.append(f'<text x="{x + 18}" y="{height - 12}">{esc(s)}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot-bench.py RESULTS.csv OUTPUT_DIR")
    rows, workloads = load(sys.argv[1])
    out_dir = Path(sys.argv[2])
    out_dir.mkdir(parents=True, exist_ok=True)
    engines = []
    for (_, e) in rows:
        if e not in engines:
            engines.append(e)
    if "lsm" not in engines:
        sys.exit("no lsm rows in the CSV")
    peers = [e for e in engines if e != "lsm"]
    rounds = max(len(v) for v in rows.values())

    ops = {k: median(v, "ops_per_sec") for k, v in rows.items()}
    ratios = {}
    for w in workloads:
        for p in peers:
            if (w, "lsm") in ops and (w, p) in ops and ops[(w, p)] > 0:
                ratios[(w, f"lsm / {p}")] = ops[(w, "lsm")] / ops[(w, p)]
    (out_dir / "db_bench_ratios.svg").write_text(
        bar_chart(
            f"lsm-core throughput relative to each peer (median of {rounds} rounds)",
            workloads,
            [f"lsm / {p}" for p in peers],
            ratios,
            "ratio (higher is better for lsm-core)",
            lines=[(1.0, "parity"), (1.3, "goal 1.3x")],
        )
    )
    wamp = {}
    write_workloads = []
    for w in workloads:
        for e in engines:
            v = median(rows.get((w, e), []), "write_amp")
            # fillsync8 (a page rewritten per fsync) would dwarf the scale: table only.
            if v == v and w.startswith(("fill", "overwrite", "delete")) and "sync" not in w:
                wamp[(w, e)] = v
                if w not in write_workloads:
                    write_workloads.append(w)
    (out_dir / "db_bench_write_amp.svg").write_text(
        bar_chart(
            "write amplification (bytes written to storage / user bytes; lower is better)",
            write_workloads,
            engines,
            wamp,
            "write amplification",
        )
    )

    header = "| workload | " + " | ".join(f"{e} ops/s" for e in engines)
    header += " | " + " | ".join(f"lsm/{p}" for p in peers)
    header += " | p99 µs " + " / ".join(engines) + " | w-amp " + " / ".join(engines)
    header += " | s-amp " + " / ".join(engines) + " | RSS MiB " + " / ".join(engines) + " |"
    print(header)
    print("|" + "---|" * (1 + len(engines) + len(peers) + 4))
    for w in workloads:
        cells = [w]
        cells += [f"{ops.get((w, e), float('nan')):,.0f}".replace(",", " ") for e in engines]
        cells += [f"{ratios.get((w, f'lsm / {p}'), float('nan')):.2f}" for p in peers]

        def col(field, fmt):
            vals = [median(rows.get((w, e), []), field) for e in engines]
            return " / ".join("–" if v != v else fmt.format(v) for v in vals)

        cells += [col("p99_us", "{:.1f}"), col("write_amp", "{:.2f}"), col("space_amp", "{:.2f}"), col("peak_rss_mib", "{:.0f}")]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
