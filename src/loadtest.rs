//! `anjeon bench load`: a loopback load test. Indexes a small corpus into a temporary data
//! directory, starts `anjeon serve` on a free loopback port, and drives it with N concurrent
//! `/api/ask` SSE streams plus `/api/search` at a fixed rate, bounded in time and requests.
//! Reports requests served, latency p50/p99, time to first event, 429/503/5xx counts and the
//! server's peak resident memory.

use crate::error::{Error, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Concurrent `/api/ask` streams, each asking again as soon as its answer ends.
    pub streams: usize,
    pub duration: Duration,
    /// `/api/search` requests per second (0: none).
    pub search_rps: f64,
    /// Most requests sent in all (a bound besides the duration).
    pub max_requests: usize,
    /// Files or folders indexed before the server starts.
    pub corpus: Vec<PathBuf>,
    /// Questions (dev.jsonl format); `None`: a built-in set.
    pub qa: Option<PathBuf>,
    /// Keep the per-client rate limit (all load comes from one address, so it would
    /// mostly measure 429s).
    pub keep_rate_limit: bool,
    /// Configuration file passed to the server.
    pub config: Option<PathBuf>,
}

/// Latency figures of one kind of request, in milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub streams: usize,
    pub duration_s: f64,
    pub search_rps: f64,
    /// Requests answered 2xx.
    pub served: usize,
    pub asks: Latency,
    pub searches: Latency,
    /// Time to the first SSE event of an answer stream.
    pub ttft: Latency,
    pub status: BTreeMap<u16, usize>,
    pub rate_limited_429: usize,
    pub unavailable_503: usize,
    /// Every 5xx, 503 included.
    pub server_errors_5xx: usize,
    /// Connections that failed or timed out without a status.
    pub transport_errors: usize,
    pub passages: usize,
    /// Peak resident memory of the server process (VmHWM).
    pub peak_rss_mb: f64,
}

#[derive(Default)]
struct Samples {
    asks: Vec<f64>,
    searches: Vec<f64>,
    ttft: Vec<f64>,
    status: BTreeMap<u16, usize>,
    transport_errors: usize,
}

/// Questions when no question set is given.
const BUILT_IN: &[&str] = &[
    "건강진단은 언제 다시 받아야 하나요?",
    "건강진단 유효기간은 얼마인가요?",
    "식품 회수 명령은 어떤 경우에 내려지나요?",
    "영업자는 매년 건강진단을 받아야 하나요?",
    "건강진단 결과서는 누가 발급하나요?",
    "안전성 서한은 무엇인가요?",
];

/// Client-side limit on one request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

