"""Training examples/s of every model, fed from memory and from the input pipeline.

At the paper's batch of 1024 an accelerator finishes a step faster than the
host decodes 1024 videos; the gap between the two columns is that
input-boundness. Each model is timed twice with train.py's own step: on one
batch held in memory, and on batches from the frame reader over generated
records (the same shape of data), with KTS in the pipeline for DCGN with
shots. Writes a markdown table.

    .venv/bin/python benchmarks/accelerator.py                 # full size
    .venv/bin/python benchmarks/accelerator.py --jit_compile --mixed_precision=mixed_bfloat16
    .venv/bin/python benchmarks/accelerator.py --batch_size=16 --frames=40 \\
        --features=12 --classes=10 --steps=2 --filters=8 --levels=3   # a smoke run
"""

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import atomic_files  # noqa: E402
import common  # noqa: E402
import configs  # noqa: E402
import generate_data  # noqa: E402
import losses  # noqa: E402
import training  # noqa: E402

MODELS = (
    "FrameLevelLogisticModel,DbofModel,LstmModel,GruModel,"
    "DCGNModel:average,DCGNModel:attention,DCGNModel:attention:32"
)


def config_for(spec, args):
    """`spec` is a model name, or DCGNModel:POOLING[:SHOTS]."""
    name, _, variant = spec.partition(":")
    family = configs.model_family(name)
    body = family.body() if family.body else None
    if isinstance(body, configs.RecurrentConfig):
        body = configs.RecurrentConfig(lstm_cells=args.filters)
    if isinstance(body, configs.DbofConfig):
        body = configs.DbofConfig(
            dbof_cluster_size=8 * args.filters, dbof_hidden_size=args.filters
        )
    if isinstance(body, configs.DCGNConfig):
        pooling, _, shots = variant.partition(":")
        body = configs.DCGNConfig(
            dcgn_levels=args.levels,
            dcgn_filters=args.filters,
            dcgn_pooling=pooling or "average",
            dcgn_shots=int(shots or 0),
        )
    audio = min(128, args.features // 2)
    return configs.ModelConfig(
        model=name,
        frame_features=True,
        feature_names=("rgb", "audio"),
        feature_sizes=(args.features - audio, audio),
        max_frames=args.frames,
        num_classes=args.classes,
        body=body,
    )


def examples_per_second(step, batches, steps, batch_size):
    """Throughput of `steps` steps after one warm-up (tracing) step."""
    float(step(next(batches))[0])
    start = time.perf_counter()
    for _ in range(steps):
        loss = step(next(batches))[0]
    float(loss)  # waits for the last step
    return steps * batch_size / (time.perf_counter() - start)


def time_model(spec, args, pattern):
    config = config_for(spec, args)
    keras.mixed_precision.set_global_policy(args.mixed_precision or "float32")
    try:
        model = common.build_model(config)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(model.trainable_variables)
    step = training.make_train_step(
        model,
        optimizer,
        losses.CrossEntropyLoss(),
        args.batch_size,
        jit_compile=args.jit_compile,
    )
    reader = common.make_reader(config, dequantize=not args.dequantize_in_model)
    pipeline = common.make_dataset(
        config, pattern, args.batch_size, reader, training=True, num_epochs=None
    )
    batches = iter(pipeline)
    held = next(batches)
    in_memory = examples_per_second(
        step, iter(lambda: held, None), args.steps, args.batch_size
    )
    from_pipeline = examples_per_second(step, batches, args.steps, args.batch_size)
    return in_memory, from_pipeline


def write_data(directory, args):
    """Enough generated training videos for two batches, looped over."""
    generate_data.generate(
        directory,
        num_train=2 * args.batch_size,
        num_validate=0,
        num_test=0,
        num_shards=4,
        num_classes=min(args.classes, 40),
        min_frames=min(60, args.frames),
        max_frames=args.frames,
        feature_sizes=config_for("FrameLevelLogisticModel", args).feature_sizes,
        levels=("frame",),
        write_truth=False,
    )
    return os.path.join(directory, "frame", "train*.tfrecord")


def run(args):
    """Rows (model, in-memory ex/s, pipeline ex/s) and the markdown table."""
    with tempfile.TemporaryDirectory() as directory:
        pattern = args.data_pattern or write_data(directory, args)
        rows = []
        for spec in args.models.split(","):
            in_memory, from_pipeline = time_model(spec, args, pattern)
            rows.append((spec, in_memory, from_pipeline))
            print(
                f"{spec:28s} in memory {in_memory:9.1f} ex/s  "
                f"pipeline {from_pipeline:9.1f} ex/s  "
                f"ratio {from_pipeline / in_memory:5.2f}",
                flush=True,
            )
    devices = ", ".join(d.device_type for d in tf.config.list_logical_devices())
    lines = [
        f"batch {args.batch_size} x {args.frames} frames x {args.features} "
        f"features, {args.classes} classes, {args.filters} filters/cells; "
        f"jit_compile={args.jit_compile}, mixed_precision="
        f"{args.mixed_precision or 'float32'}; devices: {devices}; "
        f"{os.cpu_count()} CPUs",
        "",
        "| model | in memory (ex/s) | input pipeline (ex/s) | pipeline / memory |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {spec} | {memory:.1f} | {pipeline:.1f} | {pipeline / memory:.2f} |"
        for spec, memory, pipeline in rows
    ]
    return rows, "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=MODELS)
    parser.add_argument("--batch_size", type=int, default=1024)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--features", type=int, default=1152)
    parser.add_argument("--classes", type=int, default=3862)
    parser.add_argument("--filters", type=int, default=1024)
    parser.add_argument("--levels", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--jit_compile", action="store_true")
    parser.add_argument("--mixed_precision", default="")
    parser.add_argument("--dequantize_in_model", action="store_true")
    parser.add_argument(
        "--data_pattern", default="", help="frame-level records (default: generated)"
    )
    parser.add_argument("--output", default="", help="also write the table here")
    return parser.parse_args(argv)


def main():
    args = parse_args()
    _, table = run(args)
    print(table)
    if args.output:
        atomic_files.atomic_write(args.output, table + "\n")


if __name__ == "__main__":
    main()
