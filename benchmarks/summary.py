"""Summaries of benchmark records: means with 95 % confidence intervals over seeds, gap closed, separation of the
original from the retrained model, and the targets — as Markdown, from the records alone (``--report_only``).

Gap closed = (original − method) / (original − retrained), per seed, on forget accuracy and loss-MIA: 1 = as far
as retraining, 0 = as doing nothing. It means something only where the original separates from the retrained
model (see :func:`separation`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from scipy import stats as st

from hf_unlearn.io import write_text_atomic

# A split separates when doing nothing is this far from retraining (means over seeds at 15 %).
SEPARATION = {"mia_loss": 0.10, "forget_acc": 0.15}
# a retrained reference whose accuracy on its own (retain) rows is below this under-fit them: the gold standard then
# flatters every method's retain / test comparison (the originals and the other references fit 0.95–1.00)
UNDERFIT_FLOOR = 0.90
# forget_loss (at the end, eval mode) beside τ, the held-out loss ∇τ aims the forget set at, shows where a run left
# the forget set; forget_gap_min (the lowest τ − in-step forget loss of any step, ≤ 0: a batch reached τ) whether the
# run got there on the way.
CI_KEYS = ("forget_acc", "test_acc", "retain_acc", "mia_loss", "ref_attack_auc", "ref_attack_tpr_at_1pct_fpr",
           "gap_closed_forget_acc", "gap_closed_mia_loss", "forget_loss", "tau", "forget_gap_min", "retrain_ratio")


TITLE = "GoEmotions unlearning benchmark"


def header_lines(meta: dict, title: str) -> list[str]:
    """A results file's header: title, command, commit (and whether the tree was dirty), machine, date, settings."""
    dirty = " (uncommitted changes)" if meta.get("dirty") else ""
    return [f"# {title}", "", f"Command: `{meta['command']}`", "", f"Code: commit {meta.get('commit')}{dirty}", "",
            f"Machine: {meta['machine']}", "", f"Date: {meta['date_utc']} UTC", "",
            "Settings: " + ", ".join(f"{k}={v}" for k, v in meta["settings"].items())]


