//! `desdis.Describer`: a descriptor net, describing patches and extracting image features.

use std::path::PathBuf;

use candle_core::Device;
use desdis_detect::{load_image, DetectConfig, LoadedImage};
use desdis_eval::describe_f32;
use desdis_models::arch::Arch;
use desdis_models::device::select_device;
use desdis_models::nets::Net;
use desdis_pipeline::{load_describer, Extractor};
use numpy::ndarray::Array2;
use numpy::{IntoPyArray, PyArray1, PyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::arrays::{read, untyped};
use crate::errors::{Failure, IntoPyResult, Result};
use crate::inputs::{image_to_plane, patches_to_unit};

/// Patches per forward pass, as the CLI runs them.
const BATCH: usize = 512;

/// A descriptor net loaded once, used for any number of calls (from any thread).
#[pyclass(frozen, module = "desdis")]
pub struct Describer {
    extractor: Extractor,
}

/// What `extract` reads: a file, or pixels already converted to a gray plane.
enum ImageSource {
    File(PathBuf),
    Pixels(LoadedImage),
}

/// Image features in the conventions of the features files (original image pixels).
struct Features {
    keypoints: Vec<f32>,
    descriptors: Vec<f32>,
    scores: Vec<f32>,
    scales: Vec<f32>,
    oris: Vec<f32>,
    image_size: [u32; 2],
}

#[pymethods]
impl Describer {
    #[new]
    #[pyo3(signature = (weights=None, arch=None, device="cpu"))]
    fn new(py: Python<'_>, weights: Option<PathOrStr>, arch: Option<&str>, device: &str) -> PyResult<Self> {
        let weights = weights.map(|w| w.0);
        let arch = arch.map(|a| Arch::parse(a).map_err(Failure::from)).transpose().py(py)?;
        let device = device.to_string();
        let extractor = py.detach(move || load(weights.as_deref(), arch, &device)).py(py)?;
        Ok(Describer { extractor })
    }

    /// The architecture's name (`desdis-32`, `hardnet`, ...).
    #[getter]
    fn arch(&self) -> String {
        self.extractor.net().arch().to_string()
    }

    /// Floats per descriptor.
    #[getter]
    fn descriptor_size(&self) -> usize {
        self.extractor.net().arch().descriptor_size()
    }

    fn __repr__(&self) -> String {
        format!("Describer(arch={:?}, descriptor_size={})", self.arch(), self.descriptor_size())
    }

    /// Descriptors `(N, D)` float32 of `(N,H,W)` or `(N,1,H,W)` patches.
    #[pyo3(signature = (patches, batch_size=BATCH))]
    fn describe<'py>(
        &self,
        py: Python<'py>,
        patches: &Bound<'py, PyAny>,
        batch_size: usize,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let owned = read(patches, "patches", &["uint8", "float32"]).py(py)?;
        let net = self.extractor.net();
        let (values, n) = py.detach(|| describe(net, owned, batch_size)).py(py)?;
        to_matrix(py, values, n, self.descriptor_size())
    }

    /// Keypoints and descriptors of an image file or array.
    #[pyo3(signature = (image, max_keypoints=2000, upright=false, max_size=None))]
    fn extract<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
        max_keypoints: usize,
        upright: bool,
        max_size: Option<u32>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let source = image_source(image).py(py)?;
        let cfg = DetectConfig { max_keypoints, upright, ..DetectConfig::default() };
        let extractor = &self.extractor;
        let features = py.detach(|| extract(extractor, source, &cfg, max_size)).py(py)?;
        features_dict(py, features, self.descriptor_size())
    }
}

/// A weights argument: a `str` (path or `hf://` source) or an `os.PathLike`.
pub struct PathOrStr(String);

impl<'a, 'py> FromPyObject<'a, 'py> for PathOrStr {
    type Error = PyErr;

