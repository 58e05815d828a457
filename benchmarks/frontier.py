"""One picture of the forgetting–utility trade: every method and ∇τ variant of the benchmark results, beside doing
nothing and retraining.

Per dataset (a row of panels; `<results>/<dataset>.json` written by `goemotions.py`, 15 % split): forgetting as the
gap closed on forget accuracy (0 = the original, 1 = the retrained model; mean ± 95 % CI over seeds) against the test
and the retain accuracy relative to the retrained model's (per-seed ratio, mean ± 95 % CI); with
`<results>/competition_<dataset>.json` (`competition.py`) a third panel: the competition's forgetting quality F (± its
standard error over forget examples × 1.96) against the same test-accuracy ratio of those N runs, the retrained
models' own F (the ceiling at that N) marked. Marker area and label give the CPU cost as a fraction of retraining.

    python benchmarks/frontier.py                       # reads benchmarks/results, writes results/frontier.png

It also draws the per-example attack against utility (`frontier_rmia.png`, with `frontier_rmia.md` its table): every
setting measured on test rows at 15 % (the whole benchmark and the ∇τ variants' runs, `SOURCES`, or ``--source``)
as RMIA AUC above the retrained models' null against retain and test accuracy, both paired by seed with the retrained
models, the issue's target region (RMIA ≤ null + 0.05 with retain ≥ retrained − 3 points, test ≥ retrained − 1)
shaded: what no measured setting reaches is the frontier.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from summary import is_nabla_tau, mean_ci, methods_of, paired, select  # noqa: E402

DATASETS = ("goemotions", "banking77")
#: how the attack frontier names the replay runs (`alpha=0.75, retain_replay=2`)
REPLAY = "nabla_tau_replay=∇τ, α₀ 0.75 + retain replay 2"
#: the attack frontier's runs (15 %, test rows, the one sampler): a results file, every method under its own name, or
#: only the methods named (METHOD=LABEL, ";"-separated) under those labels
SOURCES = ("goemotions.json",
           "beyond_paper_kl/goemotions.json:nabla_tau_kl=∇τ + KL retain term;nabla_tau_kl_a075=∇τ + KL, α₀ 0.75",
           "beyond_paper_prior/goemotions.json:nabla_tau=∇τ + repair to the original's prior, α₀ 0.6",
           f"beyond_paper_replay/goemotions.json:{REPLAY}",
           "banking77.json",
           "beyond_paper_banking77_prior/banking77.json:nabla_tau=∇τ + repair to the original's prior, α₀ 0.6",
           f"beyond_paper_banking77_replay/banking77.json:{REPLAY}",
           "beyond_paper_banking77_head_refit_targets/banking77.json:nabla_tau_refit=∇τ + head refit "
           "(forget term, penalty chosen on held-out rows)",
           "beyond_paper_banking77_freeze/banking77.json:nabla_tau_frozen_embeddings=∇τ, embeddings frozen")
#: the issue's targets: RMIA AUC at most the null + this; retain / test accuracy at least the retrained's − these
ATTACK_TARGET, RETAIN_TARGET, TEST_TARGET = 0.05, 0.03, 0.01
#: how the attack frontier names the benchmark's own ∇τ rows
VARIANT_NAMES = {"nabla_tau": "∇τ default (relabel push, prior repair)",
                 "nabla_tau_no_repair": "∇τ, relabel push without the repair (the default before it)",
                 "nabla_tau_ascent": "∇τ, ascent (the default before the relabel push)",
                 "nabla_tau_paper": "∇τ, the paper's recipe", "nabla_tau_kl": "∇τ + KL retain term",
                 "nabla_tau_kl_a075": "∇τ + KL, α₀ 0.75"}
NAMES = {"goemotions": "GoEmotions", "banking77": "BANKING77"}


def ratios(rows: list[dict], method: str, key: str, forget: str) -> list[float]:
    """``key`` of ``method`` over the retrained model's, per seed."""
    ref = {r["seed"]: r[key] for r in select(rows, "retrain", forget)}
    return [r[key] / ref[r["seed"]] for r in select(rows, method, forget) if ref.get(r["seed"])]


