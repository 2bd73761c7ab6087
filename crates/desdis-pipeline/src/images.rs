//! Finding the images of a folder, named by their path relative to it (with `/`).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// File extensions read as images (lowercase).
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "ppm", "pgm", "pnm", "pbm"];

/// The images under `root`, and the other files that were passed over.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageList {
    /// (name, path) pairs in name order; the name is the path relative to `root` with `/`
    /// separators, or the file name when `root` is a file.
    pub images: Vec<(String, PathBuf)>,
    /// Files without an image extension.
    pub skipped: Vec<PathBuf>,
}

/// Lists `root`: a single image file, or a folder walked recursively (symbolic links to folders
/// are not followed, so a link loop cannot make the walk endless).
pub fn list_images(root: &Path) -> Result<ImageList> {
    let meta = std::fs::metadata(root).map_err(|source| Error::Walk { path: root.to_path_buf(), source })?;
    let mut list = ImageList::default();
    if meta.is_file() {
        let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        list.images.push((name, root.to_path_buf()));
        return Ok(list);
    }
    walk(root, root, &mut list)?;
    list.images.sort();
    list.skipped.sort();
    Ok(list)
}

fn walk(root: &Path, dir: &Path, list: &mut ImageList) -> Result<()> {
    let walk_err = |source| Error::Walk { path: dir.to_path_buf(), source };
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).map_err(walk_err)?.collect::<Result<_, _>>().map_err(walk_err)?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type().map_err(walk_err)?;
        if kind.is_dir() {
            walk(root, &path, list)?;
        } else if is_image_name(&path) && (kind.is_file() || path.is_file()) {
            list.images.push((relative_name(root, &path), path));
        } else {
            list.skipped.push(path);
        }
    }
    Ok(())
}

fn is_image_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

fn relative_name(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_walked_and_other_files_skipped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("seq")).unwrap();
        for f in ["b.PNG", "seq/1.ppm", "seq/H_1_2", "notes.txt"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        let list = list_images(dir.path()).unwrap();
        let names: Vec<&str> = list.images.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["b.PNG", "seq/1.ppm"]);
        assert_eq!(list.skipped.len(), 2);
        let single = list_images(&dir.path().join("seq/1.ppm")).unwrap();
        assert_eq!(single.images[0].0, "1.ppm");
    }
}
