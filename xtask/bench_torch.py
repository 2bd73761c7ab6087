#!/usr/bin/env python3
"""PyTorch side of `cargo xtask bench`.

Defines the descriptor nets with the same state-dict keys as `desdis-models`, loads the weights the
Rust side saved (safetensors, parsed here with numpy so no extra package is needed), checks the
eval-mode descriptors against the Rust ones, then times inference and training steps with the
same settings. Prints one JSON object on stdout; progress goes to stderr.

On a GPU (`--device cuda`) every timed run ends with a device synchronisation, as on the Rust side,
and TF32 is off unless `--allow-tf32`: candle computes f32 matmuls and convolutions in full f32.

Usage: bench_torch.py --dir DIR --archs hardnet,desdis-8 --threads 2 --infer-batch 1024 \
           --train-pairs 128,512 --warmup 1 --reps 5 [--device cuda]
"""

import argparse
import json
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ---------------------------------------------------------------------------------------------
# safetensors, by hand: u64 little-endian header length, JSON header, then the raw data.

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
    "I32": np.int32, "I16": np.int16, "U8": np.uint8, "U32": np.uint32,
}


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (header_len,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + header_len].decode("utf-8"))
    data = raw[8 + header_len:]
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=_DTYPES[info["dtype"]]).reshape(info["shape"])
        tensors[name] = torch.from_numpy(array.copy())
    return tensors


# ---------------------------------------------------------------------------------------------
# The nets. Layer indices inside each nn.Sequential give the state-dict keys.

def conv3(c_in, c_out, stride=1, bias=False):
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=bias)


TRUNK = [(1, 32, 1), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1)]


def per_patch_standardise(x, eps):
    flat = x.reshape(x.size(0), -1)
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, keepdim=True)  # unbiased, as the published code
    return ((flat - mean) / (std + eps)).reshape_as(x)


def l2_norm(x, k=1e-10):
    return x / torch.sqrt((x * x).sum(dim=1, keepdim=True) + k)


class HardNet(nn.Module):
    def __init__(self):
        super().__init__()
        layers = []
        for c_in, c_out, stride in TRUNK:
            layers += [conv3(c_in, c_out, stride), nn.BatchNorm2d(c_out, affine=False), nn.ReLU()]
        layers += [nn.Dropout(0.3), nn.Conv2d(128, 128, 8, bias=False), nn.BatchNorm2d(128, affine=False)]
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        x = self.features(per_patch_standardise(x, 1e-7))
        return l2_norm(x.flatten(1))


