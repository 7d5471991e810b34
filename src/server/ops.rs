//! Operating the server: admission of work routes (per-client rate, then a slot among those
//! served at once, held until a stream ends) and the readiness probe `/readyz`.

use super::{metrics, ApiError, AppState};
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use std::sync::Arc;
use std::time::Instant;

/// Routes that do work for a caller and so are rate-limited and counted against the
/// concurrency limit; probes, metrics and pages are not.
pub(super) fn is_work(path: &str) -> bool {
    path.starts_with("/api/") || path.starts_with("/v1/") || path == "/tokenize"
}

/// Admits a work request: its client's token bucket first (429), then a slot (503 when the
/// queue is full or the wait too long). A stream keeps its slot until its last event.
pub async fn admit(State(state): State<Arc<AppState>>, req: Request<Body>, next: Next) -> Response {
    if !is_work(req.uri().path()) {
        return next.run(req).await;
    }
    let limits = &state.limits;
    let client = limits.client_of(&req);
    if let Err(e) = limits.check_rate(client, Instant::now()) {
        tracing::info!(%client, path = req.uri().path(), "rate limited");
        return ApiError::from(e).into_response();
    }
    let slot = match limits.acquire().await {
        Ok(slot) => slot,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let response = next.run(req).await;
    if metrics::is_stream(&response) {
        metrics::hold_until_sent(response, slot)
    } else {
        response
    }
}

/// `GET /readyz`: 200 when the index answers, the engine thread runs, the embedder works and
/// the server is not shutting down; else 503 with the reasons.
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let probe = state.clone();
    let reasons = tokio::task::spawn_blocking(move || {
        let mut reasons = Vec::new();
        if probe.limits.is_draining() {
            reasons.push("shutting down".to_string());
        }
        if let Err(e) = probe.index.passage_count() {
            reasons.push(format!("index not readable: {e}"));
        }
        if !probe.engine.is_alive() {
            reasons.push("the LLM engine thread has stopped".to_string());
        }
        if let Err(e) = probe.embedder.count_tokens("ok") {
            reasons.push(format!("embedder not usable: {e}"));
        }
        reasons
    })
    .await
    .unwrap_or_else(|e| vec![format!("readiness probe failed: {e}")]);
    if reasons.is_empty() {
        Json(serde_json::json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "unavailable", "reasons": reasons})),
        )
            .into_response()
    }
}