pub fn run(options: &LoadOptions) -> Result<LoadReport> {
    let exe = std::env::current_exe().map_err(|e| Error::Config(format!("current exe: {e}")))?;
    let data = std::env::temp_dir().join(format!(
        "anjeon-load-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let result = run_in(&exe, &data, options);
    let _ = std::fs::remove_dir_all(&data);
    result
}

fn anjeon(exe: &Path, data: &Path, options: &LoadOptions) -> Command {
    let mut cmd = Command::new(exe);
    cmd.env("ANJEON_DATA_DIR", data);
    if let Some(c) = &options.config {
        cmd.arg("--config").arg(c);
    }
    cmd
}

/// Kills the server however the run ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_in(exe: &Path, data: &Path, options: &LoadOptions) -> Result<LoadReport> {
    let questions = match &options.qa {
        Some(path) => crate::bench::load_questions(path)?
            .into_iter()
            .map(|q| q.question)
            .collect(),
        None => BUILT_IN.iter().map(|q| q.to_string()).collect::<Vec<_>>(),
    };
    if questions.is_empty() {
        return Err(Error::InvalidInput("the question set is empty".into()));
    }
    let out = anjeon(exe, data, options)
        .args(["ingest", "--json"])
        .args(&options.corpus)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| Error::Config(format!("cannot run ingest: {e}")))?;
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    if !out.status.success() {
        return Err(Error::InvalidInput(format!(
            "ingesting the corpus failed: {report}"
        )));
    }
    let passages = report["chunks"].as_u64().unwrap_or(0) as usize;

    let mut cmd = anjeon(exe, data, options);
    cmd.args(["serve", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if !options.keep_rate_limit {
        cmd.env("ANJEON_SERVER_RATE_PER_SECOND", "0");
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Config(format!("cannot start the server: {e}")))?;
    let stdout = child.stdout.take();
    let server = Server(child);
    let mut line = String::new();
    if let Some(stdout) = stdout {
        let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    }
    let addr = line
        .trim()
        .strip_prefix("anjeon listening on http://")
        .ok_or_else(|| Error::Config(format!("the server did not start: {line:?}")))?
        .to_string();

    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::Config(format!("cannot start the async runtime: {e}")))?;
    let started = Instant::now();
    let samples = runtime.block_on(drive(addr, questions, options.clone()));
    let elapsed = started.elapsed().as_secs_f64();
    let peak_rss_mb = peak_rss_kb(server.0.id()).map_or(0.0, |kb| kb as f64 / 1024.0);
    drop(server);

    let count = |pred: &dyn Fn(u16) -> bool| -> usize {
        samples
            .status
            .iter()
            .filter(|(s, _)| pred(**s))
            .map(|(_, n)| n)
            .sum()
    };
    Ok(LoadReport {
        streams: options.streams,
        duration_s: elapsed,
        search_rps: options.search_rps,
        served: count(&|s| (200..300).contains(&s)),
        asks: latency(samples.asks),
        searches: latency(samples.searches),
        ttft: latency(samples.ttft),
        rate_limited_429: count(&|s| s == 429),
        unavailable_503: count(&|s| s == 503),
        server_errors_5xx: count(&|s| s >= 500),
        transport_errors: samples.transport_errors,
        status: samples.status,
        passages,
        peak_rss_mb,
    })
}

fn latency(mut v: Vec<f64>) -> Latency {
    if v.is_empty() {
        return Latency::default();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    Latency {
        count: v.len(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        max_ms: v[v.len() - 1],
    }
}

/// The kernel's record of a process's peak resident set, in kB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

async fn drive(addr: String, questions: Vec<String>, options: LoadOptions) -> Samples {
    let samples = Arc::new(Mutex::new(Samples::default()));
    let deadline = tokio::time::Instant::now() + options.duration;
    let budget = Arc::new(std::sync::atomic::AtomicUsize::new(options.max_requests));
    let take = {
        let budget = budget.clone();
        move || {
            budget
                .fetch_update(
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                    |n| n.checked_sub(1),
                )
                .is_ok()
        }
    };
    let questions = Arc::new(questions);
    let mut tasks = Vec::new();
    for stream in 0..options.streams {
        let (addr, samples, questions, take) = (
            addr.clone(),
            samples.clone(),
            questions.clone(),
            take.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = stream;
            while tokio::time::Instant::now() < deadline && take() {
                let q = &questions[i % questions.len()];
                i += options.streams.max(1);
                let body = serde_json::json!({ "question": q, "stream": true }).to_string();
                let start = Instant::now();
                let reply = tokio::time::timeout(
                    REQUEST_TIMEOUT,
                    exchange(&addr, "POST", "/api/ask", &body),
                )
                .await;
                let refused = {
                    let mut s = samples.lock().unwrap_or_else(|p| p.into_inner());
                    match reply {
                        Ok(Ok(r)) => {
                            *s.status.entry(r.status).or_default() += 1;
                            if r.status == 200 {
                                s.asks.push(start.elapsed().as_secs_f64() * 1000.0);
                                if let Some(t) = r.first_event_ms {
                                    s.ttft.push(t);
                                }
                            }
                            r.status == 429 || r.status == 503
                        }
                        _ => {
                            s.transport_errors += 1;
                            false
                        }
                    }
                };
                if refused {
                    // a refused client waits before asking again
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }));
    }
    if options.search_rps > 0.0 {
        let (addr, samples, questions) = (addr.clone(), samples.clone(), questions.clone());
        let period = Duration::from_secs_f64(1.0 / options.search_rps);
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            let mut searches = Vec::new();
            let mut i = 0;
            while tokio::time::Instant::now() < deadline && take() {
                tick.tick().await;
                let q = questions[i % questions.len()].clone();
                i += 1;
                let (addr, samples) = (addr.clone(), samples.clone());
                searches.push(tokio::spawn(async move {
                    let path = format!("/api/search?q={}&top_k=10", percent_encode(&q));
                    let start = Instant::now();
                    let reply =
                        tokio::time::timeout(REQUEST_TIMEOUT, exchange(&addr, "GET", &path, ""))
                            .await;
                    let mut s = samples.lock().unwrap_or_else(|p| p.into_inner());
                    match reply {
                        Ok(Ok(r)) => {
                            *s.status.entry(r.status).or_default() += 1;
                            if r.status == 200 {
                                s.searches.push(start.elapsed().as_secs_f64() * 1000.0);
                            }
                        }
                        _ => s.transport_errors += 1,
                    }
                }));
            }
            for t in searches {
                let _ = t.await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    Arc::try_unwrap(samples)
        .ok()
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .unwrap_or_default()
}

struct Exchange {
    status: u16,
    /// Milliseconds until the first SSE `data:` line, for streams.
    first_event_ms: Option<f64>,
}

/// One HTTP/1.1 request with `Connection: close`, read to its end.
async fn exchange(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<Exchange> {
    let start = Instant::now();
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut received = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut first_event_ms = None;
    loop {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
        if first_event_ms.is_none() && contains(&received, b"\ndata:") {
            first_event_ms = Some(start.elapsed().as_secs_f64() * 1000.0);
        }
    }
    let head = String::from_utf8_lossy(&received[..received.len().min(64)]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP status in {head:?}")))?;
    Ok(Exchange {
        status,
        first_event_ms,
    })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_encoding() {
        let l = latency((1..=100).map(f64::from).collect());
        assert_eq!(
            (l.count, l.p50_ms, l.p99_ms, l.max_ms),
            (100, 50.0, 99.0, 100.0)
        );
        assert_eq!(latency(vec![]).count, 0);
        assert_eq!(percent_encode("a b/건"), "a%20b%2F%EA%B1%B4");
        assert!(peak_rss_kb(std::process::id()).unwrap() > 0);
    }
}