def points(rows: list[dict], forget: str = "15%") -> list[dict]:
    """(method, x test, x retain, y gap closed, CPU ratio) with their CI half-widths, one per method."""
    out = []
    for m in methods_of(select(rows, forget=forget)):
        if m == "retrain":
            out.append(dict(method=m, test=(1, 0), retain=(1, 0), y=(1, 0), cpu=1.0))
            continue
        closed = [r.get("gap_closed_forget_acc") for r in select(rows, m, forget)]
        y = (0.0, 0.0) if m == "original" else mean_ci(closed)[:2]
        cpu = None if m == "original" else mean_ci([r.get("retrain_ratio") for r in select(rows, m, forget)])[0]
        out.append(dict(method=m, test=mean_ci(ratios(rows, m, "test_acc", forget))[:2],
                        retain=mean_ci(ratios(rows, m, "retain_acc", forget))[:2], y=y, cpu=cpu))
    return out


def _style(method: str, colors: dict) -> dict:
    if method == "retrain":
        return dict(color="black", marker="*", label="retrain (gold standard)")
    if method == "original":
        return dict(color="grey", marker="X", label="original (do nothing)")
    return dict(color=colors[method], marker="D" if is_nabla_tau(method) else "o", label=method)


def _panel(ax, pts: list[dict], xkey: str, ykey: str, colors: dict, xlabel: str, ylabel: str) -> None:
    for p in pts:
        (x, xe), (y, ye) = p[xkey], p[ykey]
        if x != x or y != y:  # NaN: not measured
            continue
        st = _style(p["method"], colors)
        cost = None if p["cpu"] is None or p["cpu"] != p["cpu"] else p["cpu"]  # None or NaN: not measured
        size = 40 if cost is None else 30 + 400 * min(cost, 1.0)
        ax.errorbar(x, y, xerr=0 if xe != xe else xe, yerr=0 if ye != ye else ye, fmt="none", ecolor=st["color"],
                    alpha=0.6, capsize=2, lw=1)
        ax.scatter([x], [y], s=size, color=st["color"], marker=st["marker"], edgecolor="black", linewidth=0.5,
                   zorder=3, label=st["label"])
        tag = "" if cost is None or p["method"] == "retrain" else f" {cost:.0%}"
        ax.annotate(p["method"].replace("nabla_tau", "∇τ") + tag, (x, y), fontsize=6, xytext=(4, 3),
                    textcoords="offset points")
    ax.axhline(1, color="black", lw=0.5, ls=":")
    ax.axvline(1, color="black", lw=0.5, ls=":")
    ax.axhline(0, color="grey", lw=0.5, ls=":")
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(labelsize=7)


def competition_points(records: list[dict]) -> list[dict]:
    out = []
    for r in records:
        cpu = 1.0 if r["method"] == "retrain" else r.get("retrain_ratio")
        out.append(dict(method=r["method"], test=(r["test_ratio"], r.get("test_acc_ci", 0) / max(r["test_acc"], 1e-9)
                                                  * r["test_ratio"]),
                        y=(r["forgetting_quality_F"], r["forgetting_quality_F_ci"]), cpu=cpu))
    return out