    fn extract(obj: pyo3::Borrowed<'a, 'py, PyAny>) -> PyResult<Self> {
        // `hf://org/repo/file` must stay a string: as a path its `//` would be folded.
        if let Ok(text) = obj.extract::<String>() {
            return Ok(PathOrStr(text));
        }
        let path: PathBuf = obj.extract()?;
        Ok(PathOrStr(path.to_string_lossy().into_owned()))
    }
}

fn load(weights: Option<&str>, arch: Option<Arch>, device: &str) -> Result<Extractor> {
    let device: Device = select_device(Some(device))?;
    let net = load_describer(weights, arch, &device)?;
    Ok(Extractor::new(net, DetectConfig::default(), BATCH)?)
}

fn describe(net: &Net, patches: crate::arrays::Owned, batch: usize) -> Result<(Vec<f32>, usize)> {
    let unit = patches_to_unit(patches)?;
    let n = unit.len() / desdis_data::patch::PATCH_LEN;
    let values = describe_f32(net, &unit, batch, net.device(), |_| ())?;
    Ok((values, n))
}

/// A path (`str` or `os.PathLike`) or a numpy image, read with the GIL held.
fn image_source(image: &Bound<'_, PyAny>) -> Result<ImageSource> {
    if untyped(image, "image").is_ok() {
        let owned = read(image, "image", &["uint8", "uint16", "float32"])?;
        let loaded = LoadedImage::from_plane(image_to_plane(owned)?)?;
        return Ok(ImageSource::Pixels(loaded));
    }
    match image.extract::<PathBuf>() {
        Ok(path) => Ok(ImageSource::File(path)),
        Err(_) => Err(Failure::type_error(format!(
            "image: expected a path or a numpy array, got {}",
            image.get_type().name().map(|n| n.to_string()).unwrap_or_else(|_| "?".into())
        ))),
    }
}

/// Detect, cut, describe: the pipeline's own extraction, so the result is `desdis extract`'s.
fn extract(
    extractor: &Extractor,
    source: ImageSource,
    cfg: &DetectConfig,
    max_size: Option<u32>,
) -> Result<Features> {
    let (image, name) = match source {
        ImageSource::File(path) => (load_image(&path, max_size)?, path.display().to_string()),
        ImageSource::Pixels(image) => (image.fit(max_size)?, "image".to_string()),
    };
    let f = extractor.extract_with(&image, cfg).map_err(|e| match e {
        desdis_pipeline::Error::NonFinite(_) => desdis_pipeline::Error::NonFinite(name),
        other => other,
    })?;
    Ok(Features {
        keypoints: f.keypoints.iter().flatten().copied().collect(),
        descriptors: f.descriptors,
        scores: f.scores,
        scales: f.scales,
        oris: f.oris,
        image_size: f.image_size,
    })
}

/// A row-major `(rows, cols)` float32 array.
pub fn to_matrix<'py, T: numpy::Element>(
    py: Python<'py>,
    values: Vec<T>,
    rows: usize,
    cols: usize,
) -> PyResult<Bound<'py, PyArray2<T>>> {
    let matrix = Array2::from_shape_vec((rows, cols), values)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("internal shape error: {e}")))?;
    Ok(matrix.into_pyarray(py))
}

fn features_dict(py: Python<'_>, f: Features, dim: usize) -> PyResult<Bound<'_, PyDict>> {
    let n = f.scores.len();
    let dict = PyDict::new(py);
    dict.set_item("keypoints", to_matrix(py, f.keypoints, n, 2)?)?;
    dict.set_item("descriptors", to_matrix(py, f.descriptors, n, dim)?)?;
    dict.set_item("scores", PyArray1::from_vec(py, f.scores))?;
    dict.set_item("scales", PyArray1::from_vec(py, f.scales))?;
    dict.set_item("oris", PyArray1::from_vec(py, f.oris))?;
    let size: Vec<i64> = f.image_size.iter().map(|&v| i64::from(v)).collect();
    dict.set_item("image_size", PyArray1::from_vec(py, size))?;
    Ok(dict)
}
