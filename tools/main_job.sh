#!/usr/bin/env bash
# README command 1: set up (idempotent), then train the default CPU CenterNet on the built-in
# "shapes" dataset, evaluate it, and write pictures into the output folder:
#   eval_results.md            COCO AP table of the final model on shapes_val
#   training_curves.png        losses and AP against iteration (from metrics.json)
#   predictions/<id>.jpg       val images with the detections drawn (Detectron2's Visualizer)
#   predictions/<id>_heatmap.jpg   the predicted heatmap over the image
# Extra arguments are config overrides (KEY VALUE ...). OUTPUT_DIR defaults to output/main_job.
set -eo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh
CONFIG=${CONFIG:-configs/CPU/centernet_multilevel_MobileNetV3_small_FPN_shapes.yaml}
OUT=${OUTPUT_DIR:-output/main_job}
start=$(date +%s)
"$CENTERNET_PY" tools/train_net.py --config-file "$CONFIG" OUTPUT_DIR "$OUT" "$@"
"$CENTERNET_PY" tools/demo.py --config-file "$CONFIG" --show-heatmap --output "$OUT/predictions" \
  --input "${DETECTRON2_DATASETS:-datasets}/shapes/val/00000[1-8].jpg" --opts MODEL.WEIGHTS "$OUT/model_final.pth" "$@"
"$CENTERNET_PY" -c "import sys; from centernet_d2.utils import plot_training_curves as p; \
print('wrote', p(sys.argv[1] + '/metrics.json', sys.argv[1] + '/training_curves.png'))" "$OUT"
echo
cat "$OUT/eval_results.md"
echo "main job done in $(( $(date +%s) - start )) s (after set-up); pictures in $OUT/"
