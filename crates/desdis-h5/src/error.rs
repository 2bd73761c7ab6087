//! The one error type of this crate: every variant names the file and, where one is involved,
//! the group and the dataset, so that a bad file from another tool can be found and fixed.

use std::path::PathBuf;

/// What went wrong reading, writing or exporting features and matches.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or parsed as HDF5 (missing, truncated, not HDF5).
    #[error("{}: cannot open as HDF5: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// What the HDF5 reader said.
        #[source]
        source: Box<hdf5_pure::Error>,
    },
    /// A group could not be listed or opened (corrupt metadata).
    #[error("{}: group `{group}`: {source}", path.display())]
    Group {
        /// The file.
        path: PathBuf,
        /// The group's path inside the file (`""` for the root).
        group: String,
        /// What the HDF5 reader said.
        #[source]
        source: Box<hdf5_pure::Error>,
    },
    /// A dataset the layout requires is absent from a group.
    #[error("{}: group `{group}` has no dataset `{dataset}`", path.display())]
    MissingDataset {
        /// The file.
        path: PathBuf,
        /// The group's path inside the file.
        group: String,
        /// The dataset that was expected.
        dataset: String,
    },
    /// A dataset exists but its shape, datatype, size or values do not fit the layout.
    #[error("{}: dataset `{group}/{dataset}`: {message}", path.display())]
    BadDataset {
        /// The file.
        path: PathBuf,
        /// The group's path inside the file.
        group: String,
        /// The dataset's name inside the group.
        dataset: String,
        /// What is wrong with it.
        message: String,
    },
    /// A dataset's data could not be read (truncated or corrupt storage).
    #[error("{}: dataset `{group}/{dataset}`: cannot read: {source}", path.display())]
    ReadDataset {
        /// The file.
        path: PathBuf,
        /// The group's path inside the file.
        group: String,
        /// The dataset's name inside the group.
        dataset: String,
        /// What the HDF5 reader said.
        #[source]
        source: Box<hdf5_pure::Error>,
    },
    /// The file's group tree does not follow the layout (e.g. a pair group without a subgroup).
    #[error("{}: {message}", path.display())]
    Layout {
        /// The file.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
    /// The data handed to a writer is inconsistent (lengths, names, dimensions).
    #[error("cannot write {}: {what}: {message}", path.display())]
    InvalidInput {
        /// The file (or folder) that was to be written.
        path: PathBuf,
        /// The image name, pair or field at fault.
        what: String,
        /// What is wrong with it.
        message: String,
    },
    /// The HDF5 encoder refused the data.
    #[error("{}: cannot encode HDF5: {source}", path.display())]
    Encode {
        /// The file that was to be written.
        path: PathBuf,
        /// What the HDF5 writer said.
        #[source]
        source: Box<hdf5_pure::Error>,
    },
    /// Reading or writing the file system failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// An [`Error::InvalidInput`] for `path`.
    pub(crate) fn invalid(
        path: &std::path::Path,
        what: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Error::InvalidInput { path: path.to_path_buf(), what: what.into(), message: message.into() }
    }

    /// An [`Error::Io`] for `path`.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io { path: path.to_path_buf(), source }
    }
}
