//! `GET /api/search?q=…[&top_k=N][&mode=bm25|dense|hybrid]`: the passages `anjeon search
//! --json` would print, as `{"hits": [...]}`, over the documents the caller's role may read;
//! hits from internal documents are audited.

use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::config::SearchMode;
use crate::error::Error;
use crate::filter::{Access, SearchFilter};
use crate::index::Hit;
use crate::index::SearchRequest;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

/// Most hits one request may ask for.
const MAX_TOP_K: usize = 50;

#[derive(Debug, Deserialize)]
pub struct SearchParams {
    q: String,
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default)]
    mode: Option<SearchMode>,
}

pub async fn search(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(params) = params.map_err(|e| {
        Error::InvalidInput(format!("검색어(q)가 필요합니다 (bad query string: {e})"))
    })?;
    if params.q.trim().is_empty() {
        return Err(Error::InvalidInput("검색어(q)가 비어 있습니다 (empty query)".into()).into());
    }
    state.limits.check_question(&params.q)?;
    let top_k = params.top_k.unwrap_or(state.search.top_k);
    if top_k == 0 || top_k > MAX_TOP_K {
        return Err(Error::InvalidInput(format!("top_k must be between 1 and {MAX_TOP_K}")).into());
    }
    let request = SearchRequest {
        query: params.q,
        top_k,
        mode: params.mode.unwrap_or(state.search.mode),
        lexical: state.search.lexical,
        filter: SearchFilter {
            access: caller.role.access(),
            ..Default::default()
        },
    };
    let stages = state.limits.stages();
    let worker = state.clone();
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    tokio::task::spawn_blocking(move || {
        let _ = tx.blocking_send(worker.index.search(&request));
    });
    let hits = stages
        .first(&mut rx)
        .await?
        .ok_or_else(|| Error::Index("the search ended without a result".into()))??;
    let hits: Vec<Hit> = hits;
    let internal: Vec<String> = hits
        .iter()
        .filter(|h| h.access == Access::Internal.as_str())
        .map(|h| format!("{} {}", h.doc, h.locator))
        .collect();
    if !internal.is_empty() {
        state.audit.record(&caller, "search", internal)?;
    }
    Ok(Json(serde_json::json!({ "hits": hits })))
}
