//! End-to-end test of the OpenAI-compatible API: starts `anjeon serve` on a free port with the
//! real default model and drives it with the official `openai` Python SDK (installed from
//! PyPI into the asset cache on first use).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The SDK release the test is written against.
const OPENAI_SDK: &str = "openai==3.54.0";

fn cache_dir() -> PathBuf {
    std::env::var_os("ANJEON_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache"))
}

/// A server process that is killed when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_server(data: &Path) -> (Server, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_anjeon"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("ANJEON_DATA_DIR", data)
        .env("ANJEON_CACHE_DIR", cache_dir())
        .env("ANJEON_LLM_THREADS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start anjeon serve");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .trim()
        .strip_prefix("anjeon listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (server, url)
}

/// The SDK and its dependencies in `<cache>/python/<release>`, installed once.
fn sdk_path() -> PathBuf {
    let dir = cache_dir()
        .join("python")
        .join(OPENAI_SDK.replace("==", "-"));
    let marker = dir.join(".anjeon-complete");
    if !marker.exists() {
        let status = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&dir)
            .arg(OPENAI_SDK)
            .status()
            .expect("run pip");
        assert!(status.success(), "pip install {OPENAI_SDK} failed");
        std::fs::write(&marker, b"").unwrap();
    }
    dir
}

#[test]
fn the_official_openai_sdk_talks_to_our_server() {
    let sdk = sdk_path();
    let tmp = tempfile::tempdir().unwrap();
    let (_server, url) = start_server(&tmp.path().join("data"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/openai_sdk.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&url)
        .env("PYTHONPATH", &sdk)
        .output()
        .expect("run the SDK script");
    assert!(
        out.status.success(),
        "SDK checks failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