def attack_points(results: Path, sources: list[str], forget: str = "15%") -> dict[str, list[dict]]:
    """Per dataset: one point per setting of ``sources`` (see `SOURCES`), RMIA AUC − the retrained models' null (mean
    over the seeds it was measured on) and retain / test accuracy − the retrained model's (paired by seed), each mean
    ± 95 % CI over seeds, with the gap closed on forget accuracy and the file's commit."""
    out: dict[str, list[dict]] = {}
    for source in sources:
        path, _, spec = source.partition(":")
        data = json.loads((results / path).read_text())
        rows, dataset = data["records"], Path(path).stem
        names = dict(item.split("=", 1) for item in spec.split(";")) if spec else {
            m: VARIANT_NAMES.get(m, m) for m in methods_of(rows)}
        null = mean_ci([r.get("ref_attack_auc") for r in select(rows, "retrain", forget)])[0]
        for method, label in names.items():
            if method == "retrain" or not select(rows, method, forget):
                continue
            attack = [r["ref_attack_auc"] - null for r in select(rows, method, forget) if r.get("ref_attack_auc")]
            out.setdefault(dataset, []).append(dict(
                method=label, source=path, commit=str(data["provenance"].get("commit", "?"))[:7],
                seeds=len(select(rows, method, forget)), null=null, attack=mean_ci(attack)[:2],
                retain=mean_ci(paired(rows, method, "retrain", "retain_acc", forget))[:2],
                test=mean_ci(paired(rows, method, "retrain", "test_acc", forget))[:2],
                closed=(0.0, 0.0) if method == "original" else
                mean_ci([r.get("gap_closed_forget_acc") for r in select(rows, method, forget)])[:2]))
    return out


def in_target(point: dict) -> bool:
    return (point["attack"][0] <= ATTACK_TARGET and point["retain"][0] >= -RETAIN_TARGET
            and point["test"][0] >= -TEST_TARGET)


def attack_table(pts: dict[str, list[dict]]) -> str:
    lines = ["# The per-example attack against utility (15 %, test rows)", "",
             "RMIA AUC above the retrained models' null and retain / test accuracy against the retrained models' "
             "(paired by seed), mean ± 95 % CI over seeds; written by `benchmarks/frontier.py` from the results "
             "files named. Target region: RMIA ≤ null + 0.05, retain ≥ retrained − 0.03, test ≥ retrained − 0.01.", ""]
    for dataset, points in pts.items():
        lines += [f"## {NAMES.get(dataset, dataset)}", "",
                  "| setting | seeds | RMIA − null | retain − retrained | test − retrained | gap closed, forget acc "
                  "| in the target region | results file (commit) |", "|---|---|---|---|---|---|---|---|"]
        for p in sorted(points, key=lambda q: q["attack"][0]):
            cells = [f"{m:+.3f} ± {h:.3f}" if h == h else f"{m:+.3f}" for m, h in (p["attack"], p["retain"],
                                                                                 p["test"], p["closed"])]
            lines.append(f"| {p['method']} | {p['seeds']} | " + " | ".join(cells)
                         + f" | {'yes' if in_target(p) else 'no'} | {p['source']} ({p['commit']}) |")
        lines.append("")
    return "\n".join(lines)


