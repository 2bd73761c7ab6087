"""`extract` + `match` + `verify` against `desdis extract` + `desdis match` on an HPatches
sequence, read back from the CLI's HDF5 files."""

import shutil

import h5py
import numpy as np
import pytest

import desdis
from conftest import shared_data, smooth_image


@pytest.fixture(scope="module")
def wormhole(tmp_path_factory):
    seq = shared_data("hpatches-sequences/v_wormhole")
    folder = tmp_path_factory.mktemp("wormhole")
    for name in ("1.png", "2.png"):
        shutil.copy(seq / name, folder / name)
    return folder


@pytest.fixture(scope="module")
def cli_files(wormhole, desdis_bin, tmp_path_factory):
    import subprocess

    out = tmp_path_factory.mktemp("cli")
    features = out / "features.h5"
    pairs = out / "pairs.txt"
    pairs.write_text("1.png 2.png\n")

    def run(*args):
        proc = subprocess.run([str(desdis_bin), *map(str, args)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr

    run("extract", "--images", wormhole, "--output", features)
    for verify in ("none", "homography"):
        run("match", "--features", features, "--pairs", pairs, "--output", out / f"{verify}.h5",
            "--verify", verify)
    return out


def matches0(path):
    with h5py.File(path, "r") as f:
        m0 = f["1.png"]["2.png"]["matches0"][()]
    i0 = np.nonzero(m0 >= 0)[0]
    return np.stack([i0, m0[i0]], axis=1).astype(np.int64)


def test_extract_equals_the_cli(wormhole, cli_files, describer):
    with h5py.File(cli_files / "features.h5", "r") as f:
        for name in ("1.png", "2.png"):
            got = describer.extract(wormhole / name)
            group = f[name]
            np.testing.assert_array_equal(got["keypoints"], group["keypoints"][()])
            np.testing.assert_array_equal(got["descriptors"], group["descriptors"][()].T)
            for key in ("scores", "scales", "oris", "image_size"):
                np.testing.assert_array_equal(got[key], group[key][()], err_msg=key)
            assert got["keypoints"].dtype == np.float32 and got["image_size"].dtype == np.int64


def test_match_and_verify_equal_the_cli(wormhole, cli_files, describer):
    f0 = describer.extract(str(wormhole / "1.png"))
    f1 = describer.extract(str(wormhole / "2.png"))
    pairs, dist = desdis.match(f0["descriptors"], f1["descriptors"])
    assert pairs.dtype == np.int64 and dist.dtype == np.float32 and len(pairs) == len(dist)
    np.testing.assert_array_equal(pairs, matches0(cli_files / "none.h5"))
    inliers, model = desdis.verify(f0["keypoints"], f1["keypoints"], pairs, model="homography")
    assert inliers.dtype == np.bool_ and model.shape == (3, 3) and model.dtype == np.float64
    np.testing.assert_array_equal(pairs[inliers], matches0(cli_files / "homography.h5"))
    # The sequence's ground truth: the fitted homography maps points close to it.
    truth = np.loadtxt(shared_data("hpatches-sequences/v_wormhole/H_1_2"))
    corners = np.array([[100.0, 100.0, 1.0], [500.0, 400.0, 1.0]]).T
    a, b = model @ corners, truth @ corners
    assert np.abs(a[:2] / a[2] - b[:2] / b[2]).max() < 5.0


def write_pnm(path, pixels):
    """A binary PGM (gray) or PPM (RGB) of uint8 pixels."""
    magic = b"P5" if pixels.ndim == 2 else b"P6"
    h, w = pixels.shape[:2]
    path.write_bytes(magic + f"\n{w} {h}\n255\n".encode() + pixels.tobytes())


@pytest.mark.parametrize("channels", [1, 3])
def test_an_array_equals_its_file(tmp_path, describer, channels):
    gray = (smooth_image(120, 160, seed=channels) * 255).round().astype(np.uint8)
    pixels = gray if channels == 1 else np.stack([gray, np.roll(gray, 7, 1), 255 - gray], axis=2)
    path = tmp_path / ("img.pgm" if channels == 1 else "img.ppm")
    write_pnm(path, pixels)
    from_file = describer.extract(path, max_keypoints=300)
    from_array = describer.extract(pixels, max_keypoints=300)
    assert len(from_file["keypoints"]) > 10
    for key, value in from_file.items():
        np.testing.assert_array_equal(from_array[key], value, err_msg=key)
    np.testing.assert_array_equal(from_file["image_size"], [160, 120])


def test_dtypes_of_an_image_agree(describer):
    unit = smooth_image(96, 128, seed=9)
    as_u8 = (unit * 255).round().astype(np.uint8)
    as_u16 = as_u8.astype(np.uint16) * 257
    a = describer.extract(as_u8, max_keypoints=200)
    b = describer.extract(as_u16, max_keypoints=200)
    c = describer.extract(as_u8.astype(np.float32) / 255, max_keypoints=200)
    np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=1e-3)
    np.testing.assert_allclose(a["keypoints"], c["keypoints"], atol=1e-3)


def test_upright_and_max_keypoints(describer):
    img = smooth_image(128, 128, seed=4)
    f = describer.extract(img, max_keypoints=50, upright=True)
    assert 0 < len(f["keypoints"]) <= 50
    assert np.all(f["oris"] == 0)
    assert f["descriptors"].shape == (len(f["keypoints"]), 128)


def test_a_flat_image_has_no_keypoints(describer):
    f = describer.extract(np.full((64, 64), 128, np.uint8))
    assert f["keypoints"].shape == (0, 2) and f["descriptors"].shape == (0, 128)
    pairs, dist = desdis.match(f["descriptors"], f["descriptors"])
    assert pairs.shape == (0, 2) and dist.shape == (0,)
    inliers, model = desdis.verify(f["keypoints"], f["keypoints"], pairs)
    assert inliers.shape == (0,) and model is None


def test_ratio_and_mutual_options():
    rng = np.random.default_rng(1)
    d0 = rng.standard_normal((50, 16)).astype(np.float32)
    d1 = np.concatenate([d0 + 0.01, rng.standard_normal((30, 16)).astype(np.float32)])
    pairs, dist = desdis.match(d0, d1, ratio=0.8)
    np.testing.assert_array_equal(pairs, np.stack([np.arange(50)] * 2, axis=1))
    np.testing.assert_allclose(dist, np.linalg.norm(d0 - d1[:50], axis=1), rtol=1e-5)
    loose, _ = desdis.match(d1, d0, mutual=False)
    assert len(loose) == 80


def test_max_size_equals_the_cli_and_arrays_equal_files(wormhole, desdis_bin, tmp_path, describer):
    import subprocess

    features = tmp_path / "small.h5"
    proc = subprocess.run(
        [str(desdis_bin), "extract", "--images", str(wormhole / "1.png"), "--output", str(features),
         "--max-size", "400"],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    got = describer.extract(wormhole / "1.png", max_size=400)
    with h5py.File(features, "r") as f:
        np.testing.assert_array_equal(got["keypoints"], f["1.png"]["keypoints"][()])
        np.testing.assert_array_equal(got["descriptors"], f["1.png"]["descriptors"][()].T)
    full = describer.extract(wormhole / "1.png")
    # Downscaled: fewer keypoints, coordinates still in the original image's pixels.
    assert len(got["keypoints"]) < len(full["keypoints"])
    np.testing.assert_array_equal(got["image_size"], full["image_size"])
    w, h = full["image_size"]
    assert got["keypoints"][:, 0].max() > w / 2 and got["keypoints"][:, 1].max() > h / 2


def test_max_size_on_an_array_equals_the_file(tmp_path, describer):
    pixels = (smooth_image(300, 420, seed=5) * 255).round().astype(np.uint8)
    path = tmp_path / "smooth.pgm"
    write_pnm(path, pixels)
    from_file = describer.extract(path, max_size=200)
    from_array = describer.extract(pixels, max_size=200)
    for key in ("keypoints", "descriptors", "image_size"):
        np.testing.assert_array_equal(from_array[key], from_file[key], err_msg=key)
    np.testing.assert_array_equal(from_array["image_size"], [420, 300])
