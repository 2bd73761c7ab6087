#!/usr/bin/env python3
"""Baseline side of `cargo xtask bench-images`: whole-image extraction and matching with OpenCV SIFT and
kornia's DoG + HardNet, timed on a fixed number of CPU threads, plus mean matching accuracy (MMA) on HPatches
sequences.

Methods
-------
sift    cv2.SIFT_create(nfeatures=N).detectAndCompute on the grayscale uint8 image; matching 1->k with
        cv2.BFMatcher(cv2.NORM_L2, crossCheck=True), i.e. mutual nearest neighbours.
kornia  kornia.feature DoG detector + HardNet, chained by hand exactly as kornia.feature.DoGHardNet does:
          detector = ScaleSpaceDetector(N, mr_size=6.0,
                         resp_module=BlobDoG(), subpix_module=ConvQuadInterp3d(),
                         scale_pyr_module=ScalePyramid(3, 1.6, 32, double_image=True),
                         ori_module=LAFOrienter(19), scale_space_response=True, minima_are_also_good=True)
          lafs, _ = detector(img)                       # img: (1, 1, H, W) float32 in [0, 1]
          lafs = lafs[:, laf_is_filled(lafs)[0]]        # drop the unfilled (zero) slots
          patches = extract_patches_from_pyramid(img, scale_laf(lafs, 2.0), 32)
          descs = cat([HardNet(pretrained=False)(b) for b in patches split into batches])
        then kornia.feature.match_mnn (mutual nearest neighbours). Everything runs under torch.inference_mode().
        HardNet uses its random initialisation (seed 0): pretrained weights are not available offline, and the
        speed does not depend on the weight values. The kornia MMA numbers therefore measure a random descriptor
        and are reported only for completeness; every kornia entry says "weights": "random (speed only)".

Timing (all in milliseconds, time.perf_counter)
------
Images are decoded before any timing. Per method and sequence there is one untimed warm-up (extract images 1
and 2, match them), then --repeats timed runs; each run extracts the 6 images and matches the 5 pairs 1->k.
- extract_ms_images[i]: median over runs of the extraction time of image i+1 (includes the conversion of the
  uint8 array to what the library needs, and of the keypoints to an (N, 2) array / tensor).
- extract_ms_per_image: mean of extract_ms_images; extract_ms_total: their sum.
- match_ms_pairs[j]: median over runs of the matching time of pair 1->(j+2) (descriptors in, index pairs out);
  match_ms_per_pair: mean of match_ms_pairs.
- end_to_end_ms: median over runs of the wall time of one whole run (6 extractions + 5 matchings).

Accuracy (D2-Net HPatches protocol)
--------
For pair 1->k, the image-1 keypoint of every match is projected with H_1_k (homogeneous, pixel coordinates with
(0, 0) the centre of the top-left pixel, the convention of OpenCV keypoints and kornia LAF centres); its error is
the Euclidean distance to the matched keypoint in image k. Keypoints are used as the libraries return them. The
convention is checked at run time on Gaussian blobs rendered at known positions (meta.convention_check, detected
minus true centre): kornia's LAF centres agree to a few hundredths of a pixel; OpenCV SIFT's keypoints come out
about +0.25 px in x and y, the half-pixel shift of its upsampled first octave (pt = u / 2 where the doubled pixel
u sits at u / 2 - 0.25). That shift is the same in both images of a pair, so it largely cancels in the errors,
and it is not corrected. MMA(t) = fraction of matches with error <= t px, t = 1..10 (0 when there are no matches).
Sequence means are unweighted means over the 5 pairs. Accuracy is computed from the last timed run, outside the
timers; meta...deterministic says whether all runs gave the same matches.

Output JSON (schema "desdis-bench-images/1"; keys are stable, new keys may be added)
-----------
{
  "meta": {
    "schema": "desdis-bench-images/1",
    "date": ISO-8601 UTC, "cpu_model": str, "threads": int, "repeats": int, "max_keypoints": int,
    "hardnet_batch": int, "warmup": str, "mma_thresholds_px": [1, ..., 10],
    "versions": {"python", "numpy", "torch", "cv2", "kornia"},     # null when the library is not loaded
    "sequences": [{"name": str, "path": str}],
    "method_config": {"sift": {...}, "kornia": {..., "weights": "random (speed only)"}},
    "convention_check": {"<method>": {"blobs": int, "found": int, "mean_dx", "mean_dy", "max_abs_dx", "max_abs_dy"}},
    "cpus_available": int, "torch_threads": int (when torch is loaded), "cv2_threads": int
  },
  "methods": {
    "<method: sift | kornia>": {
      "<sequence name, e.g. v_wormhole>": {
        "weights": str,
        "extract_ms_per_image": float, "extract_ms_total": float, "extract_ms_images": [6 floats],
        "match_ms_per_pair": float, "match_ms_pairs": [5 floats],
        "end_to_end_ms": float, "end_to_end_ms_runs": [repeats floats],
        "keypoints": [6 ints], "keypoints_mean": float,
        "deterministic": bool,
        "pairs": [{"k": int, "keypoints_1": int, "keypoints_k": int, "matches": int,
                   "correct_3px": int, "mma": [10 floats]}, ...],      # k = 2..6
        "mma_mean": [10 floats], "correct_3px_mean": float, "matches_mean": float
      }
    }
  }
}

Usage:
  bench_images.py --sequence DIR [--sequence DIR ...] [--max-keypoints 2000] [--threads 2] [--repeats 3]
                  [--methods sift,kornia] [--hardnet-batch 512] [--output out.json]
  bench_images.py --self-test
Progress and a summary table go to stderr; the JSON goes to --output (written atomically) or, without it, to
stdout.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

SCHEMA = "desdis-bench-images/1"
THRESHOLDS = list(range(1, 11))
ALL_METHODS = ("sift", "kornia")
KORNIA_WEIGHTS = "random (speed only)"


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Accuracy


def project(H, xy):
    """Map (N, 2) pixel coordinates with the 3x3 homography H (homogeneous division)."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    h = np.concatenate([xy, np.ones((xy.shape[0], 1))], axis=1) @ np.asarray(H, dtype=np.float64).T
    return h[:, :2] / h[:, 2:3]


