#!/usr/bin/env bash
# The multi-level comparison: AP against iteration on the built-in data of
#   single-level  the main job's recipe (MobileNetV3-Small + FPN, level p2, TTFNet's gaussians)
#   BiFPN         the same with a BiFPN (CPU/centernet_MobileNetV3_small_BiFPN_shapes.yaml)
#   multi-level   CenterNet2's one-stage multi-level CenterNet (FPN P3-P7, shared GN head)
#   RetinaNet     Detectron2's RetinaNet-R18-FPN peer, tools/train_peer.py, same budget
# on shapes_val (the main job's budget: 1000 iterations of batch 16 at 256 px) and on the
# wide-scale set shapes_wide_val (512 px, 1-60 objects of 4-256 px: WIDE_ITER iterations of batch
# 8 at 512 px). Each run trains from scratch on one thread, two runs at a time, and is evaluated
# every EVAL_PERIOD iterations. Writes output/compare14/<set>_<run>/ and, with
# tools/compare_runs.py, docs/compare/levels_{shapes,wide}_ap_vs_iteration.{png,md}.
set -eo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh
OUT=${OUTPUT_DIR:-output/compare14}
WIDE_ITER=${WIDE_ITER:-400}
mkdir -p "$OUT" docs/compare
train() {  # train TOOL NAME CONFIG [KEY VALUE ...]
  local tool=$1 name=$2 config=$3
  shift 3
  OMP_NUM_THREADS=1 "$CENTERNET_PY" "tools/$tool" --config-file "$config" OUTPUT_DIR "$OUT/$name" \
    "$@" > "$OUT/$name.log" 2>&1
}
SINGLE=configs/CPU/centernet_MobileNetV3_small_FPN_shapes.yaml
BIFPN=configs/CPU/centernet_MobileNetV3_small_BiFPN_shapes.yaml
MULTI=configs/CPU/centernet_multilevel_MobileNetV3_small_FPN_shapes.yaml
SHAPES=(TEST.EVAL_PERIOD 250)
WIDE=(DATASETS.TRAIN "('shapes_wide_train',)" DATASETS.TEST "('shapes_wide_val',)"
  INPUT.CENTERNET.TRAIN_SIZE "(512, 512)" INPUT.MIN_SIZE_TEST 512 INPUT.MAX_SIZE_TEST 512
  SOLVER.IMS_PER_BATCH 8 SOLVER.MAX_ITER "$WIDE_ITER"
  SOLVER.STEPS "($((WIDE_ITER * 3 / 4)), $((WIDE_ITER * 37 / 40)))"
  SOLVER.CHECKPOINT_PERIOD "$WIDE_ITER" TEST.EVAL_PERIOD "$((WIDE_ITER / 4))")
train train_net.py shapes_single $SINGLE "${SHAPES[@]}" &
train train_net.py shapes_bifpn $BIFPN "${SHAPES[@]}" &
wait
train train_net.py shapes_multilevel $MULTI "${SHAPES[@]}" &
train train_peer.py shapes_retinanet $SINGLE "${SHAPES[@]}" &
wait
train train_net.py wide_single $SINGLE "${WIDE[@]}" &
train train_net.py wide_bifpn $BIFPN "${WIDE[@]}" &
wait
train train_net.py wide_multilevel $MULTI "${WIDE[@]}" &
train train_peer.py wide_retinanet $SINGLE "${WIDE[@]}" &
wait
for set in shapes wide; do
  "$CENTERNET_PY" tools/compare_runs.py --run "single-level (main job)=$OUT/${set}_single" \
    --run "single-level, BiFPN=$OUT/${set}_bifpn" --run "multi-level=$OUT/${set}_multilevel" \
    --run "RetinaNet-R18-FPN (Detectron2)=$OUT/${set}_retinanet" \
    --title "${set}_val, from scratch on the CPU" \
    --output "docs/compare/levels_${set}_ap_vs_iteration.png"
done
