"""Shared helpers: the shared data folder (skipped when absent, unless CI=true) and the
`desdis` binary whose output the bindings must reproduce."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

WORKSPACE = Path(__file__).resolve().parents[3]


def shared_data_root() -> Path:
    env = os.environ.get("DESDIS_SHARED_DATA")
    return Path(env) if env else WORKSPACE.parent / "shared" / "data"


def in_ci() -> bool:
    return os.environ.get("CI") in ("true", "1")


def shared_data(rel: str) -> Path:
    """`rel` under the shared data; a skip when it is absent, a failure under CI=true."""
    path = shared_data_root() / rel
    if not path.exists():
        if in_ci():
            pytest.fail(f"CI=true but the shared data file {path} is missing")
        pytest.skip(f"shared data {path} not found")
    return path


@pytest.fixture(scope="session")
def desdis_bin() -> Path:
    """The release `desdis` binary ($DESDIS_BIN, else target/release/desdis, built if missing)."""
    env = os.environ.get("DESDIS_BIN")
    path = Path(env) if env else WORKSPACE / "target" / "release" / "desdis"
    if not path.is_file():
        subprocess.run(
            ["cargo", "build", "--release", "-p", "desdis-cli"], cwd=WORKSPACE, check=True
        )
    return path


@pytest.fixture
def run_cli(desdis_bin):
    """Runs `desdis ARGS`, failing the test with its stderr when it exits non-zero."""

    def run(*args):
        proc = subprocess.run([str(desdis_bin), *map(str, args)], capture_output=True, text=True)
        assert proc.returncode == 0, f"desdis {' '.join(map(str, args))} failed: {proc.stderr}"
        return proc

    return run


@pytest.fixture(scope="session")
def describer():
    import desdis

    return desdis.Describer()


def smooth_image(height: int, width: int, seed: int) -> np.ndarray:
    """A float image in 0..1 with blob structure (smoothed noise): keypoints to find."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height // 8 + 2, width // 8 + 2))
    # Bilinear upsampling of coarse noise: smooth blobs of about 8 pixels.
    ys = np.linspace(0, noise.shape[0] - 1.001, height)
    xs = np.linspace(0, noise.shape[1] - 1.001, width)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a = noise[y0][:, x0]
    b = noise[y0][:, x0 + 1]
    c = noise[y0 + 1][:, x0]
    d = noise[y0 + 1][:, x0 + 1]
    img = a * (1 - fx) * (1 - fy) + b * fx * (1 - fy) + c * (1 - fx) * fy + d * fx * fy
    return img.astype(np.float32)