def match_errors(H, xy1, xyk):
    """Reprojection error of each match: |H(xy1) - xyk|, xy1 and xyk (M, 2) matched keypoints."""
    xyk = np.asarray(xyk, dtype=np.float64).reshape(-1, 2)
    if xyk.shape[0] == 0:
        return np.zeros(0)
    return np.sqrt(((project(H, xy1) - xyk) ** 2).sum(axis=1))


def mma(errors, thresholds=THRESHOLDS):
    """MMA(t) = fraction of matches with error <= t, for each t; all zeros when there are no matches."""
    errors = np.asarray(errors, dtype=np.float64)
    if errors.size == 0:
        return [0.0 for _ in thresholds]
    return [float(np.mean(errors <= t)) for t in thresholds]


def pair_accuracy(H, kp1, kpk, idx):
    """Accuracy record of pair 1->k. kp1, kpk: (N, 2) keypoints; idx: (M, 2) indices of matches (1, k)."""
    idx = np.asarray(idx, dtype=np.int64).reshape(-1, 2)
    err = match_errors(H, kp1[idx[:, 0]], kpk[idx[:, 1]])
    return {
        "keypoints_1": int(len(kp1)),
        "keypoints_k": int(len(kpk)),
        "matches": int(len(idx)),
        "correct_3px": int(np.sum(err <= 3.0)),
        "mma": mma(err),
    }


