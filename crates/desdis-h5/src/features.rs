//! `features.h5` in hloc's layout.
//!
//! One group per image, named by the image's path relative to the image folder; a name with `/`
//! is a nested group path (`seq/1.png` is group `seq` holding group `1.png`), as h5py's
//! `create_group` makes it. An image group holds:
//!
//! | dataset       | shape  | dtype written | read as                          |
//! |---------------|--------|---------------|----------------------------------|
//! | `keypoints`   | (N, 2) | float32       | any float width; required        |
//! | `descriptors` | (D, N) | float32       | any float width; required        |
//! | `scores`      | (N,)   | float32       | any float width; default 0.0     |
//! | `scales`      | (N,)   | float32       | any float width; default 1.0     |
//! | `oris`        | (N,)   | float32       | any float width; default 0.0     |
//! | `image_size`  | (2,)   | int64 (W, H)  | any integer width; required      |
//!
//! `descriptors` is stored transposed (one column per keypoint), as hloc's extractors return
//! them; [`ImageFeatures::descriptors`] is keypoint-major. `image_size` is int64 because hloc
//! stores `np.array(size)` of Python ints. hloc's `as_half` writes the float datasets as float16;
//! those are read (exactly) too. Other datasets and attributes in an image group are ignored.

use std::collections::BTreeMap;
use std::path::Path;

use hdf5_pure::{File, FileBuilder, GroupBuilder};

use crate::h5read::{self, Loc};
use crate::{atomic, Error};

/// Groups nest at most this deep: real names have a few folders, and a bound stops a file whose
/// links form a cycle from walking forever.
const MAX_DEPTH: usize = 64;

/// Dataset names of an image group; an image name component must not collide with them.
const DATASETS: [&str; 6] = ["keypoints", "descriptors", "scores", "scales", "oris", "image_size"];

/// Features of one image, in hloc's conventions.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFeatures {
    /// Keypoint positions in pixels of the original image, (0, 0) at the centre of the top-left
    /// pixel (hloc's convention; COLMAP's is (0.5, 0.5) there).
    pub keypoints: Vec<[f32; 2]>,
    /// Detection scale per keypoint: Gaussian sigma in pixels of the original image.
    /// 1.0 for every keypoint when the file has no `scales`.
    pub scales: Vec<f32>,
    /// Orientation per keypoint in degrees (hloc's `oris`, which is COLMAP's radians converted
    /// with `rad2deg`). 0.0 for every keypoint when the file has no `oris`.
    pub oris: Vec<f32>,
    /// Detection score per keypoint. 0.0 for every keypoint when the file has no `scores`.
    pub scores: Vec<f32>,
    /// `keypoints.len() * dim` values, keypoint-major: row `i` is keypoint `i`'s descriptor.
    pub descriptors: Vec<f32>,
    /// Descriptor dimension D (at least 1).
    pub dim: usize,
    /// (width, height) of the original image in pixels.
    pub image_size: [u32; 2],
}

impl ImageFeatures {
    /// Number of keypoints N.
    pub fn len(&self) -> usize {
        self.keypoints.len()
    }

    /// Whether the image has no keypoints.
    pub fn is_empty(&self) -> bool {
        self.keypoints.is_empty()
    }

    /// Descriptor of keypoint `i` (`dim` values), `None` past the end.
    pub fn descriptor(&self, i: usize) -> Option<&[f32]> {
        let start = i.checked_mul(self.dim)?;
        self.descriptors.get(start..start.checked_add(self.dim)?)
    }

    /// Checks that the per-keypoint vectors agree in length; `Err` says which does not.
    pub fn check(&self) -> Result<(), String> {
        let n = self.keypoints.len();
        for (field, len) in
            [("scales", self.scales.len()), ("oris", self.oris.len()), ("scores", self.scores.len())]
        {
            if len != n {
                return Err(format!("{field} has {len} values for {n} keypoints"));
            }
        }
        if self.dim == 0 {
            return Err("descriptor dimension is 0".into());
        }
        if Some(self.descriptors.len()) != n.checked_mul(self.dim) {
            return Err(format!(
                "descriptors has {} values for {n} keypoints of dimension {}",
                self.descriptors.len(),
                self.dim
            ));
        }
        Ok(())
    }
}

