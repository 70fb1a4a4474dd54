//! A local directory standing in for S3: the same keys, as paths.
//!
//! A key is only ever a path *under* the directory. Settings are validated so that keys never
//! hold `.`, `..` or empty segments (`EKS_AUDIT_PREFIX`, `EKS_AUDIT_SOURCE_NAME`), and the other
//! segments are made key-safe by the core; as defence in depth, [`LocalDir::put`] refuses any
//! key that would resolve elsewhere instead of trusting that.

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

    /// Where `key` is written (for logs and responses; [`LocalDir::put`] checks the key first).
    pub(crate) fn path_of(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Writes the object whole: a temporary `.partial` file, then a rename over the final path.
    pub async fn put(&self, object: &Object) -> Result<(), SinkError> {
        check_key(&object.key).map_err(|reason| SinkError::UnsafeKey {
            root: self.root.display().to_string(),
            key: object.key.clone(),
            reason,
        })?;
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

/// Whether `key`, joined to the root, names a file strictly below it. `Path::join` replaces the
/// root with an absolute key, and `..` climbs out of it; `.` and empty segments are refused as
/// well, since S3 would keep them as distinct keys that a file system folds together.
fn check_key(key: &str) -> Result<(), &'static str> {
    if key.is_empty() {
        return Err("the key is empty");
    }
    if key.starts_with('/') || Path::new(key).is_absolute() {
        return Err("the key is an absolute path");
    }
    if key.contains('\0') {
        return Err("the key holds a NUL byte");
    }
    for segment in key.split('/') {
        match segment {
            "" => return Err("the key has an empty segment (`//` or a trailing `/`)"),
            "." | ".." => return Err("the key has a `.` or `..` segment"),
            _ => {}
        }
    }
    Ok(())
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(key: &str) -> Object {
        Object {
            key: key.to_owned(),
            body: b"body".to_vec(),
            lines: 1,
            first_event_time: None,
            last_event_time: None,
        }
    }

    #[tokio::test]
    async fn keys_that_would_leave_the_directory_are_refused_and_nothing_is_written() {
        let parent = tempfile::tempdir().unwrap();
        let root = parent.path().join("out");
        let dir = LocalDir::new(&root);
        let outside = parent.path().join("escaped.json.gz");
        for key in [
            "../escaped.json.gz",
            "a/../../escaped.json.gz",
            parent.path().join("escaped.json.gz").to_str().unwrap(),
            "/tmp/escaped.json.gz",
            "a//b.json.gz",
            "./b.json.gz",
            "a/./b.json.gz",
            "a/",
            "",
        ] {
            let error = dir.put(&object(key)).await.expect_err(key);
            assert!(
                matches!(error, SinkError::UnsafeKey { .. }),
                "{key:?}: {error}"
            );
            assert!(error.to_string().contains("refusing"), "{error}");
        }
        assert!(!outside.exists(), "nothing written outside the root");
        assert!(!root.exists(), "nor inside it");
    }

    #[tokio::test]
    async fn ordinary_keys_are_written_below_the_root() {
        let parent = tempfile::tempdir().unwrap();
        let dir = LocalDir::new(parent.path());
        let key = "eks-audit/cluster=prod/dt=2024-05-21/hour=13/s..x-1.json.gz";
        dir.put(&object(key)).await.unwrap();
        assert_eq!(std::fs::read(parent.path().join(key)).unwrap(), b"body");
    }
}