def self_test():
    """Check the MMA code on hand-made cases; return the number of failures."""
    failures = 0

    def check(name, got, want, tol=1e-12):
        nonlocal failures
        got = np.asarray(got, dtype=np.float64)
        want = np.asarray(want, dtype=np.float64)
        ok = got.shape == want.shape and bool(np.all(np.abs(got - want) <= tol))
        log(f"[{'ok' if ok else 'FAIL'}] {name}")
        if not ok:
            log(f"    got  {got.tolist()}\n    want {want.tolist()}")
            failures += 1

    # Ten matches whose image-k keypoint is off by a known distance (error == t counts as correct).
    dist = np.array([0.0, 0.5, 1.0, 1.5, 2.9, 3.0, 3.1, 5.0, 7.5, 20.0])
    # Matches exactly at a threshold (1, 3, 5 px) are axis-aligned and start at integer keypoints, so their
    # distance is exact; the others are off-axis.
    dirs = np.array([[1, 0], [0, 1], [-1, 0], [0.6, 0.8], [0, -1], [0, 1], [-0.8, 0.6], [1, 0], [0.6, -0.8],
                     [-0.6, -0.8]])
    offsets = dist[:, None] * dirs
    rng = np.random.default_rng(0)
    kp1 = rng.integers(0, 900, size=(10, 2)).astype(np.float64)
    want = [float(np.mean(dist <= t)) for t in THRESHOLDS]
    # Written out by hand as well, so a bug shared by `want` and `mma` cannot hide.
    want_by_hand = [0.3, 0.4, 0.6, 0.7, 0.8, 0.8, 0.8, 0.9, 0.9, 0.9]
    check("expected MMA written by hand", want, want_by_hand)
    eye = np.eye(3)
    check("identity H: errors", match_errors(eye, kp1, kp1 + offsets), dist, 1e-9)
    check("identity H: MMA", mma(match_errors(eye, kp1, kp1 + offsets)), want_by_hand)

    # Non-trivial homographies: image-k keypoints built from the projection plus the same offsets.
    Hs = {
        "scale+translation": np.array([[2.0, 0.0, 10.0], [0.0, 2.0, -5.0], [0.0, 0.0, 1.0]]),
        "projective": np.array([[1.4733, -0.014435, 76.772], [0.25007, 1.2556, -120.81], [8.8206e-4, 8.1414e-5, 1.002]]),
    }
    for name, H in Hs.items():
        xy = project(H, kp1)
        # Hand check of the projection for the first point.
        x, y = kp1[0]
        d = H[2, 0] * x + H[2, 1] * y + H[2, 2]
        check(f"{name}: projection", xy[0], [(H[0, 0] * x + H[0, 1] * y + H[0, 2]) / d,
                                             (H[1, 0] * x + H[1, 1] * y + H[1, 2]) / d], 1e-9)
        err = match_errors(H, kp1, xy + offsets)
        check(f"{name}: errors", err, dist, 1e-9)
        # The homography is only defined up to scale.
        check(f"{name}: scale invariance", match_errors(3.7 * H, kp1, xy + offsets), dist, 1e-9)

    # pair_accuracy with a permuted index table and extra unmatched keypoints.
    perm = rng.permutation(10)
    kpk = np.zeros((15, 2))
    kpk[perm] = kp1 + offsets
    idx = np.stack([np.arange(10), perm], axis=1)
    rec = pair_accuracy(eye, kp1, kpk, idx)
    check("pair_accuracy: mma", rec["mma"], want_by_hand)
    check("pair_accuracy: counts", [rec["matches"], rec["correct_3px"], rec["keypoints_1"], rec["keypoints_k"]],
          [10, 6, 10, 15])
    # No matches: zeros, not NaN.
    rec = pair_accuracy(eye, kp1, kpk, np.zeros((0, 2), dtype=np.int64))
    check("no matches: mma is zero", rec["mma"], [0.0] * 10)
    check("no matches: counts", [rec["matches"], rec["correct_3px"]], [0, 0])
    return failures


# ---------------------------------------------------------------------------------------------
# Methods. Each has extract(img_u8) -> (xy (N, 2) float64 numpy, opaque descriptors) and
# match(d1, d2) -> (M, 2) int indices. Conversions needed to get there are inside the timed calls.


class Sift:
    name = "sift"
    weights = "n/a (hand-crafted)"

    def __init__(self, max_keypoints):
        import cv2

        self.cv2 = cv2
        self.sift = cv2.SIFT_create(nfeatures=max_keypoints)
        self.bf = cv2.BFMatcher(cv2.NORM_L2, crossCheck=True)
        self.config = {
            "detector": f"cv2.SIFT_create(nfeatures={max_keypoints}) (other parameters default)",
            "descriptor": "SIFT, 128 float32",
            "matcher": "cv2.BFMatcher(cv2.NORM_L2, crossCheck=True) (mutual nearest neighbours)",
            "weights": self.weights,
        }

    def extract(self, img):
        kps, desc = self.sift.detectAndCompute(img, None)
        if desc is None:
            desc = np.zeros((0, 128), np.float32)
        xy = self.cv2.KeyPoint_convert(kps).astype(np.float64).reshape(-1, 2)
        return xy, desc

    def match(self, d1, d2):
        if len(d1) == 0 or len(d2) == 0:
            return np.zeros((0, 2), np.int64)
        ms = self.bf.match(d1, d2)
        return np.array([(m.queryIdx, m.trainIdx) for m in ms], dtype=np.int64).reshape(-1, 2)


