#!/usr/bin/env bash
# The box-head and upsampler comparisons on the built-in "shapes" data: AP against iteration for
#   1. the classic size + offset head against TTFNet's ltrb head (MobileNetV3-Small + FPN, the main
#      job's recipe: 1000 iterations, both with TTFNet's elliptical gaussians), and both again on a
#      third of the budget (333 iterations, the LR schedule scaled), and both fine-tuned for 333
#      iterations from the backbone of the classic run, and
#   2. ResNet-18 with the plain against the deformable (DCNv2) upsampler (600 iterations),
# each evaluated on shapes_val every EVAL_PERIOD iterations. The runs go two at a time, one thread
# each (AP does not depend on the speed). Writes output/compare/<run>/ and, with
# tools/compare_runs.py, docs/compare/{heads,heads_finetune,upsampler}_ap_vs_iteration.{png,md}.
set -eo pipefail
cd "$(dirname "$0")/.."
source tools/setup_env.sh
OUT=${OUTPUT_DIR:-output/compare}
EVAL_PERIOD=${EVAL_PERIOD:-100}
mkdir -p "$OUT" docs/compare
run() {  # run NAME CONFIG [KEY VALUE ...]
  local name=$1 config=$2
  shift 2
  OMP_NUM_THREADS=1 "$CENTERNET_PY" tools/train_net.py --config-file "$config" \
    OUTPUT_DIR "$OUT/$name" TEST.EVAL_PERIOD "$EVAL_PERIOD" "$@" > "$OUT/$name.log" 2>&1
}
MAIN=configs/CPU/centernet_MobileNetV3_small_FPN_shapes.yaml
LTRB=configs/CPU/centernet_MobileNetV3_small_FPN_shapes_ltrb.yaml
run classic $MAIN &
run ttf_ltrb $LTRB &
wait
# the same recipe on a third of the budget: 333 iterations, LR steps scaled alike
THIRD=(SOLVER.MAX_ITER 333 SOLVER.STEPS "(250, 308)" SOLVER.CHECKPOINT_PERIOD 333)
run classic_333 $MAIN "${THIRD[@]}" &
run ttf_ltrb_333 $LTRB "${THIRD[@]}" &
wait
# both heads fine-tuned for 333 iterations from the backbone the classic run learned: a stand-in
# for the ImageNet backbones TTFNet starts from (none can be downloaded here)
"$CENTERNET_PY" -c "import sys, torch; m = torch.load(sys.argv[1], map_location='cpu', \
weights_only=True)['model']; torch.save({'model': {k: v for k, v in m.items() \
if k.startswith('backbone.')}}, sys.argv[2])" "$OUT/classic/model_final.pth" "$OUT/backbone.pth"
FT=("${THIRD[@]}" MODEL.WEIGHTS "$OUT/backbone.pth" TEST.EVAL_PERIOD 37)
run ft_classic $MAIN "${FT[@]}" &
run ft_ttf_ltrb $LTRB "${FT[@]}" &
wait
run r18_plain configs/CPU/centernet_R_18_deconv_shapes.yaml &
run r18_dcn configs/CPU/centernet_R_18_dcn_shapes.yaml &
wait
"$CENTERNET_PY" tools/compare_runs.py --run "size + offset (classic)=$OUT/classic" \
  --run "ltrb + GIoU (TTF)=$OUT/ttf_ltrb" --run "size + offset, 333 it.=$OUT/classic_333" \
  --run "ltrb + GIoU, 333 it.=$OUT/ttf_ltrb_333" --title "MobileNetV3-Small + FPN on shapes_val" \
  --output docs/compare/heads_ap_vs_iteration.png
"$CENTERNET_PY" tools/compare_runs.py --run "size + offset (classic)=$OUT/ft_classic" \
  --run "ltrb + GIoU (TTF)=$OUT/ft_ttf_ltrb" \
  --title "MobileNetV3-Small + FPN, heads fine-tuned from a trained backbone" \
  --output docs/compare/heads_finetune_ap_vs_iteration.png
"$CENTERNET_PY" tools/compare_runs.py --run "plain upsampler=$OUT/r18_plain" \
  --run "deformable upsampler=$OUT/r18_dcn" --title "ResNet-18 + deconv on shapes_val" \
  --output docs/compare/upsampler_ap_vs_iteration.png
