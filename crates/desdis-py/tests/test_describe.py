"""`Describer.describe` against `desdis describe` and the float64 references of the released
weights."""

import numpy as np
import pytest

import desdis
from conftest import shared_data


def cli_describe(run_cli, tmp_path, patches, weights=None):
    src, out = tmp_path / "in.npy", tmp_path / "out.npy"
    np.save(src, patches)
    args = ["describe", "--input", src, "--output", out]
    if weights is not None:
        args += ["--weights", weights]
    run_cli(*args)
    return np.load(out)


@pytest.mark.parametrize(
    "shape,dtype",
    [((300, 32, 32), np.uint8), ((40, 1, 65, 65), np.uint8), ((20, 64, 64), np.float32), ((7, 48, 40), np.float32)],
)
def test_describe_equals_the_cli(run_cli, tmp_path, describer, shape, dtype):
    rng = np.random.default_rng(sum(shape))
    if dtype == np.uint8:
        patches = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        patches = rng.random(shape, dtype=np.float32)
    expected = cli_describe(run_cli, tmp_path, patches)
    got = describer.describe(patches)
    assert got.dtype == np.float32 and got.shape == (shape[0], 128)
    np.testing.assert_array_equal(got, expected)


def test_memory_layout_does_not_matter(describer):
    rng = np.random.default_rng(3)
    patches = rng.integers(0, 256, (10, 32, 32), dtype=np.uint8)
    base = describer.describe(patches)
    np.testing.assert_array_equal(describer.describe(np.asfortranarray(patches)), base)
    wide = np.zeros((10, 32, 64), np.uint8)
    wide[:, :, ::2] = patches
    np.testing.assert_array_equal(describer.describe(wide[:, :, ::2]), base)
    np.testing.assert_array_equal(describer.describe(patches[:, None]), base)


@pytest.mark.parametrize(
    "weights,name",
    [
        ("desdis-official/DesDis-8.pth", "desdis-8"),
        ("desdis-official/DesDis-16.pth", "desdis-16"),
        ("desdis-official/DesDis-24.pth", "desdis-24"),
        ("desdis-official/DesDis-32.pth", "desdis-32"),
        ("tfeat/tfeat-liberty.params", "tfeat-liberty"),
    ],
)
def test_released_weights_match_the_float64_reference(weights, name):
    patches = np.load(shared_data("reference/hpatches_ref64_u8_65x65.npy"))
    reference = np.load(shared_data(f"reference/{name}_ref64.npy"))
    net = desdis.Describer(shared_data(weights))
    got = net.describe(patches)
    assert got.shape == reference.shape
    assert np.abs(got - reference).max() <= 1e-5, name


def test_released_weights_equal_the_cli(run_cli, tmp_path):
    weights = shared_data("desdis-official/DesDis-8.pth")
    patches = np.load(shared_data("reference/hpatches_ref64_u8_65x65.npy"))
    net = desdis.Describer(str(weights))
    assert net.arch == "desdis-8" and net.descriptor_size == 128
    np.testing.assert_array_equal(net.describe(patches), cli_describe(run_cli, tmp_path, patches, weights))


def test_threads_share_one_describer(describer):
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(5)
    batches = [rng.integers(0, 256, (64, 32, 32), dtype=np.uint8) for _ in range(4)]
    serial = [describer.describe(b) for b in batches]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(describer.describe, batches))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
