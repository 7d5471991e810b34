//! Prometheus metrics: a small registry of labelled counters and histograms, rendered in the
//! text exposition format at `/metrics`, plus the middleware that counts and times every
//! request (a streamed response is timed until its last event).

use super::AppState;
use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{header, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

/// Bucket bounds of latency histograms, in seconds.
const LATENCY: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];
/// Bucket bounds of decode speed, in tokens per second.
const SPEED: &[f64] = &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0];

/// A family of counters sharing a name, one per label-value combination.
pub struct Counter {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    values: Mutex<BTreeMap<Vec<String>, f64>>,
}

/// A family of histograms sharing a name and bucket bounds.
pub struct Histogram {
    name: &'static str,
    help: &'static str,
    labels: &'static [&'static str],
    bounds: &'static [f64],
    values: Mutex<BTreeMap<Vec<String>, Series>>,
}

#[derive(Clone)]
struct Series {
    /// Observations at or below each bound (not yet cumulative).
    buckets: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Counter {
    const fn new(name: &'static str, help: &'static str, labels: &'static [&'static str]) -> Self {
        Counter {
            name,
            help,
            labels,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn add(&self, labels: &[&str], by: f64) {
        debug_assert_eq!(labels.len(), self.labels.len(), "{}", self.name);
        let key = labels.iter().map(|s| s.to_string()).collect();
        *lock(&self.values).entry(key).or_default() += by;
    }

    pub fn inc(&self, labels: &[&str]) {
        self.add(labels, 1.0);
    }

    /// The current value (0 when never counted), for tests.
    pub fn get(&self, labels: &[&str]) -> f64 {
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        lock(&self.values).get(&key).copied().unwrap_or(0.0)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "counter");
        for (values, v) in lock(&self.values).iter() {
            let _ = writeln!(
                out,
                "{}{} {}",
                self.name,
                label_set(self.labels, values, None),
                number(*v)
            );
        }
    }
}

impl Histogram {
    const fn new(
        name: &'static str,
        help: &'static str,
        labels: &'static [&'static str],
        bounds: &'static [f64],
    ) -> Self {
        Histogram {
            name,
            help,
            labels,
            bounds,
            values: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn observe(&self, labels: &[&str], value: f64) {
        debug_assert_eq!(labels.len(), self.labels.len(), "{}", self.name);
        if !value.is_finite() {
            return;
        }
        let key = labels.iter().map(|s| s.to_string()).collect();
        let mut values = lock(&self.values);
        let series = values.entry(key).or_insert_with(|| Series {
            buckets: vec![0; self.bounds.len()],
            sum: 0.0,
            count: 0,
        });
        if let Some(i) = self.bounds.iter().position(|&b| value <= b) {
            series.buckets[i] += 1;
        }
        series.sum += value;
        series.count += 1;
    }

    /// Observations so far with these labels, for tests.
    pub fn count(&self, labels: &[&str]) -> u64 {
        let key: Vec<String> = labels.iter().map(|s| s.to_string()).collect();
        lock(&self.values).get(&key).map_or(0, |s| s.count)
    }

    fn render(&self, out: &mut String) {
        header(out, self.name, self.help, "histogram");
        for (values, s) in lock(&self.values).iter() {
            let mut cumulative = 0;
            for (bound, n) in self.bounds.iter().zip(&s.buckets) {
                cumulative += n;
                let le = number(*bound);
                let _ = writeln!(
                    out,
                    "{}_bucket{} {cumulative}",
                    self.name,
                    label_set(self.labels, values, Some(&le))
                );
            }
            let labels = label_set(self.labels, values, None);
            let _ = writeln!(
                out,
                "{}_bucket{} {}",
                self.name,
                label_set(self.labels, values, Some("+Inf")),
                s.count
            );
            let _ = writeln!(out, "{}_sum{labels} {}", self.name, number(s.sum));
            let _ = writeln!(out, "{}_count{labels} {}", self.name, s.count);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// `{a="x",b="y"}` with the values escaped as the exposition format requires.
fn label_set(names: &[&str], values: &[String], le: Option<&str>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escape(v)))
        .collect();
    if let Some(le) = le {
        pairs.push(format!("le=\"{le}\""));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        format!("{v}")
    }
}

/// Every metric of the process.
pub struct Metrics {
    pub requests: Counter,
    pub request_seconds: Histogram,
    pub errors: Counter,
    pub ttft_seconds: Histogram,
    pub decode_tokens_per_second: Histogram,
    pub generated_tokens: Counter,
    pub retrieval_seconds: Histogram,
    pub answers: Counter,
    pub refusals: Counter,
    pub dropped_claims: Counter,
}

/// The process's metrics (one server per process; tests share them and compare deltas).
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| Metrics {
        requests: Counter::new(
            "anjeon_http_requests_total",
            "HTTP requests answered, by route, method and status.",
            &["route", "method", "status"],
        ),
        request_seconds: Histogram::new(
            "anjeon_http_request_duration_seconds",
            "Time from request to the end of the response (a stream's last event), by route and status.",
            &["route", "status"],
            LATENCY,
        ),
        errors: Counter::new(
            "anjeon_errors_total",
            "Error responses by kind (the label of error.rs).",
            &["kind"],
        ),
        ttft_seconds: Histogram::new(
            "anjeon_time_to_first_token_seconds",
            "Time until the first generated text (/v1/*) or verified answer text (/api/ask).",
            &["route"],
            LATENCY,
        ),
        decode_tokens_per_second: Histogram::new(
            "anjeon_decode_tokens_per_second",
            "Decode speed of one generation after its first token.",
            &["route"],
            SPEED,
        ),
        generated_tokens: Counter::new(
            "anjeon_generated_tokens_total",
            "Tokens generated by the engine for HTTP requests.",
            &["route"],
        ),
        retrieval_seconds: Histogram::new(
            "anjeon_retrieval_duration_seconds",
            "Retrieval and reranking time of one answer.",
            &[],
            LATENCY,
        ),
        answers: Counter::new(
            "anjeon_answers_total",
            "Answers made, by outcome (answered or refused).",
            &["outcome"],
        ),
        refusals: Counter::new(
            "anjeon_refusals_total",
            "Refusals by reason.",
            &["reason"],
        ),
        dropped_claims: Counter::new(
            "anjeon_verification_dropped_claims_total",
            "Claims of generated answers that failed verification and were not shown.",
            &[],
        ),
    })
}

impl Metrics {
    /// What an answer tells about the pipeline.
    pub fn record_answer(&self, answer: &crate::answer::Answer) {
        let t = &answer.timings;
        self.retrieval_seconds.observe(&[], t.retrieval_ms / 1000.0);
        if !answer.refused && t.first_text_ms > 0.0 {
            self.ttft_seconds
                .observe(&["/api/ask"], t.first_text_ms / 1000.0);
        }
        self.answers.inc(&[if answer.refused {
            "refused"
        } else {
            "answered"
        }]);
        if let Some(reason) = answer.refusal_reason {
            let reason = serde_json::to_value(reason)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_else(|| "other".into());
            self.refusals.inc(&[&reason]);
        }
        let dropped = answer.claims.iter().filter(|c| !c.supported).count();
        if dropped > 0 {
            self.dropped_claims.add(&[], dropped as f64);
        }
    }

