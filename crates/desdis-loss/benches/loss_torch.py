#!/usr/bin/env python3
"""PyTorch counterpart of benches/loss.rs: forward + backward time of the HardNet loss at
N = 512 and 1024 pairs of 128-d unit descriptors, float32, on the CPU.

Two formulations, as in the Rust benchmark:
  * dense: the full differentiable distance matrix, the diagonal and the false negatives
    (distance < 0.008) pushed up by +10, minima over rows and columns (anchor swap), mean hinge
    with margin 1, the way HardNet's published training code computes it;
  * mined: the hardest negative's indices found without gradient, then only the N positive and
    N negative distances computed with gradient (what desdis-loss does).

Run:  python3 crates/desdis-loss/benches/loss_torch.py [--threads T]
Prints the median and the fastest of the timed runs, in milliseconds.
"""
import argparse
import time

import torch

DIM = 128
WARMUP = 3
RUNS = 20
EPS = 1e-6
MARGIN = 1.0
FALSE_NEGATIVE = 0.008


def distance_matrix(a, p):
    return torch.sqrt(torch.clamp(2.0 - 2.0 * a @ p.t(), min=0.0) + EPS)


def hardnet_dense(a, p):
    d = distance_matrix(a, p)
    eye = torch.eye(d.size(0), dtype=d.dtype)
    pos = torch.diag(d)
    penalty = (eye + (d < FALSE_NEGATIVE).to(d.dtype)) * 10.0
    masked = d + penalty
    neg = torch.minimum(masked.min(1)[0], masked.min(0)[0])
    return torch.clamp(MARGIN + pos - neg, min=0.0).mean()


def hardnet_mined(a, p):
    n = a.size(0)
    with torch.no_grad():
        d = distance_matrix(a, p)
        d = d + (torch.eye(n, dtype=d.dtype) + (d < FALSE_NEGATIVE).to(d.dtype)) * 10.0
        row_val, row_idx = d.min(1)
        col_val, col_idx = d.min(0)
        use_row = row_val <= col_val
        idx = torch.arange(n)
        left = torch.where(use_row, idx, col_idx)
        right = torch.where(use_row, row_idx, idx)
        valid = torch.minimum(row_val, col_val) < 10.0
    pair = lambda x, y: torch.sqrt(torch.clamp(2.0 - 2.0 * (x * y).sum(1), min=0.0) + EPS)  # noqa: E731
    hinge = torch.clamp(MARGIN + pair(a, p) - pair(a[left], p[right]), min=0.0)
    return (hinge * valid.to(hinge.dtype)).mean()


def random_batch(n, generator):
    raw_a = torch.randn(n, DIM, generator=generator)
    raw_p = raw_a + 0.7 * torch.randn(n, DIM, generator=generator)
    unit = lambda x: x / x.norm(dim=1, keepdim=True)  # noqa: E731
    return unit(raw_a).requires_grad_(), unit(raw_p).requires_grad_()


def time_step(loss_fn, a, p):
    ms = []
    for run in range(WARMUP + RUNS):
        a.grad = None
        p.grad = None
        start = time.perf_counter()
        loss_fn(a, p).backward()
        if run >= WARMUP:
            ms.append((time.perf_counter() - start) * 1e3)
    ms.sort()
    return ms[RUNS // 2], ms[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads: {torch.get_num_threads()}")
    generator = torch.Generator().manual_seed(0)
    print(f"{'loss + backward (f32, D = 128)':<34} {'N':>6} {'median ms':>12} {'min ms':>10}")
    for n in (512, 1024):
        a, p = random_batch(n, generator)
        dense, mined = hardnet_dense(a, p).item(), hardnet_mined(a, p).item()
        assert abs(dense - mined) < 1e-5, (dense, mined)
        for name, fn in (("hardnet dense", hardnet_dense), ("hardnet mined", hardnet_mined)):
            median, fastest = time_step(fn, a, p)
            print(f"{name:<34} {n:>6} {median:>12.2f} {fastest:>10.2f}")


if __name__ == "__main__":
    main()
