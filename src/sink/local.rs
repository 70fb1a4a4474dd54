//! A local directory standing in for S3: the same keys, as paths.

use std::path::{Path, PathBuf};

use super::SinkError;
use eks_audit_core::batch::objects::Object;

/// A local directory standing in for a bucket: each object key is a path under the root.
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// A directory rooted at `root`, created as objects are written.
    pub fn new(root: impl Into<PathBuf>) -> LocalDir {
        LocalDir { root: root.into() }
    }

    pub(crate) fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Writes the object whole: a temporary `.partial` file, then a rename over the final path.
    pub async fn put(&self, object: &Object) -> Result<(), SinkError> {
        let path = self.path_of(&object.key);
        let error = |source| SinkError::Local {
            path: path.display().to_string(),
            source,
        };
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(error)?;
        }
        // Write then rename, so a reader never sees half an object.
        let partial = partial_path(&path);
        tokio::fs::write(&partial, &object.body)
            .await
            .map_err(error)?;
        tokio::fs::rename(&partial, &path).await.map_err(error)
    }
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}
