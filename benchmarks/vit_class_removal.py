"""ViT class removal on MNIST: does ∇τ keep the remaining classes' accuracy? Against the original and a model
retrained without the class, over seeds, through the job pipeline (`examples/unlearn_vit.py`'s config,
``configs/mnist_vit.yaml``, with its class-removal settings).

For each seed: the job trains the original (a small ViT from scratch) on the training images, retrains one without
the removed class, unlearns the class with ∇τ, and measures test accuracy on the removed class and on the remaining
ones (``class_accuracy`` in the job's audit.json). The figure of merit is the remaining-class accuracy minus the
retrained model's, in points (target: within 1), shown beside the original's own (doing nothing), which says how much
of it is training noise between two models.

    python benchmarks/vit_class_removal.py --data_dir ../shared/data/mnist                # 4 seeds, class 3
    python benchmarks/vit_class_removal.py --quick                                       # digits, 1 seed (smoke)

Writes ``<out>/vit_class_removal.json`` (provenance + per-seed records) and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from summary import fmt_ci, header_lines  # noqa: E402

from hf_unlearn.io import write_text_atomic  # noqa: E402
from hf_unlearn.pipeline.config import load_job  # noqa: E402
from hf_unlearn.pipeline.run import run_job  # noqa: E402
from hf_unlearn.provenance import provenance  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mnist_vit.yaml"
MODELS = ("original", "unlearned", "retrained")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data_dir", default=None, help="MNIST folder (idx files); default: the config's fallbacks.")
    p.add_argument("--dataset", default="mnist", choices=["mnist", "digits"])
    p.add_argument("--forget_class", default="3", help="The class to remove (id).")
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 0, 1, 2])
    p.add_argument("--train_rows", type=int, default=4000)
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--quick", action="store_true", help="scikit-learn digits, one seed, 700 rows: a smoke test.")
    if p.parse_known_args(argv)[0].quick:
        p.set_defaults(dataset="digits", seeds=[0], train_rows=700, out="benchmarks/results/quick")
    return p.parse_args(argv)


def one_seed(args, seed: int, work: Path) -> dict:
    argv = ["--dataset", args.dataset, "--forget_classes", args.forget_class, "--train_rows", str(args.train_rows),
            "--retrain", "true", "--seed", str(seed), "--output_dir", str(work / f"seed{seed}"),
            "--overwrite_output_dir", "true", "--audit_points", "0"]
    if args.data_dir:
        argv += ["--data_dir", args.data_dir]
    if args.quick:
        argv += ["--original_epochs", "25", "--val_rows", "200", "--test_rows", "200"]
    job, uargs = load_job(CONFIG, argv, report_to="none", disable_tqdm=True)
    start = time.perf_counter()
    run_job(job, uargs, say=lambda _: None)
    audit = json.loads((work / f"seed{seed}" / "audit.json").read_text())
    acc = audit["class_accuracy"]
    row = {"seed": seed, "wall_time_s": round(time.perf_counter() - start, 1)}
    for m in MODELS:
        row[f"{m}_forget_class_acc"] = acc[m]["forget_class_test_accuracy"]
        row[f"{m}_remaining_acc"] = acc[m]["remaining_classes_test_accuracy"]
    for m in ("original", "unlearned"):
        row[f"{m}_remaining_vs_retrained_points"] = 100 * (row[f"{m}_remaining_acc"] - row["retrained_remaining_acc"])
    return row


def markdown(rows: list[dict], meta: dict) -> str:
    lines = header_lines(meta, "ViT class removal (MNIST)") + ["",
             "Remaining-class test accuracy minus the retrained model's, in points (target for ∇τ: within 1), and "
             "the removed class's test accuracy; mean ± 95 % CI over seeds.", "",
             "| model | remaining classes vs retrained (points) | per seed | removed-class accuracy |",
             "|---|---|---|---|"]
    for m, label in (("original", "original (do nothing)"), ("unlearned", "∇τ (class-removal settings)")):
        pts = [r[f"{m}_remaining_vs_retrained_points"] for r in rows]
        lines.append(f"| {label} | {fmt_ci(pts)} | {' / '.join(f'{p:+.1f}' for p in pts)} | "
                     f"{fmt_ci([r[f'{m}_forget_class_acc'] for r in rows])} |")
    lines.append(f"| retrained | 0 | | {fmt_ci([r['retrained_forget_class_acc'] for r in rows])} |")
    lines += ["", "| seed | " + " | ".join(k for k in rows[0] if k != "seed") + " |",
              "|---|" + "---|" * (len(rows[0]) - 1)]
    for r in rows:
        lines.append(f"| {r['seed']} | " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v)
                                                       for k, v in r.items() if k != "seed") + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    args = parse_args(argv)
    meta = provenance([sys.argv[0], *(sys.argv[1:] if argv is None else argv)], seeds=args.seeds,
                      code=Path(__file__), settings=vars(args))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:
        rows.append(one_seed(args, seed, out / "work" / "vit_class_removal"))
        r = rows[-1]
        print(f"seed {seed}: remaining classes vs retrained: original "
              f"{r['original_remaining_vs_retrained_points']:+.1f}, ∇τ "
              f"{r['unlearned_remaining_vs_retrained_points']:+.1f} points; removed class ∇τ "
              f"{r['unlearned_forget_class_acc']:.3f} ({r['wall_time_s']:.0f}s)", flush=True)
        write_text_atomic(out / "vit_class_removal.json", json.dumps({"provenance": meta, "records": rows}, indent=1))
        write_text_atomic(out / "vit_class_removal.md", markdown(rows, meta))
    print((out / "vit_class_removal.md").read_text())


if __name__ == "__main__":
    main()