def mean_ci(values: list[float], level: float = 0.95) -> tuple[float, float, int]:
    """Mean and half-width of its two-sided Student-t confidence interval (NaN width for one value)."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(values) / n
    if n == 1:
        return mean, math.nan, 1
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, float(st.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n), n


def gap_closed(original: float, method: float, retrain: float) -> float | None:
    den = original - retrain
    return None if abs(den) < 1e-12 else (original - method) / den


def fmt_ci(values: list[float]) -> str:
    mean, half, n = mean_ci(values)
    if n == 0:
        return ""
    return f"{mean:.3f}" if n == 1 or math.isnan(half) else f"{mean:.3f} ± {half:.3f}"


def select(rows: list[dict], method: str | None = None, forget: str | None = None) -> list[dict]:
    return [r for r in rows if (method is None or r["method"] == method) and (forget is None or r["forget"] == forget)]


def separation(rows: list[dict], forget: str) -> dict[str, tuple[float, float, bool]]:
    """Original − retrained per criterion at one split: (mean, CI half-width, separates?) over seeds."""
    out = {}
    for key, need in SEPARATION.items():
        diffs = paired(rows, "original", "retrain", key, forget)
        mean, half, _ = mean_ci(diffs)
        out[key] = (mean, half, bool(diffs) and mean >= need)
    return out


def underfit_references(rows: list[dict]) -> list[str]:
    """The retrained references that under-fit their rows (training accuracy below `UNDERFIT_FLOOR`), as
    'split seed K (accuracy)'."""
    return [f"{r['forget']} seed {r['seed']} ({r['retain_acc']:.3f})" for r in select(rows, "retrain")
            if r.get("retain_acc") is not None and r["retain_acc"] < UNDERFIT_FLOOR]


def methods_of(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["method"] for r in rows))


def ci_table(rows: list[dict], forget: str) -> list[str]:
    sel = select(rows, forget=forget)
    cols = ["method", "n"] + list(CI_KEYS)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for m in methods_of(sel):
        ms = select(sel, m)
        lines.append(f"| {m} | {len(ms)} | " + " | ".join(fmt_ci([r.get(k) for r in ms]) for k in CI_KEYS) + " |")
    return lines


def is_nabla_tau(method: str) -> bool:
    """∇τ itself or one of its variants (``nabla_tau_<label>``): never counted as a baseline."""
    return method == "nabla_tau" or method.startswith("nabla_tau_")


def targets(rows: list[dict], method: str = "nabla_tau", forget: str = "15%") -> list[str]:
    """Issue targets at the 15 % split (means over seeds with 95 % CI), each with a verdict."""
    def m(name: str, key: str) -> tuple[float, float, int]:
        return mean_ci([r.get(key) for r in select(rows, name, forget)])

    def test_gap(name: str) -> tuple[float, float, int]:  # test accuracy − the retrained model's, paired by seed
        return mean_ci(paired(rows, name, "retrain", "test_acc", forget))

    if not select(rows, method, forget) or not select(rows, "retrain", forget):
        return []
    sep = separation(rows, forget)
    measurable = all(ok for _, _, ok in sep.values())
    gf, gm = m(method, "gap_closed_forget_acc"), m(method, "gap_closed_mia_loss")
    tg, ratio = test_gap(method), m(method, "retrain_ratio")
    baselines = [b for b in methods_of(rows) if b not in ("original", "retrain") and not is_nabla_tau(b)]
    score = {b: (m(b, "gap_closed_forget_acc")[0] + m(b, "gap_closed_mia_loss")[0]) / 2 for b in baselines}
    own = (gf[0] + gm[0]) / 2

    def best(names: list[str]) -> str:  # the highest mean gap closed (a NaN never wins)
        return max(names, key=lambda b: score[b] if not math.isnan(score[b]) else -math.inf)

    def verdict(ok: bool) -> str:
        return ("yes" if ok else "no") if measurable else "not measurable"

    checks = [
        ("gap closed, forget accuracy ≥ 0.90", gf, verdict(gf[0] >= 0.9)),
        ("gap closed, loss-MIA ≥ 0.90", gm, verdict(gm[0] >= 0.9)),
        ("test accuracy − retrained's ≥ −0.01", tg, verdict(tg[0] >= -0.01)),
        ("time ≤ 10 % of retraining (CPU-time ratio)", ratio, "yes" if ratio[0] <= 0.10 else "no"),
    ]
    out = ["", f"Targets ({method}, {forget} split, mean ± 95 % CI over seeds):", "",
           "| target | value | met |", "|---|---|---|"]
    out += [f"| {name} | {v[0]:.3f} ± {v[1]:.3f} (n={v[2]}) | {ok} |" for name, v, ok in checks]
    if score:
        top = best(baselines)
        out.append(f"| mean gap closed ({own:.3f}) ahead of every baseline (best: {top} {score[top]:.3f}) | "
                   f"{own - score[top]:+.3f} | {verdict(own > score[top])} |")
        # Gap closed above 1 is over-unlearning (the forget set looks *less* familiar than to the retrained model,
        # which an attacker can also detect); the distance to retraining counts both directions.
        dist = {b: mean_ci([distance(r) for r in select(rows, b, forget)])[0] for b in baselines}
        near = min(dist, key=lambda b: dist[b] if not math.isnan(dist[b]) else math.inf)
        mine = mean_ci([distance(r) for r in select(rows, method, forget)])[0]
        out.append(f"| distance to retraining, mean of abs(1 − gap closed) over both figures ({mine:.3f}), below every "
                   f"baseline's (nearest: {near} {dist[near]:.3f}) | {mine - dist[near]:+.3f} | "
                   f"{verdict(mine < dist[near])} |")
        # Forgetting is cheap when utility goes with it: the same comparison among the baselines that keep the
        # utility target (test accuracy ≥ the retrained model's − 1 point, paired by seed).
        kept = [b for b in baselines if test_gap(b)[0] >= -0.01]
        if kept:
            top = best(kept)
            out.append(f"| mean gap closed ({own:.3f}) ahead of every baseline that keeps test accuracy ≥ the "
                       f"retrained model's − 1 point ({len(kept)} of {len(baselines)}; best: {top} {score[top]:.3f}) | "
                       f"{own - score[top]:+.3f} | {verdict(own > score[top])} |")
    return out


def paired_table(rows: list[dict], forget: str, base: str = "nabla_tau") -> list[str]:
    """Each ∇τ variant minus the default, paired by seed (mean ± 95 % CI): the difference the split's own difficulty
    does not blur."""
    keys = ("gap_closed_forget_acc", "gap_closed_mia_loss", "test_acc")
    own = {r["seed"]: r for r in select(rows, base, forget)}
    variants = [m for m in methods_of(rows) if is_nabla_tau(m) and m != base]
    if len(own) < 2 or not variants:
        return []
    out = ["", f"Paired with `{base}` ({forget} split): per-seed difference, variant − {base}, mean ± 95 % CI over "
           "seeds:", "", "| method | n | " + " | ".join(keys) + " |", "|---|---|" + "---|" * len(keys)]
    for m in variants:
        n = sum(r["seed"] in own for r in select(rows, m, forget))
        out.append(f"| {m} | {n} | " + " | ".join(fmt_ci(paired(rows, m, base, k, forget)) for k in keys) + " |")
    return out


def paired(rows: list[dict], method: str, base: str, key: str, forget: str) -> list[float]:
    """``key`` of ``method`` minus that of ``base``, per seed both ran (and both measured)."""
    own = {r["seed"]: r.get(key) for r in select(rows, base, forget)}
    return [r[key] - own[r["seed"]] for r in select(rows, method, forget)
            if r.get(key) is not None and own.get(r["seed"]) is not None]


def distance(row: dict) -> float | None:
    """Mean of abs(1 − gap closed) over forget accuracy and loss-MIA: 0 = where retraining is, either way."""
    gaps = [row.get("gap_closed_forget_acc"), row.get("gap_closed_mia_loss")]
    return None if None in gaps else sum(abs(1 - g) for g in gaps) / 2


def run_time_line(meta: dict) -> str | None:
    """How long the run took, by phase, and how many models it trained itself (the rest came from the cache)."""
    train, total = meta.get("training_phase"), meta.get("wall_seconds_total")
    if not train or total is None:
        return None
    cached = train["models"] - train["trained_now"]
    return (f"Run time: {total / 60:.1f} min wall in all: training {train['trained_now']} of {train['models']} models "
            f"in {train['wall_s'] / 60:.1f} min" + (f" ({cached} from the cache)" if cached else " (none from a cache)")
            + f", then the splits in {(meta.get('splits_phase_wall_s') or 0) / 60:.1f} min.")


def markdown(rows: list[dict], meta: dict) -> str:
    """The results markdown: the header and run time from ``meta`` (the JSON's provenance), then the tables."""
    dataset = meta["settings"].get("dataset", "goemotions")
    title = TITLE if dataset == "goemotions" else f"{dataset} unlearning benchmark"
    lines = header_lines(meta, title) + ["", f"Splits finished: {meta['splits_finished']} of {meta['splits_total']}.",
                                         ""]
    run_time = run_time_line(meta)
    lines += [run_time, ""] if run_time else []
    lines += ["Times: `wall_time_s` is wall clock, `cpu_time_s` the process's CPU time; `retrain_ratio` is the "
              "CPU-time ratio to the retrained model of the split (robust to other load on the machine), "
              "`wall_ratio` the wall-clock one.", ""]
    splits = list(dict.fromkeys(r["forget"] for r in rows))
    lines += ["## Does the setting measure anything? Original (do nothing) − retrained", "",
              f"A split separates when the mean difference is at least {SEPARATION['mia_loss']} in loss-MIA and "
              f"{SEPARATION['forget_acc']} in forget accuracy; elsewhere its verdicts are 'not measurable'.", "",
              "The training accuracies (on the retain rows) say whether the original was trained to (near) "
              "convergence, as the paper's originals are, and whether the retrained reference fits its rows as well.",
              "",
              "| split | seeds | original training accuracy | retrained training accuracy | loss-MIA | "
              "forget accuracy | RMIA AUC (original vs retrained reference) | separates |",
              "|---|---|---|---|---|---|---|---|"]
    for s in splits:
        sep = separation(rows, s)
        n = len(select(rows, "original", s))
        rmia = fmt_ci([r.get("ref_attack_auc") for r in select(rows, "original", s)])
        fit, refit = (fmt_ci([r.get("retain_acc") for r in select(rows, m, s)]) for m in ("original", "retrain"))
        cells = [f"{sep[k][0]:+.3f}" + ("" if math.isnan(sep[k][1]) else f" ± {sep[k][1]:.3f}") for k in SEPARATION]
        lines.append(f"| {s} | {n} | {fit} | {refit} | {cells[0]} | {cells[1]} | {rmia} | "
                     f"{'yes' if all(v[2] for v in sep.values()) else 'no: not measurable'} |")
    underfit = underfit_references(rows)
    if underfit:
        lines += ["", f"Under-fit retrained references (training accuracy below {UNDERFIT_FLOOR}; a gold standard "
                  "that under-fits flatters every method's retain and test accuracy against it): "
                  + ", ".join(underfit) + "."]
    for s in splits:
        lines += ["", f"## {s}: mean ± 95 % CI over seeds", ""] + ci_table(rows, s)
    for method in filter(is_nabla_tau, methods_of(rows)):
        lines += targets(rows, method)
    for s in splits:
        lines += paired_table(rows, s)
    cols = ["method", "forget", "seed", "forget_acc", "retain_acc", "test_acc", "mia_loss", "mia_entropy",
            "ref_attack_auc", "ref_attack_tpr_at_1pct_fpr", "gap_closed_forget_acc", "gap_closed_mia_loss",
            "forget_loss", "tau", "forget_gap_min", "wall_time_s", "retrain_ratio", "verdicts"]
    lines += ["", "## Every run", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_cell(r.get(c)) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _cell(v) -> str:
    if isinstance(v, dict):
        return ", ".join(f"{k}: {o}" for k, o in v.items())
    return "" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


# ------------------------------------------------------------------ the records files (JSON + Markdown)
def record(method, forget, seed, report, times, retrain=None, original=None, extra=None) -> dict:
    """One model's figures. ``times`` = (wall seconds, process CPU seconds); ``retrain_ratio`` is the CPU-time
    ratio to the retrained model (robust to other load on the machine; ``wall_ratio`` is the wall-clock one)."""
    ref = report.ref_attack
    wall, cpu = times
    row = {
        "method": method, "forget": forget, "seed": seed, "wall_time_s": round(wall, 2), "cpu_time_s": round(cpu, 2),
        "forget_acc": report.forget_accuracy, "retain_acc": report.retain_accuracy,
        "test_acc": report.test_accuracy, "forget_loss": report.forget_loss, "test_loss": report.test_loss,
        "mia_loss": report.mia_loss.accuracy, "mia_loss_std": report.mia_loss.accuracy_std,
        "mia_loss_auc": report.mia_loss.auc, "mia_entropy": report.mia_entropy.accuracy,
        "mia_entropy_auc": report.mia_entropy.auc, "n_forget": report.n_forget,
        "ref_attack_auc": None if ref is None else ref.auc,
        "ref_attack_tpr_at_1pct_fpr": None if ref is None else ref.tpr_at_1pct_fpr,
        "ref_attack_tpr_at_0_1pct_fpr": None if ref is None else ref.tpr_at_0_1pct_fpr,
        "ref_attack_null_std": None if ref is None else ref.null_auc_std,
    }
    if retrain is not None:
        row["retrain_ratio"] = round(cpu / retrain["cpu_time_s"], 4)
        row["wall_ratio"] = round(wall / retrain["wall_time_s"], 4)
        for key in ("mia_loss", "mia_entropy", "forget_acc", "test_acc", "retain_acc"):
            row[f"gap_{key}"] = abs(row[key] - retrain[key])
        if original is not None:
            for key in ("forget_acc", "mia_loss"):
                row[f"gap_closed_{key}"] = gap_closed(original[key], row[key], retrain[key])
    row.update(extra or {})
    return row


def write(out: Path, stem: str, rows: list[dict], meta: dict, done: int, total: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    meta = {**meta, "splits_finished": done, "splits_total": total}
    write_text_atomic(out / f"{stem}.json", json.dumps({"provenance": meta, "records": rows}, indent=1))
    write_text_atomic(out / f"{stem}.md", markdown(rows, meta))


def report_only(out: Path, stem: str) -> None:
    """Rewrite the markdown from the JSON a finished run wrote: no training."""
    data = json.loads((out / f"{stem}.json").read_text())
    if isinstance(data, list):
        raise SystemExit(f"{out / stem}.json predates recorded provenance (a plain list of records): rerun the "
                         "benchmark to regenerate it.")
    meta = data["provenance"]
    write(out, stem, data["records"], meta, meta["splits_finished"], meta["splits_total"])
