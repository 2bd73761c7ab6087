#!/usr/bin/env bash
# desdis GPU check: descriptor parity GPU vs CPU, speed of candle against PyTorch on the same card,
# and a short distillation. Made by `cargo xtask gpu-check`; needs no Rust and no network, only an
# x86-64 machine with a CUDA 13 driver and a Python whose PyTorch wheels carry the CUDA 13 libraries
# (site-packages/nvidia/cu13/lib: libcudart, libcublas, libcublasLt). The bundle brings the binary
# and libcurand (which recent PyTorch wheels lack) xz-compressed; they are unpacked to a temporary
# folder (with `xz`, else Python's lzma).
#
#   bash target/gpu-check/run.sh                      # the full check (about 2-4 minutes on an H100)
#   bash target/gpu-check/run.sh --device cpu --quick  # a dry run on a CPU
#
# Results go to $OUT (default ./gpu-check-out): desdis.json (parity, timings, distillation),
# torch.json (PyTorch on the same nets), summary.md, the logs and the machine's description.
# Flags other than --device/--quick/--torch-only/--no-torch go to `desdis-gpu-check`.
# Environment: PYTHON (default python3), DESDIS_CUDA_LIBS (extra library folders, ':'-separated),
# DESDIS_TIMEOUT / TORCH_TIMEOUT (seconds for each part, default 300 / 150, so that the whole stays
# under 8 minutes), DESDIS_KEEP=1 (keep the nets' weights and the distillation runs in $OUT).
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${OUT:-$PWD/gpu-check-out}"
py="${PYTHON:-python3}"
device=cuda
quick=0
run_desdis=1
run_torch=1
extra=()
while [ $# -gt 0 ]; do
    case "$1" in
        --device) device="$2"; shift 2 ;;
        --device=*) device="${1#--device=}"; shift ;;
        --quick) quick=1; shift ;;
        --torch-only) run_desdis=0; shift ;;
        --no-torch) run_torch=0; shift ;;
        *) extra+=("$1"); shift ;;
    esac
done
mkdir -p "$out"
log() { printf 'run.sh: %s\n' "$*" | tee -a "$out/run.log" >&2; }
started=$(date +%s)
log "bundle $here, output $out, device $device, quick $quick"
[ -f "$here/MANIFEST.txt" ] && cp "$here/MANIFEST.txt" "$out/"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/desdis-gpu-check.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
unxz_to() {
    if command -v xz >/dev/null 2>&1; then
        xz -dc "$1" >"$2"
    else
        "$py" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$1" "$2"
    fi
}
bin="$here/desdis-gpu-check"
if [ ! -x "$bin" ]; then
    bin="$tmp/desdis-gpu-check"
    unxz_to "$here/desdis-gpu-check.xz" "$bin" && chmod +x "$bin" || log "cannot unpack $here/desdis-gpu-check.xz"
fi

# The machine.
{
    uname -a
    nproc
    command -v nvidia-smi >/dev/null && nvidia-smi
    "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")' 2>&1
} >"$out/machine.txt" 2>&1

# The CUDA libraries the binary links: from the PyTorch wheels (nvidia/cu13/lib, or the per-library
# nvidia/*/lib folders of older wheels), plus DESDIS_CUDA_LIBS.
torch_libs="$("$py" - 2>/dev/null <<'PY'
import glob, os
try:
    import nvidia
except ImportError:
    raise SystemExit(0)
dirs = []
for base in list(getattr(nvidia, "__path__", [])):
    dirs += sorted(glob.glob(os.path.join(base, "cu13", "lib"))) + sorted(glob.glob(os.path.join(base, "*", "lib")))
print(":".join(dict.fromkeys(d for d in dirs if os.path.isdir(d))))
PY
)"
libs="${DESDIS_CUDA_LIBS:-}"
[ -n "$torch_libs" ] && libs="${libs:+$libs:}$torch_libs"
export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
log "library path: ${LD_LIBRARY_PATH:-<empty>}"
ldd "$bin" >"$out/ldd.txt" 2>&1
if grep -q "libcurand.so.10 => not found" "$out/ldd.txt" && [ -f "$here/libcurand.so.10.xz" ]; then
    log "no libcurand.so.10 on this machine: using the bundle's"
    mkdir -p "$tmp/lib"
    unxz_to "$here/libcurand.so.10.xz" "$tmp/lib/libcurand.so.10"
    export LD_LIBRARY_PATH="$tmp/lib:$LD_LIBRARY_PATH"
    ldd "$bin" >"$out/ldd.txt" 2>&1
fi
if grep -q "not found" "$out/ldd.txt"; then
    log "the binary's libraries are incomplete:"
    grep "not found" "$out/ldd.txt" | tee -a "$out/run.log" >&2
    log "install PyTorch with CUDA 13 wheels, or point DESDIS_CUDA_LIBS at folders holding them"
    run_desdis=0
fi

if [ "$quick" = 1 ]; then
    sizes=(--quick)
    torch_sizes=(--infer-batch 64 --train-pairs 16,32 --warmup 1 --reps 2)
else
    sizes=()
    torch_sizes=(--infer-batch 1024 --train-pairs 128,512 --warmup 3 --reps 10)
fi
weights=()
# The shipped student, when the repository around the bundle has it.
[ -f data/weights/desdis-32.safetensors ] && weights=(--weights data/weights/desdis-32.safetensors)

status=0
if [ "$run_desdis" = 1 ]; then
    log "desdis-gpu-check"
    rm -rf "$out/nets" "$out/work"
    timeout "${DESDIS_TIMEOUT:-300}" "$bin" --device "$device" ${sizes[@]+"${sizes[@]}"} ${weights[@]+"${weights[@]}"} \
        --torch-dir "$out/nets" --work "$out/work" --json "$out/desdis.json" ${extra[@]+"${extra[@]}"} \
        >"$out/desdis.stdout" 2> >(tee "$out/desdis.log" >&2)
    status=$?
    log "desdis-gpu-check exited with $status"
    rm -rf "$out/work/data"
fi

case "$device" in
    cuda*) torch_device="$device" ;;
    gpu) torch_device=cuda ;;
    gpu:*) torch_device="cuda:${device#gpu:}" ;;
    *) torch_device=cpu ;;
esac
archs="$(ls "$out/nets" 2>/dev/null | sed -n 's/\.check\.safetensors$//p' | paste -sd, -)"
if [ "$run_torch" = 1 ] && [ -n "$archs" ]; then
    if "$py" -c 'import torch, numpy' 2>/dev/null; then
        log "PyTorch on $torch_device: $archs"
        timeout "${TORCH_TIMEOUT:-150}" "$py" "$here/bench_torch.py" --dir "$out/nets" --archs "$archs" --device "$torch_device" \
            --threads "$(nproc)" ${torch_sizes[@]+"${torch_sizes[@]}"} >"$out/torch.stdout" 2> >(tee "$out/torch.log" >&2)
        torch_status=$?
        tail -n 1 "$out/torch.stdout" >"$out/torch.json"
        log "bench_torch.py exited with $torch_status"
        [ "$torch_status" = 0 ] || status=1
    else
        log "no python with torch and numpy ($py): PyTorch comparison skipped"
    fi
fi

if "$py" -c 'import json' 2>/dev/null; then
    "$py" "$here/summary.py" "$out" | tee "$out/summary.md"
fi
# The weights and checkpoints are large and were only the means: keep the reports.
[ "${DESDIS_KEEP:-0}" = 1 ] || rm -rf "$out/nets" "$out/work"
log "done in $(( $(date +%s) - started )) s, status $status"
exit "$status"
