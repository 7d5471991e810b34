//! What the end-to-end tests share: where the corpus and the asset cache are, and the
//! `anjeon` binary set up to use a data directory and nothing else of the environment.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The shared corpus (`../shared/corpus/docs`); tests copy from it, never into it.
pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/docs")
}

pub fn cache_dir() -> PathBuf {
    std::env::var_os("ANJEON_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache"))
}

/// `anjeon` on `data`, with the shared cache and no configuration from outside.
pub fn anjeon(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_anjeon"));
    cmd.env("ANJEON_DATA_DIR", data)
        .env("ANJEON_CACHE_DIR", cache_dir())
        .env_remove("ANJEON_CONFIG")
        .env_remove("ANJEON_QDRANT_URL")
        .env_remove("ANJEON_ANSWER_MODE")
        .current_dir(data.parent().unwrap_or(data));
    cmd
}
