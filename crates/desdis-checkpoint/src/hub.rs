//! `hf://org/repo[@revision]/path/in/repo` sources, resolved through the Hugging Face hub cache.

use std::path::{Path, PathBuf};

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};

use crate::{Error, Result};

/// The scheme prefix of hub sources.
pub const HF_SCHEME: &str = "hf://";
const DEFAULT_REVISION: &str = "main";

/// A parsed `hf://org/repo[@revision]/path/in/repo` source (a model repository).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSource {
    /// `org/repo`.
    pub repo: String,
    /// Branch, tag or commit hash; `main` when the source names none.
    pub revision: String,
    /// Path of the file inside the repository.
    pub file: String,
}

impl HubSource {
    /// Parses `source`; revisions containing `/` are not expressible in this syntax.
    pub fn parse(source: &str) -> Result<Self> {
        let invalid = |why: &str| {
            Error::checkpoint(
                source,
                format!("invalid hub source ({why}); expected hf://org/repo[@revision]/path/in/repo"),
            )
        };
        let rest = source.strip_prefix(HF_SCHEME).ok_or_else(|| invalid("missing hf:// prefix"))?;
        let mut parts = rest.splitn(3, '/');
        let (org, repo_rev, file) = match (parts.next(), parts.next(), parts.next()) {
            (Some(org), Some(repo_rev), Some(file)) => (org, repo_rev, file),
            _ => return Err(invalid("needs an org, a repo and a file path")),
        };
        let (name, revision) = match repo_rev.split_once('@') {
            Some((name, revision)) => (name, revision),
            None => (repo_rev, DEFAULT_REVISION),
        };
        if !is_safe_component(org) || !is_safe_component(name) || !is_safe_component(revision) {
            return Err(invalid("org, repo and revision must be non-empty names without `/` or `..`"));
        }
        // The file path is joined under the cache directory: it must not climb out of it.
        if !file.split('/').all(is_safe_component) {
            return Err(invalid("the file path must be relative, without empty, `.` or `..` parts"));
        }
        Ok(HubSource {
            repo: format!("{org}/{name}"),
            revision: revision.to_string(),
            file: file.to_string(),
        })
    }

    fn hub_repo(&self) -> Repo {
        Repo::with_revision(self.repo.clone(), RepoType::Model, self.revision.clone())
    }
}

fn is_safe_component(part: &str) -> bool {
    !part.is_empty() && part != "." && part != ".." && !part.contains(['/', '\\'])
}

/// The hub cache directory from the environment: `HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `~/.cache/huggingface/hub`. `None` when not even a home directory is known.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = non_empty_env("HF_HUB_CACHE") {
        return Some(PathBuf::from(dir));
    }
    if let Some(home) = non_empty_env("HF_HOME") {
        return Some(PathBuf::from(home).join("hub"));
    }
    let home = non_empty_env("HOME").or_else(|| non_empty_env("USERPROFILE"))?;
    Some(PathBuf::from(home).join(".cache").join("huggingface").join("hub"))
}

fn non_empty_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Whether `HF_HUB_OFFLINE` asks to stay off the network.
fn offline_from_env() -> bool {
    non_empty_env("HF_HUB_OFFLINE")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

/// The local path of `source`: a plain path is returned as is; an `hf://` source is looked up in
/// the hub cache (`cache_dir`, else [`default_cache_dir`]) and downloaded into it when absent,
/// unless `HF_HUB_OFFLINE` is set. A cached file is used without contacting the hub, like
/// `hf_hub`'s own `get`.
pub fn resolve(source: &str, cache_dir: Option<&Path>) -> Result<PathBuf> {
    if !source.starts_with(HF_SCHEME) {
        return Ok(PathBuf::from(source));
    }
    let hub_source = HubSource::parse(source)?;
    let cache = match cache_dir {
        Some(dir) => dir.to_path_buf(),
        None => default_cache_dir().ok_or_else(|| {
            Error::checkpoint(source, "no hub cache directory: set HF_HUB_CACHE, HF_HOME or HOME")
        })?,
    };
    if let Some(path) = find_in_cache(&hub_source, &cache) {
        return Ok(path);
    }
    if offline_from_env() {
        return Err(not_cached(source, &hub_source, &cache, "HF_HUB_OFFLINE is set"));
    }
    download(&hub_source, &cache)
        .map_err(|e| not_cached(source, &hub_source, &cache, &format!("download failed: {e}")))
}

/// Like [`resolve`] for an `hf://` source, but only ever looks in the hub cache at `cache_dir`.
pub fn resolve_in_cache(source: &str, cache_dir: &Path) -> Result<PathBuf> {
    let hub_source = HubSource::parse(source)?;
    find_in_cache(&hub_source, cache_dir)
        .ok_or_else(|| not_cached(source, &hub_source, cache_dir, "looked in the cache only"))
}

/// Finds the file in the hub cache layout `models--org--repo/{refs/<rev>, snapshots/<commit>/<file>}`.
fn find_in_cache(source: &HubSource, cache_dir: &Path) -> Option<PathBuf> {
    let repo = source.hub_repo();
    if let Some(path) = Cache::new(cache_dir.to_path_buf()).repo(repo.clone()).get(&source.file) {
        return Some(path);
    }
    // `Cache` reads `refs/<rev>` verbatim and knows no commit-hash revisions; accept a ref with
    // trailing whitespace, and a revision that is itself a snapshot's commit.
    let repo_dir = cache_dir.join(repo.folder_name());
    let commit = std::fs::read_to_string(repo_dir.join("refs").join(&source.revision))
        .map(|text| text.trim().to_string())
        .unwrap_or_else(|_| source.revision.clone());
    if !is_safe_component(&commit) {
        return None;
    }
    let path = repo_dir.join("snapshots").join(commit).join(&source.file);
    path.is_file().then_some(path)
}

fn download(
    source: &HubSource,
    cache_dir: &Path,
) -> std::result::Result<PathBuf, hf_hub::api::sync::ApiError> {
    let mut builder = ApiBuilder::from_cache(Cache::new(cache_dir.to_path_buf())).with_progress(false);
    if let Some(endpoint) = non_empty_env("HF_ENDPOINT") {
        builder = builder.with_endpoint(endpoint);
    }
    builder.build()?.repo(source.hub_repo()).get(&source.file)
}

fn not_cached(source: &str, hub_source: &HubSource, cache_dir: &Path, why: &str) -> Error {
    Error::checkpoint(
        source,
        format!(
            "file `{}` of repo `{}` at revision `{}` is not in the hub cache {} ({why})",
            hub_source.file,
            hub_source.repo,
            hub_source.revision,
            cache_dir.display()
        ),
    )
}