class SosNet(nn.Module):
    def __init__(self):
        super().__init__()
        layers = [nn.InstanceNorm2d(1, affine=False)]
        for c_in, c_out, stride in TRUNK:
            layers += [conv3(c_in, c_out, stride), nn.BatchNorm2d(c_out, affine=False), nn.ReLU()]
        layers += [nn.Dropout(0.1), nn.Conv2d(128, 128, 8, bias=False), nn.BatchNorm2d(128, affine=False)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        x = self.layers(x).flatten(1) + 1e-10
        return l2_norm(x, 0.0)


class Frn(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("eps", torch.tensor([1e-6]))

    def forward(self, x):
        nu2 = x.pow(2).mean(dim=(2, 3), keepdim=True)
        return self.weight * (x * torch.rsqrt(nu2 + self.eps.abs())) + self.bias


class Tlu(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.tau = nn.Parameter(-torch.ones(1, channels, 1, 1))

    def forward(self, x):
        return torch.max(x, self.tau)


class HyNet(nn.Module):
    def __init__(self):
        super().__init__()
        (c_in, c_out, stride), rest = TRUNK[0], TRUNK[1:]
        self.layer1 = nn.Sequential(Frn(1), Tlu(1), conv3(c_in, c_out, stride, bias=True), Frn(c_out), Tlu(c_out))
        for i, (c_in, c_out, stride) in enumerate(rest):
            block = nn.Sequential(conv3(c_in, c_out, stride, bias=True), Frn(c_out), Tlu(c_out))
            setattr(self, f"layer{i + 2}", block)
        self.layer7 = nn.Sequential(
            nn.Dropout(0.3), nn.Conv2d(128, 128, 8, bias=False), nn.BatchNorm2d(128, affine=False)
        )

    def forward(self, x):
        for i in range(1, 8):
            x = getattr(self, f"layer{i}")(x)
        return l2_norm(x.flatten(1))


class L2Net(nn.Module):
    def __init__(self):
        super().__init__()
        layers = []
        for c_in, c_out, stride in TRUNK:
            layers += [conv3(c_in, c_out, stride, bias=True), nn.BatchNorm2d(c_out, eps=1e-10), nn.ReLU()]
        layers += [nn.Conv2d(128, 128, 8, bias=True), nn.BatchNorm2d(128, eps=1e-10)]
        self.features = nn.Sequential(*layers)

    def forward(self, x):
        x = self.features(per_patch_standardise(x, 1e-12))
        return l2_norm(x.flatten(1), 0.5)


class TFeat(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.InstanceNorm2d(1, affine=False), nn.Conv2d(1, 32, 7), nn.Tanh(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 6), nn.Tanh(),
        )
        self.descr = nn.Sequential(nn.Linear(64 * 8 * 8, 128), nn.Tanh())

    def forward(self, x):
        return self.descr(self.features(x).flatten(1))


class DesDis(nn.Module):
    def __init__(self, dim):
        super().__init__()
        bn = lambda c: nn.BatchNorm2d(c, affine=False)  # noqa: E731
        self.layer1 = nn.Sequential(nn.InstanceNorm2d(1, affine=False), conv3(1, dim, 2), bn(dim), nn.ReLU())
        self.layer2 = nn.Sequential(conv3(dim, 2 * dim, 2), bn(2 * dim), nn.ReLU())
        self.layer3 = nn.Sequential(
            conv3(2 * dim, 4 * dim, 2), bn(4 * dim), nn.ReLU(), conv3(4 * dim, 4 * dim), bn(4 * dim), nn.ReLU()
        )
        self.desc = nn.Sequential(nn.Dropout(0.1), nn.Conv2d(4 * dim, 128, 4, bias=True), bn(128))

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(x)))
        return l2_norm(self.desc(x).flatten(1))


def build(arch):
    fixed = {"hardnet": HardNet, "sosnet": SosNet, "hynet": HyNet, "l2net": L2Net, "tfeat": TFeat}
    if arch in fixed:
        return fixed[arch]()
    if arch.startswith("desdis-"):
        return DesDis(int(arch.split("-", 1)[1]))
    raise SystemExit(f"bench_torch.py: unknown architecture {arch}")


def input_range(arch):
    return 255.0 if arch == "tfeat" else 1.0


# ---------------------------------------------------------------------------------------------
# Losses: HardNet's hardest-in-batch triplet (anchor swap, false negatives under 0.008 skipped)
# and TFeat's shifted-negative triplet (anchor swap, margin 2).

def hardnet_loss(a, p, margin=1.0, false_negative=0.008):
    d = torch.sqrt((2.0 - 2.0 * (a @ p.t())).clamp_min(0.0) + 1e-6)
    pos = torch.diagonal(d)
    blocked = torch.eye(d.size(0), dtype=torch.bool, device=d.device) | (d < false_negative)
    masked = d.masked_fill(blocked, 10.0)
    neg = torch.minimum(masked.min(dim=1).values, masked.min(dim=0).values)
    return F.relu(margin + pos - neg).mean()


def tfeat_loss(a, p, margin=2.0):
    def dist(x, y):
        return torch.sqrt(((x - y) ** 2).sum(dim=1) + 1e-6)

    shifted = torch.roll(p, -1, dims=0)
    pos = dist(a, p)
    neg = torch.minimum(dist(a, shifted), dist(p, shifted))
    return F.relu(margin + pos - neg).mean()


# ---------------------------------------------------------------------------------------------

def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, warmup, reps, device):
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_arch(arch, args):
    device = torch.device(args.device)
    net = build(arch)
    state = read_safetensors(f"{args.dir}/{arch}.safetensors")
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise SystemExit(f"bench_torch.py: {arch}: missing keys {missing}, unexpected keys {unexpected}")

    net = net.to(device)
    check = read_safetensors(f"{args.dir}/{arch}.check.safetensors")
    net.eval()
    with torch.no_grad():
        got = net(check["x"].to(device)).cpu()
    max_diff = float((got - check["y"]).abs().max())

    scale = input_range(arch)
    gen = torch.Generator().manual_seed(args.seed)
    x = (torch.rand(args.infer_batch, 1, 32, 32, generator=gen) * scale).to(device)

    def infer():
        with torch.inference_mode():
            net(x)

    infer_s = median_time(infer, args.warmup, args.reps, device)

    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    if arch == "tfeat":
        opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, dampening=0.0, weight_decay=1e-4)
        loss_fn = tfeat_loss
    else:
        opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9, dampening=0.9, weight_decay=1e-4)
        loss_fn = hardnet_loss
    train_s = {}
    for pairs in args.train_pairs:
        anchors = torch.rand(pairs, 1, 32, 32, generator=gen) * scale
        positives = (anchors + 0.05 * scale * torch.rand(pairs, 1, 32, 32, generator=gen)).clamp(0, scale)
        anchors, positives = anchors.to(device), positives.to(device)

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net(anchors), net(positives))
            loss.backward()
            opt.step()

        train_s[str(pairs)] = median_time(step, args.warmup, args.reps, device)
    return {"infer_s": infer_s, "train_s": train_s, "check_max_abs_diff": max_diff}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--archs", required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--infer-batch", type=int, default=1024)
    parser.add_argument("--train-pairs", default="128,512")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--allow-tf32", action="store_true", help="let cuDNN and cuBLAS use TF32 on GPUs")
    args = parser.parse_args()
    args.train_pairs = [int(p) for p in args.train_pairs.split(",") if p]

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise SystemExit(f"bench_torch.py: --device {args.device} but torch sees no CUDA device")
        torch.backends.cuda.matmul.allow_tf32 = args.allow_tf32
        torch.backends.cudnn.allow_tf32 = args.allow_tf32
    results = {}
    for arch in args.archs.split(","):
        print(f"bench_torch.py: {arch}", file=sys.stderr, flush=True)
        results[arch] = bench_arch(arch, args)
    out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": args.device,
           "results": results}
    if args.device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name(torch.device(args.device))
        out["torch_cuda"] = torch.version.cuda
        out["tf32"] = args.allow_tf32
        out["cudnn_benchmark"] = torch.backends.cudnn.benchmark
    json.dump(out, sys.stdout)
    print()


if __name__ == "__main__":
    main()
