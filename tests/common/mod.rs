//! What the end-to-end tests share: where the corpus and the asset cache are, and the
//! `anjeon` binary set up to use a data directory and nothing else of the environment.

// Each test binary uses only some of these helpers.
#![allow(dead_code)]

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

/// Runs `cmd` and parses its standard output as one JSON value (panicking with both outputs
/// when it is not JSON).
pub fn run_json(cmd: &mut Command) -> (std::process::Output, serde_json::Value) {
    let out = cmd.output().expect("run anjeon");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): stdout={stdout} stderr={}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

/// Ingests `path` into `data` with `access`, failing the test when nothing was ingested.
pub fn ingest(data: &Path, path: &Path, access: &str) {
    let out = anjeon(data)
        .args(["ingest", "--json", "--access", access])
        .arg(path)
        .output()
        .expect("run anjeon ingest");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `anjeon token new`: the plain token and the configuration line holding its hash.
pub fn new_token(data: &Path, role: &str, name: &str) -> (String, String) {
    let out = anjeon(data)
        .args(["token", "new", "--role", role, "--name", name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .next()
        .unwrap()
        .rsplit(' ')
        .next()
        .unwrap()
        .to_string();
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("tokens = [\""))
        .and_then(|l| l.strip_suffix("\"]"))
        .unwrap()
        .to_string();
    assert!(
        !line.contains(&token),
        "the config line must not hold the token"
    );
    (token, line)
}

/// A server process that is killed when the test ends, however it ends.
pub struct Server(pub std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `anjeon serve` on a free port over `data`; returns the process and its base URL.
pub fn start_server(data: &Path) -> (Server, String) {
    start_server_with(data, &[])
}

/// [`start_server`] with extra environment variables (configuration overrides).
pub fn start_server_with(data: &Path, env: &[(&str, &str)]) -> (Server, String) {
    use std::io::BufRead;
    let mut child = anjeon(data)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("ANJEON_LLM_THREADS", "2")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("start anjeon serve");
    let stdout = child.stdout.take().expect("stdout");
    let server = Server(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read the listening line");
    let url = line
        .trim()
        .strip_prefix("anjeon listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_string();
    (server, url)
}

/// A whole HTTP response.
pub struct Reply {
    pub status: u16,
    /// The header block, names and values lower-cased.
    pub head: String,
    pub body: String,
}

impl Reply {
    /// The (lower-cased) value of header `name`.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.1 request of a JSON `body` with `headers` (e.g. `("Authorization", "Bearer …")`).
pub fn request(url: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    send(url, method, path, &all, body.as_bytes())
}

/// One HTTP/1.1 request with any body (`headers` name its content type); reads the whole
/// response (the connection is closed after it, so a stream is read to its end). `url` may
/// omit `http://`.
pub fn send(url: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    use std::io::{Read, Write};
    let authority = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(authority).expect("connect");
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {authority}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let head = head.to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Reply { status, head, body }
}

/// One POST of a JSON body without credentials; returns the status and the whole body.
pub fn post_json(url: &str, path: &str, body: &str) -> (u16, String) {
    let reply = request(url, "POST", path, &[], body);
    (reply.status, reply.body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}
