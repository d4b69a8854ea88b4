#!/usr/bin/env bash
# The MNIST accuracy-target runs of docs/benchmarks.md: configs/mnist.yaml end to end (search, re-scoring of
# the top 3, final training with 2 seeds, export) once per strategy, one after the other, each timed alone.
#
#   bash benchmarks/mnist_target.sh [OUT] [DATA_DIR] ["ppo random evolution"]
#   python benchmarks/mnist_table.py OUT
set -euo pipefail
out=${1:-/tmp/mnistruns}
data=${2:-$(cd "$(dirname "$0")/../.." && pwd)/shared/datasets}
mkdir -p "$out"
for s in ${3:-ppo random evolution}; do
    start=$(date +%s.%N)
    rlnas -q search --config configs/mnist.yaml --set dataset.data_dir="$data" --strategy "$s" \
        --run-dir "$out/$s" > "$out/$s.out" 2> "$out/$s.err"
    end=$(date +%s.%N)
    echo "$s wall $(echo "$end - $start" | bc) s" >> "$out/walls.txt"
done