/// Reads every image of a features file, keyed by image name (`seq/1.png` for a nested group).
///
/// A group holding a `keypoints` dataset is an image; groups are walked recursively (an image
/// group may itself hold further image groups). Missing `scores`/`scales`/`oris` are filled with
/// 0.0 / 1.0 / 0.0; a missing `keypoints` (in a group with `descriptors`), `descriptors` or
/// `image_size`, a shape that does not fit, a non-float keypoint or descriptor dtype, or a
/// truncated file is an [`Error`] naming the file, the group and the dataset.
pub fn read_features(path: &Path) -> Result<BTreeMap<String, ImageFeatures>, Error> {
    let file = h5read::open(path)?;
    let mut out = BTreeMap::new();
    for name in image_groups(path, &file)? {
        let features = read_image(path, &file, &name)?;
        out.insert(name, features);
    }
    Ok(out)
}

/// The image names in a features file, sorted, without reading any keypoints or descriptors
/// (the file is opened for streaming, so only metadata is read).
pub fn feature_names(path: &Path) -> Result<Vec<String>, Error> {
    let file = File::open_streaming(path)
        .map_err(|source| Error::Open { path: path.to_path_buf(), source: Box::new(source) })?;
    image_groups(path, &file)
}

/// Paths of all image groups, sorted.
fn image_groups(path: &Path, file: &File) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    walk(path, &file.root(), "", 0, &mut names)?;
    names.sort();
    Ok(names)
}

fn walk(
    path: &Path,
    group: &hdf5_pure::Group,
    group_path: &str,
    depth: usize,
    names: &mut Vec<String>,
) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(Error::Layout {
            path: path.to_path_buf(),
            message: format!("groups nest deeper than {MAX_DEPTH} levels at `{group_path}`"),
        });
    }
    let (groups, datasets) = h5read::children(path, group_path, group)?;
    let has = |name: &str| datasets.iter().any(|d| d == name);
    if depth > 0 {
        if has("keypoints") {
            names.push(group_path.to_string());
        } else if has("descriptors") {
            // Descriptors without keypoints: an image group missing its keypoints, not a folder.
            let loc = Loc { path, group: group_path, dataset: "keypoints" };
            return Err(loc.missing());
        }
    }
    for child in groups {
        let child_path = join(group_path, &child);
        let sub = h5read::subgroup(path, &child_path, group, &child)?;
        walk(path, &sub, &child_path, depth + 1, names)?;
    }
    Ok(())
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}/{child}")
    }
}

/// Reads the image group `name`.
fn read_image(path: &Path, file: &File, name: &str) -> Result<ImageFeatures, Error> {
    let group = file.group(name).map_err(|source| Error::Group {
        path: path.to_path_buf(),
        group: name.to_string(),
        source: Box::new(source),
    })?;
    let (_, datasets) = h5read::children(path, name, &group)?;
    let reader = ImageReader { path, name, group: &group, datasets: &datasets, file_size: file.file_size() };
    let keypoints = reader.keypoints()?;
    let n = keypoints.len();
    let (descriptors, dim) = reader.descriptors(n)?;
    Ok(ImageFeatures {
        keypoints,
        scales: reader.per_keypoint("scales", n, 1.0)?,
        oris: reader.per_keypoint("oris", n, 0.0)?,
        scores: reader.per_keypoint("scores", n, 0.0)?,
        descriptors,
        dim,
        image_size: reader.image_size()?,
    })
}

/// The datasets of one image group.
struct ImageReader<'a> {
    path: &'a Path,
    name: &'a str,
    group: &'a hdf5_pure::Group,
    datasets: &'a [String],
    file_size: u64,
}

