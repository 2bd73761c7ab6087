"""Learned local image descriptors on numpy arrays, without torch.

Arrays are copied and checked (dtype, shape, finite values) before any work; the computation runs
without the GIL, so several threads can use one :class:`Describer` at once.
"""

import os
from typing import Dict, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from ._errors import (
    DesdisError as DesdisError,
    DesdisFileNotFoundError as DesdisFileNotFoundError,
    DesdisOSError as DesdisOSError,
    DesdisRuntimeError as DesdisRuntimeError,
    DesdisTypeError as DesdisTypeError,
    DesdisValueError as DesdisValueError,
)

__version__: str

class Describer:
    """A descriptor net, loaded once.

    Args:
        weights: ``None`` for the built-in default student (DesDis-32); a checkpoint path
            (``.pth`` zip or legacy PyTorch, ``.safetensors``); or ``"hf://org/repo[@rev]/file"``
            (downloaded once and cached; offline with ``HF_HUB_OFFLINE=1``).
        arch: architecture name (``hardnet``, ``sosnet``, ``hynet``, ``l2net``, ``tfeat``,
            ``desdis-8`` ... ``desdis-32``); detected from the checkpoint's keys when ``None``.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` (CUDA only in builds with the feature).

    Raises:
        FileNotFoundError: the checkpoint does not exist.
        OSError: the checkpoint cannot be read.
        ValueError: the checkpoint is corrupt, not a checkpoint, holds a forbidden pickle global,
            or does not fit ``arch``; an unknown ``arch`` or ``device``.
    """

    def __init__(
        self,
        weights: Optional[Union[str, os.PathLike[str]]] = None,
        arch: Optional[str] = None,
        device: str = "cpu",
    ) -> None: ...
    @property
    def arch(self) -> str:
        """The architecture's name, e.g. ``"desdis-32"``."""
    @property
    def descriptor_size(self) -> int:
        """Floats per descriptor (128 for every shipped net)."""
    def describe(
        self, patches: npt.NDArray[Union[np.uint8, np.float32]], batch_size: int = 512
    ) -> npt.NDArray[np.float32]:
        """Descriptors of patches, as ``desdis describe`` computes them.

        Args:
            patches: ``(N, H, W)`` or ``(N, 1, H, W)``, uint8 in 0..255 or float32 in 0..1 (any
                memory layout). Patches that are not 32x32 are resized: 64x64 by 2x2 area
                averaging, any other size bilinearly (OpenCV's ``INTER_LINEAR``).
            batch_size: patches per forward pass.

        Returns:
            ``(N, D)`` float32 descriptors, one row per patch.

        Raises:
            TypeError: ``patches`` is not a numpy array.
            ValueError: another dtype, another rank, no patches, a NaN or infinite value, or
                float values outside 0..1.
        """
    def extract(
        self,
        image: Union[str, os.PathLike[str], npt.NDArray[Union[np.uint8, np.uint16, np.float32]]],
        max_keypoints: int = 2000,
        upright: bool = False,
        max_size: Optional[int] = None,
    ) -> Dict[str, np.ndarray]:
        """Keypoints and descriptors of one image, as ``desdis extract`` writes them.

        Args:
            image: a file (JPEG, PNG 8/16-bit, BMP, PNM), or an ``(H, W)`` / ``(H, W, C)`` array
                (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) of uint8 (0..255), uint16 (0..65535) or
                float32 (0..1). Colour becomes gray with the Rec. 601 weights, alpha is ignored.
            max_keypoints: keypoints at most, the strongest spread over the image (0: all).
            upright: cut every patch upright instead of rotating it to the keypoint's
                orientation.
            max_size: downscale the image first when its longer side exceeds this many pixels
                (as ``desdis extract --max-size``); coordinates stay in the original pixels.

        Returns:
            A dict of ``keypoints`` (N, 2) float32 (x, y; (0, 0) is the centre of the top-left
            pixel), ``descriptors`` (N, D) float32, ``scores``, ``scales`` (sigma in pixels) and
            ``oris`` (degrees) (N,) float32, and ``image_size`` (2,) int64 = (W, H).

        Raises:
            FileNotFoundError: the file does not exist.
            TypeError: ``image`` is neither a path nor a numpy array.
            ValueError: the file cannot be decoded; another dtype or shape, no pixels, a NaN or
                a float outside 0..1; an image larger than 16384 pixels per side.
        """

def match(
    desc0: npt.NDArray[Union[np.float32, np.float64]],
    desc1: npt.NDArray[Union[np.float32, np.float64]],
    mutual: bool = True,
    ratio: Optional[float] = None,
) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Nearest-neighbour matches of ``desc0`` (N0, D) to ``desc1`` (N1, D) in L2 distance.

    Args:
        mutual: keep only mutual nearest neighbours.
        ratio: Lowe's ratio test on distances (best / second best below ``ratio``).

    Returns:
        ``(M, 2)`` int64 index pairs (i0, i1), sorted by i0, and their ``(M,)`` float32 distances.

    Raises:
        ValueError: not 2-D, different widths, a NaN or infinite value, a ratio that is not
            positive.
    """

def verify(
    kpts0: npt.NDArray[Union[np.float32, np.float64]],
    kpts1: npt.NDArray[Union[np.float32, np.float64]],
    matches: npt.NDArray[Union[np.int64, np.int32, np.uint32]],
    model: str = "homography",
    threshold: float = 3.0,
    seed: int = 0,
) -> Tuple[npt.NDArray[np.bool_], Optional[npt.NDArray[np.float64]]]:
    """The matches that agree with one geometric model (seeded RANSAC: reproducible).

    Args:
        kpts0: ``(N0, 2)`` keypoints of image 0; ``kpts1``: ``(N1, 2)`` of image 1.
        matches: ``(M, 2)`` index pairs into them, e.g. from :func:`match`.
        model: ``"homography"`` (planes, rotating cameras; transfer error) or
            ``"fundamental"`` (general scenes; Sampson distance).
        threshold: inlier threshold in pixels.
        seed: RANSAC's sampling seed.

    Returns:
        ``(M,)`` bool inlier mask, and the fitted 3x3 float64 model mapping image 0 to image 1
        (``None``, with no inliers, when there are too few matches or no consistent model).

    Raises:
        ValueError: wrong shapes or dtypes, an index out of range, a NaN coordinate, an unknown
            model, a threshold that is not positive.
    """