def attack_figure(plt, pts: dict[str, list[dict]], out: Path) -> None:
    fig, axes = plt.subplots(len(pts), 2, figsize=(11, 4.4 * len(pts)), squeeze=False)
    for row, (dataset, points) in zip(axes, pts.items()):
        cmap = plt.get_cmap("tab20")
        for ax, key, floor in ((row[0], "retain", RETAIN_TARGET), (row[1], "test", TEST_TARGET)):
            for i, p in enumerate(points):
                (x, xe), (y, ye) = p[key], p["attack"]
                color = "grey" if p["method"] == "original" else cmap(i % cmap.N)
                ax.errorbar(x, y, xerr=0 if xe != xe else xe, yerr=0 if ye != ye else ye, color=color, ms=5,
                            fmt="D" if "∇τ" in p["method"] else "o", capsize=2, lw=1, mec="black", mew=0.4)
                ax.annotate(p["method"], (x, y), fontsize=6, xytext=(4, 3), textcoords="offset points")
            ax.scatter([0], [0], marker="*", s=200, color="black", zorder=4, label="retrain (gold standard)")
            lo, hi = ax.get_xlim()
            ax.fill_between([-floor, max(hi, 0.05)], -0.1, ATTACK_TARGET, color="tab:green", alpha=0.12,
                            label="target region")
            ax.set_xlim(lo, max(hi, 0.05))
            ax.axhline(0, color="black", lw=0.5, ls=":")
            ax.axvline(0, color="black", lw=0.5, ls=":")
            ax.set_xlabel(f"{key} accuracy − retrained's (paired by seed)", fontsize=8)
            ax.set_ylabel("RMIA AUC − retrained models' null", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=6, loc="upper left")
        row[0].set_title(f"{NAMES.get(dataset, dataset)}, 15 % forget, test rows: the per-example attack against "
                         "utility (mean ± 95 % CI)", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=130)
    print(f"wrote {out}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default=str(Path(__file__).parent / "results"), help="Folder of the results JSON.")
    p.add_argument("--out", default=None, help="Image path (default: RESULTS/frontier.png).")
    p.add_argument("--source", action="append", default=None, metavar="FILE[:METHOD=LABEL;...]",
                   help="A results file (relative to --results) for the attack frontier; repeat (default: SOURCES).")
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = Path(args.results)
    found = [d for d in DATASETS if (results / f"{d}.json").is_file()]
    if not found:
        raise SystemExit(f"No {' or '.join(f'{d}.json' for d in DATASETS)} in {results}: run goemotions.py first.")
    comp_files = {d: json.loads((results / f"competition_{d}.json").read_text()) for d in found
                  if (results / f"competition_{d}.json").is_file()}
    comp = {d: c["records"] for d, c in comp_files.items() if c["records"]}
    cols = 3 if comp else 2
    fig, axes = plt.subplots(len(found), cols, figsize=(5 * cols, 4.2 * len(found)), squeeze=False)
    for row, d in zip(axes, found):
        records = json.loads((results / f"{d}.json").read_text())["records"]
        pts = points(records)
        methods = [q["method"] for q in pts if q["method"] not in ("original", "retrain")]
        cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")  # one colour per method
        colors = {m: cmap(i % cmap.N) for i, m in enumerate(methods)}
        n = len(select(records, "retrain", "15%"))
        name = NAMES.get(d, d)
        _panel(row[0], pts, "test", "y", colors, "test accuracy / retrained's (per seed)",
               f"{name}: gap closed, forget accuracy")
        _panel(row[1], pts, "retain", "y", colors, "retain accuracy / retrained's (per seed)", "")
        row[0].set_title(f"{name}, 15 % forget, {n} seeds (mean ± 95 % CI); label: CPU / retrain", fontsize=8)
        if cols == 3:
            if d in comp:
                cpts = competition_points(comp[d])
                extra = {m["method"]: cmap((len(colors) + i) % cmap.N) for i, m in enumerate(cpts)
                         if m["method"] not in colors}
                _panel(row[2], cpts, "test", "y", {**colors, **extra}, "test accuracy / retrained's (N runs)",
                       "forgetting quality F (competition)")
                nm = comp[d][0]["n_models"]
                run = comp_files[d].get("provenance", {})
                row[2].set_title(f"{name}: competition F, N = {nm} models a side (retrain = ceiling)\nrun "
                                 f"{str(run.get('date_utc', '?'))[:10]} at {str(run.get('commit', '?'))[:7]}: its "
                                 "methods' defaults of then", fontsize=8)
            else:
                row[2].axis("off")
        handles, labels = row[0].get_legend_handles_labels()
        uniq = dict(zip(labels, handles))
        legend = row[1].legend(uniq.values(), uniq.keys(), fontsize=6, loc="lower left")
        for handle in legend.legend_handles:
            handle.set_sizes([30])
    fig.tight_layout()
    out = Path(args.out) if args.out else results / "frontier.png"
    fig.savefig(out, dpi=130)
    print(f"wrote {out}")
    sources = [q for q in (args.source or SOURCES) if (results / q.partition(":")[0]).is_file()]
    if sources:
        pts = attack_points(results, sources)
        (out.parent / "frontier_rmia.md").write_text(attack_table(pts))
        attack_figure(plt, pts, out.parent / "frontier_rmia.png")


if __name__ == "__main__":
    main()
