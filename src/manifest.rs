//! The manifest: which source files are in the index, by content hash, and which passage
//! ids each produced. Saved atomically; entries are `Pending` while a batch is applied to
//! the two stores and `Committed` after both are durable, which is what crash recovery
//! reads.

use crate::error::{Error, Result};
use crate::filter::Access;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Being written to the stores; not acknowledged to the user.
    Pending,
    /// In both stores, durable.
    Committed,
}

/// One ingested source file, keyed by its document key in [`Manifest::entries`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// sha256 of the file's bytes.
    pub hash: String,
    /// Where the file was read from last.
    pub source: PathBuf,
    pub access: Access,
    pub state: EntryState,
    /// Passage ids this file owns in both stores (empty for duplicates).
    pub passages: Vec<u64>,
    /// Set when the file's bytes equal an already indexed document's: its passages are
    /// that document's, stored once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// Document titles, for listings.
    #[serde(default)]
    pub titles: Vec<String>,
    /// Whether the passages carry BM25 sparse vectors in the vector store (indexes written
    /// before they existed do not, and `qdrant.lexical` re-indexes them on the next ingest).
    #[serde(default)]
    pub sparse: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub entries: BTreeMap<String, Entry>,
    #[serde(skip)]
    path: PathBuf,
}

const VERSION: u32 = 1;

impl Manifest {
    /// Loads `path`, or starts empty when it does not exist yet.
    pub fn load(path: &Path) -> Result<Manifest> {
        let mut manifest = match fs::read(path) {
            Ok(bytes) => serde_json::from_slice::<Manifest>(&bytes).map_err(|e| {
                Error::Index(format!("manifest {} is unreadable: {e}", path.display()))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Manifest {
                version: VERSION,
                ..Default::default()
            },
            Err(e) => return Err(Error::io(path, e)),
        };
        manifest.path = path.to_path_buf();
        Ok(manifest)
    }

    /// Writes the manifest so that a crash leaves either the old or the new file whole.
    pub fn save(&self) -> Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let bytes =
            serde_json::to_vec_pretty(self).map_err(|e| Error::Index(format!("manifest: {e}")))?;
        let mut f = fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&bytes).map_err(|e| Error::io(&tmp, e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &self.path).map_err(|e| Error::io(&self.path, e))?;
        if let Some(dir) = self.path.parent() {
            // The rename is only durable once the directory entry is.
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// The committed document whose bytes hash to `hash`, other than `key` itself.
    pub fn committed_with_hash(&self, hash: &str, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, e)| {
                k.as_str() != key
                    && e.hash == hash
                    && e.state == EntryState::Committed
                    && e.duplicate_of.is_none()
            })
            .map(|(k, _)| k.as_str())
    }

    pub fn pending_keys(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.state == EntryState::Pending)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_atomic_save() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        let mut m = Manifest::load(&path).unwrap();
        assert!(m.entries.is_empty());
        m.entries.insert(
            "a.md".into(),
            Entry {
                hash: "h".into(),
                source: "/x/a.md".into(),
                access: Access::Public,
                state: EntryState::Pending,
                passages: vec![1, 2],
                duplicate_of: None,
                titles: vec!["A".into()],
                sparse: true,
            },
        );
        m.save().unwrap();
        let again = Manifest::load(&path).unwrap();
        assert_eq!(again.entries, m.entries);
        assert_eq!(again.pending_keys(), vec!["a.md".to_string()]);
        assert!(!dir.path().join("manifest.json.tmp").exists());
    }

    #[test]
    fn corrupt_manifest_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("manifest.json");
        fs::write(&path, b"{not json").unwrap();
        let err = Manifest::load(&path).unwrap_err().to_string();
        assert!(err.contains("manifest"), "{err}");
    }
}
