"""Each bad input raises one clear exception, of the class its kind calls for, with the message
the CLI prints; nothing panics, nothing runs code from a checkpoint."""

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

import desdis
from conftest import shared_data, smooth_image


def raises(cls, needle, fn, *args, **kwargs):
    with pytest.raises(cls) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, desdis.DesdisError)
    assert needle in str(info.value), str(info.value)
    assert "panicked" not in str(info.value)
    return info.value


@pytest.mark.parametrize(
    "patches,needle",
    [
        (np.zeros((2, 32, 32), np.int32), "dtype int32 is not supported"),
        (np.zeros((2, 32, 32), np.complex64), "dtype complex64 is not supported"),
        (np.zeros((2, 32, 32), np.float64), "dtype float64 is not supported"),
        (np.zeros((2, 32, 32), np.float16), "dtype float16"),
        (np.zeros((32, 32), np.uint8), "must have shape (N,H,W) or (N,1,H,W), found [32, 32]"),
        (np.zeros((2, 3, 32, 32), np.uint8), "found [2, 3, 32, 32]"),
        (np.zeros((2, 1, 1, 32, 32), np.uint8), "found [2, 1, 1, 32, 32]"),
        (np.zeros((0, 32, 32), np.uint8), "contains no patches"),
        (np.zeros((3, 0, 32), np.float32), "contains no patches"),
        (np.full((2, 32, 32), 200.0, np.float32), "must be in 0..1"),
    ],
)
def test_bad_patch_arrays(describer, patches, needle):
    raises(ValueError, needle, describer.describe, patches)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_patches(describer, bad):
    patches = np.full((2, 32, 32), 0.5, np.float32)
    patches[1, 3, 4] = bad
    raises(ValueError, f"value {1024 + 3 * 32 + 4} is not finite", describer.describe, patches)


def test_not_an_array(describer):
    raises(TypeError, "expected a numpy array, got list", describer.describe, [[0] * 32] * 32)
    raises(TypeError, "expected a path or a numpy array, got int", describer.extract, 3)


def test_a_zero_batch_size(describer):
    raises(ValueError, "batch size", describer.describe, np.zeros((1, 32, 32), np.uint8), batch_size=0)


@pytest.mark.parametrize(
    "image,needle",
    [
        (np.zeros((20, 20), np.int32), "dtype int32 is not supported"),
        (np.zeros((20, 20), np.float64), "dtype float64 is not supported"),
        (np.zeros((20,), np.uint8), "found [20]"),
        (np.zeros((20, 20, 5), np.uint8), "found [20, 20, 5]"),
        (np.zeros((2, 20, 20, 3), np.uint8), "found [2, 20, 20, 3]"),
        (np.zeros((0, 20), np.uint8), "has no pixels (20x0)"),
        (np.full((20, 20), 3.0, np.float32), "must be in 0..1"),
        (np.zeros((20000, 1), np.uint8), "larger than the limit of 16384"),
    ],
)
def test_bad_image_arrays(describer, image, needle):
    raises(ValueError, needle, describer.extract, image)


def test_nan_in_an_image(describer):
    image = smooth_image(40, 40, seed=1)
    image[5, 5] = np.nan
    raises(ValueError, "is not finite", describer.extract, image)


def test_missing_files(tmp_path, describer):
    missing = tmp_path / "nope.pth"
    raises(FileNotFoundError, "nope.pth", desdis.Describer, missing)
    raises(FileNotFoundError, "nope.png", describer.extract, tmp_path / "nope.png")


def test_files_that_are_not_images(tmp_path, describer):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    raises(ValueError, "junk.png", describer.extract, junk)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    raises(desdis.DesdisError, "empty.jpg", describer.extract, empty)


def test_corrupt_checkpoints(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(os.urandom(4096))
    raises(ValueError, "garbage.pth", desdis.Describer, garbage)
    text = tmp_path / "weights.safetensors"
    text.write_text("hello")
    raises(ValueError, "weights.safetensors", desdis.Describer, text)


def test_a_truncated_release():
    real = shared_data("desdis-official/DesDis-8.pth").read_bytes()
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cut = os.path.join(tmp, "cut.pth")
        with open(cut, "wb") as f:
            f.write(real[: len(real) // 2])
        raises(ValueError, "not a valid zip archive", desdis.Describer, cut)


class _RunsACommand:
    """What a malicious checkpoint pickles: unpickling it would call os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_malicious_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"features.0.weight": _RunsACommand(marker)}, protocol=2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", payload)
        z.writestr("evil/version", "3\n")
    evil = tmp_path / "evil.pth"
    evil.write_bytes(buffer.getvalue())
    err = raises(ValueError, "forbidden global", desdis.Describer, evil)
    assert "system" in str(err) and "evil.pth" in str(err)
    assert not marker.exists(), "the pickle ran a command"


def test_unknown_arch_and_device():
    raises(ValueError, "unknown architecture", desdis.Describer, arch="resnet")
    raises(ValueError, "device", desdis.Describer, device="tpu")


def test_bad_match_inputs():
    d = np.zeros((4, 8), np.float32)
    raises(ValueError, "dimension 8 and 16", desdis.match, d, np.zeros((4, 16), np.float32))
    raises(ValueError, "expected shape (N, D)", desdis.match, d[0], d)
    raises(ValueError, "dtype int32", desdis.match, d.astype(np.int32), d)
    bad = d.copy()
    bad[2, 3] = np.nan
    raises(ValueError, "desc1: value 19 is not finite", desdis.match, d, bad)
    raises(ValueError, "ratio", desdis.match, d, d, ratio=-1.0)


def test_bad_verify_inputs():
    k = np.zeros((5, 2), np.float32)
    m = np.array([[0, 1], [1, 2]], np.int64)
    raises(ValueError, "expected shape (N, 2)", desdis.verify, np.zeros((5, 3)), k, m)
    raises(ValueError, "expected shape (M, 2)", desdis.verify, k, k, m[:, 0])
    raises(ValueError, "index 7 out of range", desdis.verify, k, k, np.array([[0, 7]]))
    raises(ValueError, "index -1 out of range", desdis.verify, k, k, np.array([[-1, 0]]))
    raises(ValueError, "dtype float32", desdis.verify, k, k, m.astype(np.float32))
    raises(ValueError, "unknown model `affine`", desdis.verify, k, k, m, model="affine")
    raises(ValueError, "threshold", desdis.verify, k, k, m, threshold=-1.0)
    nan = k.copy()
    nan[1, 0] = np.nan
    raises(ValueError, "kpts0: value 2 is not finite", desdis.verify, nan, k, m)