    /// What a finished generation tells about the engine.
    pub fn record_generation(&self, route: &str, g: &crate::llm::Generation) {
        if g.completion_tokens > 0 {
            self.ttft_seconds.observe(&[route], g.ttft_ms / 1000.0);
            self.generated_tokens
                .add(&[route], g.completion_tokens as f64);
        }
        let decode_s = (g.total_ms - g.ttft_ms) / 1000.0;
        if g.completion_tokens > 1 && decode_s > 0.0 {
            self.decode_tokens_per_second
                .observe(&[route], (g.completion_tokens - 1) as f64 / decode_s);
        }
    }

    /// The exposition text, with the gauges read from the server now.
    pub fn render(&self, state: &AppState) -> String {
        let mut out = String::new();
        let gauges = [
            (
                "anjeon_engine_queue_depth",
                "Requests waiting for the LLM engine.",
                state.engine.queue_depth() as f64,
            ),
            (
                "anjeon_requests_in_flight",
                "Requests being served (limited by server.max_concurrent).",
                state.limits.in_flight() as f64,
            ),
            (
                "anjeon_requests_queued",
                "Requests waiting for a slot (limited by server.max_queued).",
                state.limits.queued() as f64,
            ),
        ];
        for (name, help, value) in gauges {
            header(&mut out, name, help, "gauge");
            let _ = writeln!(out, "{name} {}", number(value));
        }
        self.requests.render(&mut out);
        self.request_seconds.render(&mut out);
        self.errors.render(&mut out);
        self.ttft_seconds.render(&mut out);
        self.decode_tokens_per_second.render(&mut out);
        self.generated_tokens.render(&mut out);
        self.retrieval_seconds.render(&mut out);
        self.answers.render(&mut out);
        self.refusals.render(&mut out);
        self.dropped_claims.render(&mut out);
        out
    }
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics().render(&state),
    )
        .into_response()
}

