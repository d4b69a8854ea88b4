#!/usr/bin/env bash
# Weight sharing against multi-trial search on MNIST (docs/benchmarks.md, "One-shot search"): configs/mnist.yaml
# end to end (search, re-scoring of the top 3 by standalone training, final training with 2 seeds, export)
# for multi-trial ppo and random, and one-shot ppo (ENAS), SPOS (uniform paths + evolution) and DARTS (GDAS)
# on the same space, one after the other on the same machine, each timed alone.
#
#   bash benchmarks/oneshot_mnist.sh [OUT] [DATA_DIR] ["ppo oneshot-ppo spos darts random"] [EXTRA FLAGS]
# (EXTRA FLAGS go to every search, e.g. "--set export.enabled=false" to time the searches alone)
#   python benchmarks/mnist_table.py OUT
set -euo pipefail
out=${1:-/tmp/oneshotruns}
data=${2:-$(cd "$(dirname "$0")/../.." && pwd)/shared/datasets}
mkdir -p "$out"
# configs/mnist.yaml as docs/benchmarks.md's tables were measured (before 2026-12-06): 1-epoch children, no
# pruner (one-shot search cannot prune), parameters charged
as_measured=(--set training.epochs=1 --set pruning.rule=none --set objective.complexity=params
    --set budget.pruned=share)
# the same 40 evaluations; half an epoch of supernet warm-up, 2 steps per evaluation, 1000 validation examples
oneshot=(--evaluation oneshot --set oneshot.warmup_epochs=0.5 --set oneshot.steps_per_evaluation=2
    --set oneshot.score_examples=1000 --set oneshot.calibration_batches=2)
for name in ${3:-ppo oneshot-ppo spos darts random}; do
    case $name in
        ppo) flags=(--strategy ppo) ;;
        random) flags=(--strategy random) ;;
        oneshot-ppo) flags=(--strategy ppo "${oneshot[@]}") ;;
        spos) flags=(--strategy evolution "${oneshot[@]}" --set oneshot.path_sampling=uniform) ;;
        darts) flags=(--strategy darts "${oneshot[@]}" --set oneshot.steps_per_evaluation=0 --set strategy.darts.steps_per_ask=3) ;;
        *) echo "unknown run $name" >&2; exit 2 ;;
    esac
    start=$(date +%s.%N)
    rlnas -q search --config configs/mnist.yaml --set dataset.data_dir="$data" "${as_measured[@]}" "${flags[@]}" \
        ${4:-} --run-dir "$out/$name" > "$out/$name.out" 2> "$out/$name.err"
    end=$(date +%s.%N)
    echo "$name wall $(echo "$end - $start" | bc) s" >> "$out/walls.txt"
done
