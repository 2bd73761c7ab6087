"""Patches per second of `desdis.Describer.describe` against kornia's HardNet (PyTorch, CPU) on
10k random 32x32 patches, 2 threads each, median of 3 timed runs; the result is written as one
markdown table into docs/python.md, between the `bench:start` / `bench:end` markers.

Run it with a Python that has `desdis` installed; kornia runs in `--torch-python` (another venv
is fine: each net is timed in its own process, with its thread count set before import).

    python crates/desdis-py/bench/bench_describe.py --torch-python /path/to/venv/bin/python
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

WORKSPACE = Path(__file__).resolve().parents[3]
DOC = WORKSPACE / "docs" / "python.md"
N_PATCHES = 10_000
RUNS = 3
THREADS = 2


def measure_desdis(weights):
    """Times `describe` in this process (the thread count is fixed before the import)."""
    import time

    import numpy as np

    import desdis

    net = desdis.Describer(weights)
    patches = np.random.default_rng(0).integers(0, 256, (N_PATCHES, 32, 32), dtype=np.uint8)
    net.describe(patches[:512])  # warm-up: first-touch allocations, thread pool start
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        net.describe(patches)
        times.append(time.perf_counter() - start)
    return {"times": times, "arch": net.arch, "version": desdis.__version__}


def measure_kornia():
    """Times kornia's HardNet (random weights: the same architecture, no download) in eval mode."""
    import time

    import kornia
    import torch

    torch.set_num_threads(THREADS)
    net = kornia.feature.HardNet(pretrained=False).eval()
    patches = torch.rand(N_PATCHES, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    times = []
    with torch.inference_mode():
        net(patches[:512])
        for _ in range(RUNS):
            start = time.perf_counter()
            # The same batch size as desdis uses (512).
            for chunk in patches.split(512):
                net(chunk)
            times.append(time.perf_counter() - start)
    return {"times": times, "version": f"torch {torch.__version__}, kornia {kornia.__version__}"}


def run_child(python, mode, weights=None):
    """One measurement in a fresh process limited to THREADS threads."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(THREADS), OMP_NUM_THREADS=str(THREADS),
               MKL_NUM_THREADS=str(THREADS))
    args = [python, __file__, "--child", mode] + ([weights] if weights else [])
    out = subprocess.run(args, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"{mode} measurement failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median(values):
    return sorted(values)[len(values) // 2]


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def table(rows, torch_version, desdis_version):
    lines = [
        f"Measured {datetime.date.today().isoformat()} on {cpu_name()}, {THREADS} threads, "
        f"{N_PATCHES} random 32x32 patches, median of {RUNS} runs; desdis {desdis_version}, "
        f"Python {platform.python_version()}, {torch_version}.",
        "",
        "| net | implementation | patches/s | ms per 1k patches |",
        "|---|---|---:|---:|",
    ]
    for name, impl, seconds in rows:
        rate = N_PATCHES / seconds
        lines.append(f"| {name} | {impl} | {rate:,.0f} | {1000 * seconds / N_PATCHES * 1000:.1f} |")
    return "\n".join(lines)


def write_doc(text):
    doc = DOC.read_text()
    pattern = re.compile(r"(<!-- bench:start -->\n).*?(<!-- bench:end -->)", re.S)
    if not pattern.search(doc):
        raise SystemExit(f"{DOC}: no <!-- bench:start --> / <!-- bench:end --> markers")
    DOC.write_text(pattern.sub(lambda m: m.group(1) + text + "\n" + m.group(2), doc))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--torch-python", default=sys.executable,
                        help="a Python with torch and kornia (default: this one)")
    parser.add_argument("--released", default=str(WORKSPACE.parent / "shared/data/desdis-official/DesDis-8.pth"),
                        help="the released DesDis-8 checkpoint (skipped when absent)")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, *rest = args.child
        result = measure_kornia() if mode == "kornia" else measure_desdis(rest[0] if rest else None)
        print(json.dumps(result))
        return
    default = run_child(sys.executable, "desdis")
    rows = [(default["arch"] + " (default)", "desdis (candle, Rust)", median(default["times"]))]
    if Path(args.released).is_file():
        released = run_child(sys.executable, "desdis", args.released)
        rows.append(("DesDis-8 (released)", "desdis (candle, Rust)", median(released["times"])))
    hardnet = run_child(args.torch_python, "kornia")
    rows.append(("HardNet", "kornia (PyTorch)", median(hardnet["times"])))
    text = table(rows, hardnet["version"], default["version"])
    print(text)
    if not args.no_write:
        write_doc(text)


if __name__ == "__main__":
    main()
