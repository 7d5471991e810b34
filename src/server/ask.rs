//! `POST /api/ask`: the citizens' question endpoint. Streams verified answer text by SSE
//! (`delta` events) and then the whole answer with citations and verdicts (`answer` event),
//! or returns that JSON directly when `stream` is false.

use super::{ApiError, AppState};
use crate::answer::{Answerer, AskRequest, Turn};
use crate::auth::Caller;
use crate::error::Error;
use crate::filter::Access;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::StreamExt;
use serde::Deserialize;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::mpsc;

#[derive(Debug, Deserialize)]
pub(super) struct AskBody {
    question: String,
    #[serde(default)]
    history: Vec<Turn>,
    #[serde(default = "yes")]
    stream: bool,
}

fn yes() -> bool {
    true
}

enum Item {
    Text(String),
    Done(crate::Result<crate::answer::Answer>),
}

pub async fn ask(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: AskBody = super::openai::parse(body)?;
    let limits = &state.limits;
    limits.check_question(&body.question)?;
    for turn in &body.history {
        limits.check_question(&turn.question)?;
    }
    let conversation_chars = body.question.chars().count()
        + body
            .history
            .iter()
            .map(|t| t.question.chars().count() + t.answer.chars().count())
            .sum::<usize>();
    limits.check_conversation(body.history.len(), conversation_chars)?;
    // questions may carry personal data: logs get them redacted
    tracing::info!(
        question = %anjeon_ingest::redact(&body.question),
        turns = body.history.len(),
        stream = body.stream,
        "ask"
    );
    let stages = limits.stages();
    // The role comes from the caller's token only: a role named in the body is not trusted.
    let request = AskRequest {
        question: body.question,
        role: caller.role,
        history: body.history,
    };
    let (tx, mut rx) = mpsc::channel::<Item>(64);
    let worker = state.clone();
    tokio::task::spawn_blocking(move || {
        let result = Answerer::new(
            &worker.index,
            Some(worker.generator()),
            worker.prompts.clone(),
            worker.answer.clone(),
        )
        .and_then(|answerer| {
            answerer.answer(&request, &mut |text| {
                tx.blocking_send(Item::Text(text.to_string())).is_ok()
            })
        })
        .and_then(|answer| {
            let internal: Vec<String> = answer
                .citations
                .iter()
                .filter(|c| c.access == Access::Internal.as_str())
                .map(|c| format!("{} {}", c.doc, c.locator))
                .collect();
            if !internal.is_empty() {
                worker.audit.record(&caller, "ask", internal)?;
            }
            Ok(answer)
        });
        if let Ok(answer) = &result {
            super::metrics::metrics().record_answer(answer);
        }
        let _ = tx.blocking_send(Item::Done(result));
    });
    if !body.stream {
        while let Some(item) = stages.next(&mut rx).await? {
            if let Item::Done(result) = item {
                return Ok(Json(result?).into_response());
            }
        }
        return Err(Error::Model("the answer ended without a result".into()).into());
    }
    // Errors before any text (bad question, busy model) get a proper status.
    let first = stages
        .first(&mut rx)
        .await?
        .ok_or_else(|| Error::Model("the answer ended without a result".into()))?;
    let first = match first {
        Item::Done(Err(e)) => return Err(e.into()),
        other => other,
    };
    let events = futures_util::stream::iter([Ok(first)])
        .chain(stages.stream(rx))
        .map(|item| item.unwrap_or_else(|e| Item::Done(Err(e))))
        .map(|item| {
            let event = match item {
                Item::Text(text) => Event::default()
                    .event("delta")
                    .data(serde_json::json!({ "text": text }).to_string()),
                Item::Done(Ok(answer)) => Event::default()
                    .event("answer")
                    .data(serde_json::to_string(&answer).unwrap_or_default()),
                Item::Done(Err(e)) => Event::default().event("error").data(
                    serde_json::json!({"error": {"message": e.to_string(), "type": e.kind()}})
                        .to_string(),
                ),
            };
            Ok::<_, Infallible>(event)
        });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
