#!/usr/bin/env bash
# The main job end to end on generated data: set up .venv, write YouTube-8M
# format shards with planted shot structure, train DCGN (with KTS shots) and
# the average-pooling baseline, evaluate both, write a Kaggle submission.
# Everything goes under ${DEMO_DIR:-runs/demo}; about two minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
py=.venv/bin/python
out=${DEMO_DIR:-runs/demo}
steps=${DEMO_STEPS:-400}
mkdir -p "$out"

if [ ! -f "$out/data/structure.json" ]; then
  $py generate_data.py --output_dir="$out/data" --num_train=1600 \
    --num_validate=400 --num_test=200 --min_frames=60 --max_frames=150 \
    --feature_sizes=96,32 --write_truth=false
fi

common=(--frame_features --feature_sizes=96,32 --max_frames=150
        --num_classes=40 --batch_size=32 --base_learning_rate=0.001
        --max_steps="$steps" --num_epochs=100 --log_steps=50
        "--train_data_pattern=$out/data/frame/train*.tfrecord")
$py train.py "${common[@]}" --train_dir="$out/dcgn" --model=DCGNModel \
  --dcgn_levels=3 --dcgn_filters=128 --dcgn_shots=16
$py train.py "${common[@]}" --train_dir="$out/average" \
  --model=FrameLevelLogisticModel

for run in dcgn average; do
  echo "== $run on the validate split"
  $py eval.py --train_dir="$out/$run" --run_once \
    "--eval_data_pattern=$out/data/frame/validate*.tfrecord" \
    --eval_results_file="$out/$run/eval.json"
done
$py inference.py --train_dir="$out/dcgn" \
  "--input_data_pattern=$out/data/frame/test*.tfrecord" \
  --output_file="$out/submission.csv"
head -3 "$out/submission.csv" | cut -c1-100