impl ImageReader<'_> {
    fn loc<'b>(&'b self, dataset: &'b str) -> Loc<'b> {
        Loc { path: self.path, group: self.name, dataset }
    }

    /// Opens `dataset` and checks its size, `None` when absent.
    fn open(&self, dataset: &str) -> Result<Option<(hdf5_pure::Dataset, Vec<u64>)>, Error> {
        let loc = self.loc(dataset);
        match h5read::dataset_opt(loc, self.group, self.datasets)? {
            Some(ds) => {
                let shape = h5read::checked_shape(loc, &ds, self.file_size)?;
                Ok(Some((ds, shape)))
            }
            None => Ok(None),
        }
    }

    fn require(&self, dataset: &str) -> Result<(hdf5_pure::Dataset, Vec<u64>), Error> {
        self.open(dataset)?.ok_or_else(|| self.loc(dataset).missing())
    }

    fn keypoints(&self) -> Result<Vec<[f32; 2]>, Error> {
        let loc = self.loc("keypoints");
        let (ds, shape) = self.require("keypoints")?;
        if !matches!(shape.as_slice(), [_, 2]) {
            return Err(loc.bad(format!("expected shape (N, 2), found {shape:?}")));
        }
        let values = h5read::read_floats(loc, &ds)?;
        Ok(values.chunks_exact(2).map(|p| [p[0], p[1]]).collect())
    }

    /// The descriptors, transposed from the stored (D, N) to keypoint-major, and D.
    fn descriptors(&self, n: usize) -> Result<(Vec<f32>, usize), Error> {
        let loc = self.loc("descriptors");
        let (ds, shape) = self.require("descriptors")?;
        let dim = match shape.as_slice() {
            &[d, cols] if cols == n as u64 && d > 0 => d as usize,
            _ => {
                return Err(loc.bad(format!(
                    "expected shape (D, N) with D >= 1 and N = {n} (the keypoints), found {shape:?}"
                )))
            }
        };
        let stored = h5read::read_floats(loc, &ds)?;
        if stored.len() != dim * n {
            return Err(loc.bad(format!("read {} values for shape {shape:?}", stored.len())));
        }
        let mut out = vec![0.0; stored.len()];
        for (d, row) in stored.chunks_exact(n.max(1)).enumerate().take(dim) {
            for (i, &v) in row.iter().enumerate() {
                out[i * dim + d] = v;
            }
        }
        Ok((out, dim))
    }

    /// A (N,) float dataset, or `default` for every keypoint when absent.
    fn per_keypoint(&self, dataset: &str, n: usize, default: f32) -> Result<Vec<f32>, Error> {
        let loc = self.loc(dataset);
        let Some((ds, shape)) = self.open(dataset)? else {
            return Ok(vec![default; n]);
        };
        if shape.as_slice() != [n as u64] {
            return Err(loc.bad(format!("expected shape ({n},), found {shape:?}")));
        }
        let values = h5read::read_floats(loc, &ds)?;
        if values.len() != n {
            return Err(loc.bad(format!("read {} values for shape {shape:?}", values.len())));
        }
        Ok(values)
    }

    fn image_size(&self) -> Result<[u32; 2], Error> {
        let loc = self.loc("image_size");
        let (ds, shape) = self.require("image_size")?;
        if shape.as_slice() != [2] {
            return Err(loc.bad(format!("expected shape (2,) = (W, H), found {shape:?}")));
        }
        let values = h5read::read_ints(loc, &ds)?;
        let size: Vec<u32> = values.iter().filter_map(|&v| u32::try_from(v).ok()).collect();
        match size.as_slice() {
            &[w, h] => Ok([w, h]),
            _ => Err(loc.bad(format!("expected two sizes in 0..2^32, found {values:?}"))),
        }
    }
}