/// Runs `f` once when dropped: when a streamed body ends or its client goes away.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// Whether a response is a stream whose body outlives the handler.
pub(super) fn is_stream(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"))
}

/// Makes `guard` live as long as the response body (for a stream, until its end).
pub(super) fn hold_until_sent<G: Send + 'static>(response: Response, guard: G) -> Response {
    let (parts, body) = response.into_parts();
    let body = Body::from_stream(body.into_data_stream().map(move |chunk| {
        let _ = &guard;
        chunk
    }));
    Response::from_parts(parts, body)
}

/// Counts and times every routed request.
pub async fn track(req: Request<Body>, next: Next) -> Response {
    let start = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let response = next.run(req).await;
    let status = response.status().as_u16().to_string();
    let record = move || {
        let elapsed = start.elapsed();
        tracing::info!(%route, %method, %status, ms = elapsed.as_secs_f64() * 1000.0, "request");
        let m = metrics();
        m.requests.inc(&[&route, &method, &status]);
        m.request_seconds
            .observe(&[&route, &status], elapsed.as_secs_f64());
    };
    if is_stream(&response) {
        hold_until_sent(response, OnDrop(Some(record)))
    } else {
        record();
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_format_of_counters_and_histograms() {
        let c = Counter::new("t_total", "A test.", &["route", "status"]);
        c.inc(&["/a\"b", "200"]);
        c.add(&["/a\"b", "200"], 2.0);
        let h = Histogram::new("t_seconds", "Times.", &["route"], &[0.1, 1.0]);
        h.observe(&["/x"], 0.05);
        h.observe(&["/x"], 0.5);
        h.observe(&["/x"], 7.0);
        h.observe(&["/x"], f64::NAN);
        let mut out = String::new();
        c.render(&mut out);
        h.render(&mut out);
        let expected = "# HELP t_total A test.\n# TYPE t_total counter\n\
t_total{route=\"/a\\\"b\",status=\"200\"} 3\n\
# HELP t_seconds Times.\n# TYPE t_seconds histogram\n\
t_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\n\
t_seconds_bucket{route=\"/x\",le=\"1\"} 2\n\
t_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n\
t_seconds_sum{route=\"/x\"} 7.55\n\
t_seconds_count{route=\"/x\"} 3\n";
        assert_eq!(out, expected);
        assert_eq!(c.get(&["/a\"b", "200"]), 3.0);
        assert_eq!(h.count(&["/x"]), 3);
    }
}
