"""compare.py's report: the Markdown table (the paper's Table 2) and the plots.

Reads only the results dict compare.py writes (results.json), so that
`compare.py --replot_from=results.json` remakes the report without
TensorFlow or any training.
"""

import json
import math
import os
import shlex

import atomic_files
from cli import UsageError

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
BAR_PNG = "gap_hit1.png"
CURVE_PNG = "gap_vs_steps.png"


def bold_top2(values, higher_is_better=True):
    """Indices of the two best values, as the paper bolds them."""
    ranked = sorted(
        (i for i, v in enumerate(values) if v is not None and math.isfinite(v)),
        key=lambda i: values[i],
        reverse=higher_is_better,
    )
    return set(ranked[:2])


def fmt_number(value, spec):
    return "n/a" if value is None else format(value, spec)


def markdown_table(results):
    """The paper's Table 2 (GAP, Hit@1 in %, loss) plus PERR, mAP and speeds."""
    models = results["models"]
    columns = [
        ("GAP (%)", [100 * m["final"]["gap"] for m in models], ".2f", True),
        ("Hit@1 (%)", [100 * m["final"]["hit_at_one"] for m in models], ".2f", True),
        ("Loss", [m["final"]["loss"] for m in models], ".3f", False),
        ("PERR (%)", [100 * m["final"]["perr"] for m in models], ".2f", True),
        ("mAP (%)", [100 * m["final"]["map"] for m in models], ".2f", True),
    ]
    header = ["Model", *[c[0] for c in columns]]
    header += ["Parameters", "Train examples/s", "Inference examples/s"]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    # With two models or fewer, bolding the best two would bold everything.
    best = [
        bold_top2(values, better) if len(models) > 2 else set()
        for _, values, _, better in columns
    ]
    for i, model in enumerate(models):
        cells = [model["label"]]
        for (_, values, spec, _), top in zip(columns, best):
            text = fmt_number(values[i], spec)
            cells.append(f"**{text}**" if i in top else text)
        cells += [
            f"{model['parameters']:,}",
            fmt_number(model.get("train_examples_per_second"), ".1f"),
            fmt_number(model.get("inference_examples_per_second"), ".1f"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(results):
    settings = results["settings"]
    title = settings.get("title") or "Model comparison"
    steps = {m["final"]["step"] for m in results["models"]}
    examples = {m["final"]["num_examples"] for m in results["models"]}
    lines = [
        f"## {title}",
        "",
        f"Trained on `{settings['train_data_pattern']}` "
        f"({settings.get('num_train_records', '?')} videos), evaluated on "
        f"`{settings['eval_data_pattern']}` ({', '.join(map(str, sorted(examples)))} "
        f"videos); {', '.join(map(str, sorted(steps)))} steps of batch "
        f"{settings['batch_size']} per model. "
        f"{'Best two of each metric in bold. ' if len(results['models']) > 2 else ''}"
        "Speeds are on the machine that ran the comparison; inference "
        "examples/s is eval.py's, including input reading.",
        "",
        markdown_table(results),
        "",
        "Per-model settings (besides the shared train flags "
        f"`{shlex.join(settings['train_flags']) or 'none'}`):",
        "",
    ]
    for model in results["models"]:
        overrides = " ".join(f"--{k}={v}" for k, v in model["overrides"].items())
        lines.append(
            f"- {model['label']}: `--model={model['model']}"
            f"{' ' + overrides if overrides else ''}`"
        )
    lines += ["", f"Command: `{settings['command']}`", ""]
    return "\n".join(lines)


def plot(results, directory):
    import matplotlib  # pylint: disable=g-import-not-at-top

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

    models = results["models"]
    labels = [m["label"] for m in models]
    title = results["settings"].get("title") or "Model comparison"

    figure, axes = plt.subplots(figsize=(max(6.0, 1.3 * len(models) + 2), 4.2))
    width = 0.38
    positions = range(len(models))
    for offset, key, name in (
        (-width / 2, "gap", "GAP"),
        (width / 2, "hit_at_one", "Hit@1"),
    ):
        values = [100 * m["final"][key] for m in models]
        bars = axes.bar([p + offset for p in positions], values, width, label=name)
        axes.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
    axes.set_xticks(list(positions))
    axes.set_xticklabels(labels, rotation=20, ha="right")
    axes.set_ylabel("percent")
    # Headroom above 100 % keeps the legend clear of the bars.
    axes.set_ylim(0, 118)
    axes.set_title(f"{title}: final GAP and Hit@1")
    axes.legend(loc="upper center", ncol=2, frameon=False)
    axes.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(os.path.join(directory, BAR_PNG), dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for model in models:
        steps = [point["step"] for point in model["curve"]]
        gaps = [100 * point["gap"] for point in model["curve"]]
        axes.plot(steps, gaps, marker="o", markersize=3, label=model["label"])
    axes.set_xlabel("training step")
    axes.set_ylabel("eval GAP (%)")
    axes.set_title(f"{title}: eval GAP during training")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(os.path.join(directory, CURVE_PNG), dpi=110)
    plt.close(figure)


def write_outputs(results, directory):
    """results.json (unless it is the source), results.md and the PNGs."""
    atomic_files.atomic_write(
        os.path.join(directory, RESULTS_MD), markdown_report(results)
    )
    plot(results, directory)


def replot_directory(path):
    """Where --replot_from writes without --output_dir: beside a run's own
    results.json, otherwise (a shipped table such as
    docs/comparison-synth.json) runs/replot/<its name>/, so that a checkout
    is never written into."""
    if os.path.basename(path) == RESULTS_JSON:
        return os.path.dirname(os.path.abspath(path))
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.join("runs", "replot", stem)


def replot(path, directory=""):
    try:
        with open(path) as f:
            results = json.load(f)
    except (OSError, ValueError) as error:
        raise UsageError(f"--replot_from={path!r}: {error}") from None
    if "models" not in results or "settings" not in results:
        raise UsageError(f"--replot_from={path!r} is not a compare.py results.json.")
    directory = directory or replot_directory(path)
    os.makedirs(directory, exist_ok=True)
    write_outputs(results, directory)
    print(f"wrote {os.path.join(directory, RESULTS_MD)}, {BAR_PNG}, {CURVE_PNG}")
    print(markdown_table(results))


# -------------------------------------------------------------------- main
