#!/usr/bin/env bash
# The prepared GPU check of issue 15: one script, under 8 minutes on one GPU.
#
#   benchmarks/gpu_check.sh          # on a CUDA machine; JSON in $OUT (default benchmarks/results/gpu_check)
#   benchmarks/gpu_check.sh --cpu    # dry mode: the same steps at tiny sizes on CPU (~1 min; run in CI by
#                                    # tests/test_gpu_check.py)
#
# Steps (each timed, its exit code and output kept; a failed step does not stop the others):
#   1. pytest -m gpu                        the GPU tests (skipped without a GPU)
#   2. throughput  sm_dm_large and the baseline CRNN (crnn_dcase2020): clips/s, s per DESED-sized epoch,
#                  peak GPU memory, on log-mel made on the device at DESED's sizes (bf16, channels_last)
#   3. equality    GPU vs CPU: NMF (sed.nmf.core) and the models' outputs
#   4. ddp         python -m sed.train with DDP on 1 device (trainer=ddp trainer.devices=1), one epoch on
#                  a small generated set
#   5. claims_epochs  PS2 at the shipped sizes (trainer=gpu, 1 torch thread, as a claims training runs) for
#                  3 stated epochs of 100 iterations on the same set: seconds an epoch, the figure that says
#                  what a claims run (9 trainings x 63 epochs a dataset, issue 20) costs on a GPU (dry mode:
#                  1 epoch of 2 iterations, CPU)
#   6. detect      sed detect of a 1-hour recording on the device (dry mode: 1 minute, CPU)
# Result: $OUT/gpu_check.json ({"mode", "steps": {name: {rc, wall_s, result?}}, "ok"}), logs in $OUT/*.log.
set -u
cd "$(dirname "$0")/.."
MODE=gpu
[ "${1:-}" = "--cpu" ] && MODE=cpu
PY=${PYTHON:-python}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
OUT=${OUT:-benchmarks/results/gpu_check}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" WANDB_MODE=offline WANDB_SILENT=true HYDRA_FULL_ERROR=1

if [ "$MODE" = gpu ]; then
  DEV=cuda; TP_ARGS=(--batch-size 128 --steps 30 --warmup 3); GEN_LIMIT=64; DETECT_MIN=60; DETECT_BS=256
  PYTEST_ARGS=(-m gpu); DDP=(trainer=ddp trainer.devices=1)
  CLAIMS_EPOCHS=3; CLAIMS=(trainer=gpu)
else
  DEV=cpu; TP_ARGS=(--tiny --batch-size 2 --steps 1 --warmup 1); GEN_LIMIT=4; DETECT_MIN=1; DETECT_BS=16
  PYTEST_ARGS=(-m gpu tests/test_speed.py); DDP=(trainer=ddp_sim trainer.devices=1 trainer.strategy=ddp torch_threads=1
                                             datamodule.iters_per_epoch=2)  # dry mode: 2 steps, not the stated 100
  CLAIMS_EPOCHS=1; CLAIMS=(trainer=cpu datamodule.iters_per_epoch=2)
fi

STEPS=()
step() {  # step NAME CMD... : run, keep log, time and exit code
  local name=$1; shift
  local t0 t1 rc
  t0=$(date +%s%N)
  "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  t1=$(date +%s%N)
  echo "$name: rc=$rc $(( (t1 - t0) / 1000000 )) ms"
  STEPS+=("$name $rc $(( (t1 - t0) / 1000000 ))")
}

step pytest_gpu "$PY" -m pytest -p no:randomly "${PYTEST_ARGS[@]}"  # pyproject adds -q: the last line is the summary
step throughput "$PY" -m benchmarks.gpu_check throughput --device "$DEV" "${TP_ARGS[@]}"
step equality "$PY" -m benchmarks.gpu_check equality --device "$DEV"
step ddp_data "$PY" -m sed.generate --preset desed --limit "$GEN_LIMIT" --out "$WORK/data" --workers 2 --no-plot
step ddp "$PY" -m sed.train "${DDP[@]}" data.root="$WORK/data" data.cache_dir="$WORK/cache" trainer.max_epochs=1 \
  logger=csv datamodule.weak_frame_labels=none datamodule.progress=false trainer.enable_progress_bar=false \
  callbacks.report.plots=false hydra.run.dir="$WORK/ddp"
step claims_epochs "$PY" -m sed.train experiment=ps2 "${CLAIMS[@]}" torch_threads=1 data.root="$WORK/data" \
  data.cache_dir="$WORK/cache" trainer.max_epochs="$CLAIMS_EPOCHS" logger=csv datamodule.weak_frame_labels=none \
  datamodule.progress=false trainer.enable_progress_bar=false callbacks.report.plots=false \
  hydra.run.dir="$WORK/claims_epochs"
step detect_input "$PY" -c "
from pathlib import Path
from benchmarks.bench_detect import make_recording, make_untrained_checkpoint
make_recording(Path('$WORK/rec.wav'), $DETECT_MIN)
make_untrained_checkpoint(Path('$WORK/untrained.ckpt'))"
step detect "$PY" -m sed.cli detect "$WORK/rec.wav" --ckpt "$WORK/untrained.ckpt" --device "$DEV" \
  --batch-size "$DETECT_BS" --out "$WORK/detect.tsv" --quiet

"$PY" - "$OUT" "$MODE" "$DETECT_MIN" "$CLAIMS_EPOCHS" "${STEPS[@]}" <<'PYEOF'
import json, sys
from pathlib import Path
out, mode, minutes, claims_epochs, *steps = sys.argv[1:]
res = {"mode": mode, "steps": {}}
for s in steps:
    name, rc, wall = s.split()
    r = {"rc": int(rc), "wall_s": round(int(wall) / 1000, 2)}
    lines = (Path(out) / f"{name}.log").read_text().strip().splitlines()
    if name in ("throughput", "equality") and lines:
        try:
            r["result"] = json.loads(lines[-1])
        except ValueError:
            pass
    if name == "pytest_gpu" and lines:
        r["summary"] = lines[-1]
    if name == "claims_epochs":  # start-up included: an upper bound on a claims training's epoch
        r["epochs"] = int(claims_epochs)
        r["s_per_epoch_incl_start"] = round(r["wall_s"] / int(claims_epochs), 2)
    if name == "detect":
        r["audio_minutes"] = float(minutes)
        r["x_real_time_incl_start"] = round(float(minutes) * 60 / max(r["wall_s"], 1e-3), 1)
    res["steps"][name] = r
res["ok"] = all(r["rc"] == 0 for r in res["steps"].values())
(Path(out) / "gpu_check.json").write_text(json.dumps(res, indent=1) + "\n")
print(json.dumps(res, indent=1))
sys.exit(0 if res["ok"] else 1)
PYEOF