class KorniaDoGHardNet:
    name = "kornia"
    weights = KORNIA_WEIGHTS

    def __init__(self, max_keypoints, hardnet_batch):
        import torch
        import kornia.feature as KF
        from kornia.geometry import ScalePyramid
        from kornia.geometry.subpix import ConvQuadInterp3d

        self.torch = torch
        self.KF = KF
        self.batch = hardnet_batch
        # The DoG detector of kornia.feature.DoGHardNet (the "patch" backend of SIFTFeatureScaleSpace).
        self.detector = KF.ScaleSpaceDetector(
            max_keypoints,
            mr_size=6.0,
            resp_module=KF.BlobDoG(),
            subpix_module=ConvQuadInterp3d(),
            scale_pyr_module=ScalePyramid(3, 1.6, 32, double_image=True),
            ori_module=KF.LAFOrienter(19),
            scale_space_response=True,
            minima_are_also_good=True,
        ).eval()
        torch.manual_seed(0)
        self.hardnet = KF.HardNet(pretrained=False).eval()
        self.config = {
            "detector": (
                f"ScaleSpaceDetector(num_features={max_keypoints}, mr_size=6.0, resp_module=BlobDoG(), "
                "subpix_module=ConvQuadInterp3d(), scale_pyr_module=ScalePyramid(3, 1.6, 32, double_image=True), "
                "ori_module=LAFOrienter(19), scale_space_response=True, minima_are_also_good=True) "
                "-- the detector of kornia.feature.DoGHardNet"
            ),
            "descriptor": (
                "HardNet(pretrained=False) (seed 0) on extract_patches_from_pyramid(img, scale_laf(lafs, 2.0), 32), "
                f"batches of {hardnet_batch} patches; unfilled LAF slots dropped first (laf_is_filled)"
            ),
            "matcher": "kornia.feature.match_mnn (mutual nearest neighbours, L2)",
            "input": "float32 (1, 1, H, W) in [0, 1], CPU",
            "weights": self.weights,
        }

    def extract(self, img):
        torch, KF = self.torch, self.KF
        with torch.inference_mode():
            t = torch.from_numpy(img).to(torch.float32).div_(255.0)[None, None]
            lafs, _ = self.detector(t)
            lafs = lafs[:, KF.laf_is_filled(lafs)[0]]
            if lafs.shape[1] == 0:
                return np.zeros((0, 2)), torch.zeros(0, 128)
            patches = KF.extract_patches_from_pyramid(t, KF.scale_laf(lafs, 2.0), 32)[0]
            descs = torch.cat([self.hardnet(b) for b in patches.split(self.batch)], dim=0)
            xy = KF.get_laf_center(lafs)[0].to(torch.float64).numpy()
        return xy, descs

    def match(self, d1, d2):
        torch = self.torch
        with torch.inference_mode():
            _, idx = self.KF.match_mnn(d1, d2)
            return idx.numpy().astype(np.int64).reshape(-1, 2)


def make_method(name, args):
    if name == "sift":
        return Sift(args.max_keypoints)
    if name == "kornia":
        return KorniaDoGHardNet(args.max_keypoints, args.hardnet_batch)
    raise ValueError(name)


# ---------------------------------------------------------------------------------------------
# Pixel-convention check: bright Gaussian blobs at known positions on a synthetic image. With the
# convention (0, 0) = centre of the top-left pixel, the detected centres match the rendered ones.

BLOBS = [(48.0, 48.0), (144.0, 48.5), (48.25, 144.0), (143.5, 143.75)]


def convention_check(method):
    yy, xx = np.mgrid[0:192, 0:192].astype(np.float64)
    img = np.full((192, 192), 40.0)
    sigma = 4.0
    for x0, y0 in BLOBS:
        img += 180.0 * np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2))
    img = np.clip(np.round(img), 0, 255).astype(np.uint8)
    xy, _ = method.extract(img)
    dx, dy = [], []
    for x0, y0 in BLOBS:
        if len(xy) == 0:
            break
        d = np.hypot(xy[:, 0] - x0, xy[:, 1] - y0)
        j = int(np.argmin(d))
        if d[j] <= 3.0:
            dx.append(xy[j, 0] - x0)
            dy.append(xy[j, 1] - y0)
    res = {
        "blobs": len(BLOBS),
        "found": len(dx),
        "mean_dx": float(np.mean(dx)) if dx else None,
        "mean_dy": float(np.mean(dy)) if dy else None,
        "max_abs_dx": float(np.max(np.abs(dx))) if dx else None,
        "max_abs_dy": float(np.max(np.abs(dy))) if dy else None,
    }
    if len(dx) < len(BLOBS) or max(res["max_abs_dx"], res["max_abs_dy"]) > 0.35:
        log(f"WARNING: {method.name}: pixel-convention check off: {res}")
    return res