/// Writes `features` to `path` in hloc's layout (float32 datasets, int64 `image_size`),
/// atomically: the file appears complete under `path` or not at all.
///
/// Image names must be non-empty relative paths with non-empty components other than `.`/`..`;
/// a component may not be one of the dataset names of an image that is its parent group.
pub fn write_features(path: &Path, features: &BTreeMap<String, ImageFeatures>) -> Result<(), Error> {
    let mut tree = Node::default();
    for (name, image) in features {
        image.check().map_err(|m| Error::invalid(path, format!("image `{name}`"), m))?;
        tree.insert(path, name, image)?;
    }
    let mut builder = FileBuilder::new();
    for (name, child) in &tree.children {
        let mut group = builder.create_group(name);
        child.build(&mut group);
        builder.add_group(group.finish());
    }
    let bytes = builder
        .finish()
        .map_err(|source| Error::Encode { path: path.to_path_buf(), source: Box::new(source) })?;
    atomic::write_atomic(path, &bytes)
}

/// The group tree to write: each node a group, holding an image's datasets or not.
#[derive(Default)]
struct Node<'a> {
    image: Option<&'a ImageFeatures>,
    children: BTreeMap<String, Node<'a>>,
}

impl<'a> Node<'a> {
    fn insert(&mut self, path: &Path, name: &str, image: &'a ImageFeatures) -> Result<(), Error> {
        let what = || format!("image name `{name}`");
        let components = name_components(name).map_err(|m| Error::invalid(path, what(), m))?;
        let mut node = self;
        for component in components {
            if node.image.is_some() && DATASETS.contains(&component) {
                return Err(Error::invalid(path, what(), "collides with a dataset of its parent image"));
            }
            node = node.children.entry(component.to_string()).or_default();
        }
        if node.children.keys().any(|c| DATASETS.contains(&c.as_str())) {
            return Err(Error::invalid(path, what(), "has a child image named like a dataset"));
        }
        node.image = Some(image);
        Ok(())
    }

    fn build(&self, group: &mut GroupBuilder) {
        if let Some(image) = self.image {
            write_image(group, image);
        }
        for (name, child) in &self.children {
            let mut sub = group.create_group(name);
            child.build(&mut sub);
            group.add_group(sub.finish());
        }
    }
}

/// Splits an image name into group names, rejecting what HDF5 or h5py would misread.
pub(crate) fn name_components(name: &str) -> Result<Vec<&str>, String> {
    let components: Vec<&str> = name.split('/').collect();
    if components.iter().any(|c| c.is_empty() || *c == "." || *c == "..") {
        return Err("must be a relative path without empty, `.` or `..` components".into());
    }
    Ok(components)
}

fn write_image(group: &mut GroupBuilder, image: &ImageFeatures) {
    let n = image.len() as u64;
    let dim = image.dim;
    let flat: Vec<f32> = image.keypoints.iter().flatten().copied().collect();
    group.create_dataset("keypoints").with_f32_data(&flat).with_shape(&[n, 2]);
    group
        .create_dataset("descriptors")
        .with_f32_data(&transpose(&image.descriptors, image.len(), dim))
        .with_shape(&[dim as u64, n]);
    group.create_dataset("scores").with_f32_data(&image.scores).with_shape(&[n]);
    group.create_dataset("scales").with_f32_data(&image.scales).with_shape(&[n]);
    group.create_dataset("oris").with_f32_data(&image.oris).with_shape(&[n]);
    let size = [i64::from(image.image_size[0]), i64::from(image.image_size[1])];
    group.create_dataset("image_size").with_i64_data(&size).with_shape(&[2]);
}

/// Keypoint-major (N, D) to hloc's (D, N).
fn transpose(descriptors: &[f32], n: usize, dim: usize) -> Vec<f32> {
    let mut out = vec![0.0; descriptors.len()];
    for (i, row) in descriptors.chunks_exact(dim).enumerate() {
        for (d, &v) in row.iter().enumerate() {
            out[d * n + i] = v;
        }
    }
    out
}
