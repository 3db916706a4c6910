#!/usr/bin/env bash
# Issue 7's measurement on the built-in "shapes" data: AP against iteration for
#   1. the classic size + offset head against TTFNet's ltrb head (MobileNetV3-Small + FPN, the main
#      job's recipe: 1000 iterations, both with TTFNet's elliptical gaussians), and
#   2. ResNet-18 with the plain against the deformable (DCNv2) upsampler (600 iterations),
# each evaluated on shapes_val every EVAL_PERIOD iterations. The runs go two at a time, one thread
# each (AP does not depend on the speed). Writes output/compare/<run>/ and, with
# tools/compare_runs.py, docs/compare/{heads,upsampler}_ap_vs_iteration.{png,md}.
set -eo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh
OUT=${OUTPUT_DIR:-output/compare}
EVAL_PERIOD=${EVAL_PERIOD:-100}
mkdir -p "$OUT" docs/compare
run() {  # run NAME CONFIG
  OMP_NUM_THREADS=1 "$CENTERNET_PY" tools/train_net.py --config-file "$2" \
    OUTPUT_DIR "$OUT/$1" TEST.EVAL_PERIOD "$EVAL_PERIOD" > "$OUT/$1.log" 2>&1
}
run classic configs/CPU/centernet_MobileNetV3_small_FPN_shapes.yaml &
run ttf_ltrb configs/CPU/centernet_MobileNetV3_small_FPN_shapes_ltrb.yaml &
wait
run r18_plain configs/CPU/centernet_R_18_deconv_shapes.yaml &
run r18_dcn configs/CPU/centernet_R_18_dcn_shapes.yaml &
wait
"$CENTERNET_PY" tools/compare_runs.py --run "size + offset (classic)=$OUT/classic" \
  --run "ltrb + GIoU (TTF)=$OUT/ttf_ltrb" --title "MobileNetV3-Small + FPN on shapes_val" \
  --output docs/compare/heads_ap_vs_iteration.png
"$CENTERNET_PY" tools/compare_runs.py --run "plain upsampler=$OUT/r18_plain" \
  --run "deformable upsampler=$OUT/r18_dcn" --title "ResNet-18 + deconv on shapes_val" \
  --output docs/compare/upsampler_ap_vs_iteration.png
