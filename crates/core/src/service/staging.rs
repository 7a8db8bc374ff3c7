//! Staging files: where an upload's bytes land while they are hashed and checked. A staged file
//! is removed on drop unless the blob store has taken it, so a failed or aborted upload leaves
//! nothing behind; a crash leaves files that [`sweep`] removes at the next start.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::io::AsyncWriteExt;

use crate::Result;
use crate::id::random_bytes;

/// A temp file in the staging folder, deleted on drop.
pub struct StagedFile {
    path: PathBuf,
    file: Option<tokio::fs::File>,
}

impl StagedFile {
    /// Creates a new, uniquely named file in `dir`.
    pub async fn create(dir: &Path) -> Result<Self> {
        let path = dir.join(format!("upload-{}.part", hex::encode(random_bytes::<12>())));
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .await?;
        Ok(StagedFile {
            path,
            file: Some(file),
        })
    }

    /// Appends bytes.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        if let Some(file) = self.file.as_mut() {
            file.write_all(chunk).await?;
        }
        Ok(())
    }

    /// Flushes and fsyncs the file so its bytes are durable before anything refers to them.
    pub async fn finish(&mut self) -> Result<()> {
        if let Some(mut file) = self.file.take() {
            file.flush().await?;
            file.sync_all().await?;
        }
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        // The store moves the file away on success, so NotFound here is the normal case.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The files in `dir` last written before `cutoff`, the leftovers of a process that died there
/// while another may be writing new files beside them; removed when `remove` is set.
pub fn leftovers(dir: &Path, cutoff: SystemTime, remove: bool) -> Result<Vec<PathBuf>> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let mut found = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if gone(&e) => return Ok(found),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) if gone(&e) => continue,
            Err(e) => return Err(e.into()),
        };
        if !meta.is_file() || meta.modified()? >= cutoff {
            continue;
        }
        if remove {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => {}
                Err(e) if gone(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        found.push(entry.path());
    }
    Ok(found)
}

/// Removes every file left in the staging folder by a previous process; returns how many.
pub fn sweep(dir: &Path) -> Result<u64> {
    std::fs::create_dir_all(dir)?;
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() {
            std::fs::remove_file(&path)?;
            removed += 1;
        }
    }
    Ok(removed)
}
