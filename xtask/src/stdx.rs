//! Small helpers the xtask commands share, defined once.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The workspace root (the folder above `xtask/`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The CPU's model name from `/proc/cpuinfo`, else the architecture's name.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            let line = info.lines().find(|l| l.starts_with("model name"))?.to_string();
            Some(line.split_once(':')?.1.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// `old` with what lies between the markers `begin` and `end` replaced by `section` (markers
/// kept, each on its own line); `None` when neither marker is there, an error when only one is
/// or they come in the wrong order.
pub fn replace_between(old: &str, begin: &str, end: &str, section: &str) -> Result<Option<String>> {
    match (old.find(begin), old.find(end)) {
        (None, None) => Ok(None),
        (Some(b), Some(e)) if b < e => {
            Ok(Some(format!("{}\n{}\n{}", &old[..b + begin.len()], section.trim_end(), &old[e..])))
        }
        _ => anyhow::bail!("a broken pair of `{begin}` / `{end}` markers"),
    }
}

/// Writes `bytes` to `path` atomically (see `desdis_stdx::write_atomic`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    desdis_stdx::write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_between_keeps_the_markers_and_the_rest() {
        let old = "head\n<a>\nold\n<b>\ntail\n";
        assert_eq!(
            replace_between(old, "<a>", "<b>", "new\n").unwrap().unwrap(),
            "head\n<a>\nnew\n<b>\ntail\n"
        );
        assert_eq!(replace_between("nothing", "<a>", "<b>", "x").unwrap(), None);
        assert!(replace_between("<b> <a>", "<a>", "<b>", "x").is_err());
        assert!(replace_between("<a> only", "<a>", "<b>", "x").is_err());
    }
}