# ---------------------------------------------------------------------------------------------
# Benchmark


def load_sequence(path):
    import cv2

    images = []
    for i in range(1, 7):
        p = os.path.join(path, f"{i}.png")
        img = cv2.imread(p, cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise SystemExit(f"cannot read {p}")
        images.append(np.ascontiguousarray(img))
    Hs = {k: np.loadtxt(os.path.join(path, f"H_1_{k}")).reshape(3, 3) for k in range(2, 7)}
    return images, Hs


def run_sequence(method, images, Hs, repeats):
    pc = time.perf_counter
    # Warm-up (untimed): first calls allocate, pick kernels, build caches.
    f1 = method.extract(images[0])
    f2 = method.extract(images[1])
    method.match(f1[1], f2[1])

    ext = [[] for _ in images]
    mat = {k: [] for k in Hs}
    e2e = []
    runs = []
    for _ in range(repeats):
        t_run = pc()
        feats = []
        for i, img in enumerate(images):
            t0 = pc()
            feats.append(method.extract(img))
            ext[i].append((pc() - t0) * 1e3)
        idxs = {}
        for k in Hs:
            t0 = pc()
            idxs[k] = method.match(feats[0][1], feats[k - 1][1])
            mat[k].append((pc() - t0) * 1e3)
        e2e.append((pc() - t_run) * 1e3)
        runs.append(([f[0] for f in feats], idxs))

    xys, idxs = runs[-1]
    deterministic = all(
        all(np.array_equal(r[1][k], idxs[k]) for k in Hs) and all(np.array_equal(a, b) for a, b in zip(r[0], xys))
        for r in runs
    )
    pairs = []
    for k, H in Hs.items():
        rec = {"k": k}
        rec.update(pair_accuracy(H, xys[0], xys[k - 1], idxs[k]))
        pairs.append(rec)
    ext_med = [statistics.median(v) for v in ext]
    mat_med = [statistics.median(mat[k]) for k in Hs]
    kps = [int(len(x)) for x in xys]
    return {
        "weights": method.weights,
        "extract_ms_per_image": float(np.mean(ext_med)),
        "extract_ms_total": float(np.sum(ext_med)),
        "extract_ms_images": ext_med,
        "match_ms_per_pair": float(np.mean(mat_med)),
        "match_ms_pairs": mat_med,
        "end_to_end_ms": statistics.median(e2e),
        "end_to_end_ms_runs": e2e,
        "keypoints": kps,
        "keypoints_mean": float(np.mean(kps)),
        "deterministic": bool(deterministic),
        "pairs": pairs,
        "mma_mean": [float(np.mean([p["mma"][i] for p in pairs])) for i in range(len(THRESHOLDS))],
        "correct_3px_mean": float(np.mean([p["correct_3px"] for p in pairs])),
        "matches_mean": float(np.mean([p["matches"] for p in pairs])),
    }


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions():
    out = {"python": platform.python_version(), "numpy": np.__version__, "torch": None, "cv2": None, "kornia": None}
    for mod in ("torch", "cv2", "kornia"):
        if mod in sys.modules:
            out[mod] = getattr(sys.modules[mod], "__version__", None)
    return out


def write_json(obj, path):
    text = json.dumps(obj, indent=1) + "\n"
    if path is None:
        sys.stdout.write(text)
        return
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".bench_images.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def summary(result):
    log("")
    hdr = (f"{'method':<7} {'sequence':<12} {'ext ms/img':>10} {'match ms':>9} {'e2e ms':>9} {'kpts':>7} "
           f"{'MMA@1':>6} {'MMA@3':>6} {'MMA@5':>6} {'MMA@10':>6} {'corr@3':>7} {'matches':>8}")
    log(hdr)
    log("-" * len(hdr))
    for m, seqs in result["methods"].items():
        for s, r in seqs.items():
            a = r["mma_mean"]
            log(f"{m:<7} {s:<12} {r['extract_ms_per_image']:>10.1f} {r['match_ms_per_pair']:>9.1f} "
                f"{r['end_to_end_ms']:>9.1f} {r['keypoints_mean']:>7.0f} {a[0]:>6.3f} {a[2]:>6.3f} {a[4]:>6.3f} "
                f"{a[9]:>6.3f} {r['correct_3px_mean']:>7.1f} {r['matches_mean']:>8.1f}")
    if "kornia" in result["methods"]:
        log(f"(kornia HardNet weights: {KORNIA_WEIGHTS}; its MMA is that of a random descriptor)")


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="Time OpenCV SIFT and kornia DoG+HardNet whole-image extraction and matching on HPatches "
        "sequences, and compute their mean matching accuracy (D2-Net protocol, thresholds 1..10 px). The "
        "JSON layout is documented at the top of this file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--sequence", action="append", default=[], metavar="DIR",
                   help="HPatches sequence folder with 1.png..6.png and H_1_2..H_1_6 (repeatable)")
    p.add_argument("--max-keypoints", type=int, default=2000, metavar="N", help="keypoints per image")
    p.add_argument("--threads", type=int, default=2, metavar="N",
                   help="CPU threads (torch.set_num_threads, cv2.setNumThreads)")
    p.add_argument("--repeats", type=int, default=3, metavar="R", help="timed runs; medians are reported")
    p.add_argument("--methods", default="sift,kornia", help="comma-separated subset of: " + ",".join(ALL_METHODS))
    p.add_argument("--hardnet-batch", type=int, default=512, metavar="B", help="HardNet patches per forward call")
    p.add_argument("--output", metavar="JSON", help="result file, written atomically (default: stdout)")
    p.add_argument("--self-test", action="store_true",
                   help="check the MMA code on hand-made cases and exit (non-zero on failure)")
    args = p.parse_args(argv)
    if args.self_test:
        return args
    if not args.sequence:
        p.error("at least one --sequence is required")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in ALL_METHODS]
    if bad or not methods:
        p.error(f"unknown method(s) {bad}; choose from {','.join(ALL_METHODS)}")
    args.methods = list(dict.fromkeys(methods))
    if args.repeats < 1 or args.threads < 1 or args.max_keypoints < 1 or args.hardnet_batch < 1:
        p.error("--repeats, --threads, --max-keypoints and --hardnet-batch must be positive")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.self_test:
        failures = self_test()
        log("self-test: " + ("passed" if failures == 0 else f"{failures} FAILED"))
        return 1 if failures else 0

    import cv2

    cv2.setNumThreads(args.threads)
    if "kornia" in args.methods:
        import torch

        torch.set_num_threads(args.threads)

    seqs = []
    for path in args.sequence:
        name = os.path.basename(os.path.normpath(path))
        if any(name == s[0] for s in seqs):
            raise SystemExit(f"sequence name {name} given twice")
        seqs.append((name, path) + load_sequence(path))

    meta = {
        "schema": SCHEMA,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpus_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "threads": args.threads,
        "repeats": args.repeats,
        "max_keypoints": args.max_keypoints,
        "hardnet_batch": args.hardnet_batch,
        "warmup": "untimed: extract images 1 and 2 and match them, per method and sequence",
        "mma_thresholds_px": THRESHOLDS,
        "sequences": [{"name": s[0], "path": os.path.abspath(s[1])} for s in seqs],
        "method_config": {},
        "convention_check": {},
    }
    result = {"meta": meta, "methods": {}}
    for mname in args.methods:
        method = make_method(mname, args)
        meta["method_config"][mname] = method.config
        meta["convention_check"][mname] = convention_check(method)
        log(f"{mname}: convention check {meta['convention_check'][mname]}")
        result["methods"][mname] = {}
        for name, _, images, Hs in seqs:
            t0 = time.perf_counter()
            r = run_sequence(method, images, Hs, args.repeats)
            result["methods"][mname][name] = r
            log(f"{mname} {name}: done in {time.perf_counter() - t0:.1f} s; "
                f"extract {r['extract_ms_per_image']:.1f} ms/img, match {r['match_ms_per_pair']:.1f} ms/pair, "
                f"e2e {r['end_to_end_ms']:.1f} ms, MMA@3 {r['mma_mean'][2]:.3f}")
    if "torch" in sys.modules:
        meta["torch_threads"] = sys.modules["torch"].get_num_threads()
    meta["cv2_threads"] = cv2.getNumThreads()
    meta["versions"] = versions()
    write_json(result, args.output)
    summary(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
