//! Feedback on answers (helpful / wrong / the citation is wrong, with an optional comment):
//! appended to `<data_dir>/feedback.jsonl` and synced before the reply, read back by admins.

use super::{render, Layout, PageCaller};
use crate::auth::{Caller, Role};
use crate::error::{Error, Result};
use crate::server::{ApiError, AppState};
use askama::Template;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Longest comment kept, in characters.
const MAX_COMMENT_CHARS: usize = 2000;
/// Longest question or answer kept, in characters.
const MAX_TEXT_CHARS: usize = 20_000;
/// Most citations kept per entry.
const MAX_CITATIONS: usize = 20;

/// A cited passage as the feedback records it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeedbackCitation {
    pub n: usize,
    pub doc: String,
    #[serde(default)]
    pub locator: String,
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub quote: String,
}

/// One piece of feedback, one line of the log.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeedbackEntry {
    /// RFC 3339, UTC.
    pub time: String,
    /// `helpful`, `wrong` or `bad-citation`.
    pub kind: String,
    pub comment: String,
    pub question: String,
    pub answer: String,
    pub citations: Vec<FeedbackCitation>,
    pub role: Role,
    /// Token holder's name, `-` for the public.
    pub actor: String,
}

pub const KINDS: &[&str] = &["helpful", "wrong", "bad-citation"];

fn kind_label(kind: &str) -> &'static str {
    match kind {
        "helpful" => "도움이 됨",
        "wrong" => "답이 틀림",
        "bad-citation" => "출처가 맞지 않음",
        _ => "기타",
    }
}

/// The append-only feedback log.
pub struct FeedbackLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl FeedbackLog {
    pub fn open(path: &Path) -> Result<FeedbackLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::io(path, e))?;
        // A line torn by a crash is ended, so the next entry starts a line of its own.
        let torn = std::fs::read(path)
            .map(|b| b.last().is_some_and(|&c| c != b'\n'))
            .unwrap_or(false);
        if torn {
            file.write_all(b"\n")
                .and_then(|()| file.sync_data())
                .map_err(|e| Error::io(path, e))?;
        }
        Ok(FeedbackLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        })
    }

    /// Appends one entry and syncs it: once this returns, a crash does not lose it.
    pub fn record(&self, entry: &FeedbackEntry) -> Result<()> {
        let mut line = serde_json::to_vec(entry)
            .map_err(|e| Error::Config(format!("cannot encode feedback: {e}")))?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&line)
            .and_then(|()| file.sync_data())
            .map_err(|e| Error::io(&self.path, e))
    }

    /// Every entry, oldest first; a torn last line (a crash mid-write) is skipped.
    pub fn read_all(&self) -> Result<Vec<FeedbackEntry>> {
        let text = std::fs::read_to_string(&self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

#[derive(Deserialize)]
struct FeedbackBody {
    kind: String,
    #[serde(default)]
    comment: String,
    question: String,
    #[serde(default)]
    answer: String,
    #[serde(default)]
    citations: Vec<FeedbackCitation>,
}

fn clip(s: &str, chars: usize) -> String {
    s.trim().chars().take(chars).collect()
}

/// `POST /api/feedback {"kind", "comment", "question", "answer", "citations"}` → 201.
pub async fn submit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: FeedbackBody = crate::server::parse_json(body)?;
    if !KINDS.contains(&body.kind.as_str()) {
        return Err(
            Error::InvalidInput(format!("kind는 {} 중 하나여야 합니다", KINDS.join(", "))).into(),
        );
    }
    if body.question.trim().is_empty() {
        return Err(Error::InvalidInput("question이 비어 있습니다".into()).into());
    }
    let entry = FeedbackEntry {
        time: jiff::Timestamp::now().to_string(),
        kind: body.kind,
        comment: clip(&body.comment, MAX_COMMENT_CHARS),
        question: clip(&body.question, MAX_TEXT_CHARS),
        answer: clip(&body.answer, MAX_TEXT_CHARS),
        citations: body.citations.into_iter().take(MAX_CITATIONS).collect(),
        role: caller.role,
        actor: caller.name.clone().unwrap_or_else(|| "-".into()),
    };
    let worker = state.clone();
    tokio::task::spawn_blocking(move || worker.web.feedback.record(&entry))
        .await
        .map_err(|e| Error::Config(format!("feedback writer failed: {e}")))??;
    Ok((
        axum::http::StatusCode::CREATED,
        Json(serde_json::json!({"stored": true})),
    )
        .into_response())
}

/// `GET /api/feedback`: every entry (admins only), oldest first.
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<Vec<FeedbackEntry>>, ApiError> {
    caller.require(Role::Admin)?;
    let entries = state.web.feedback.read_all()?;
    state.audit.record(&caller, "feedback", Vec::new())?;
    Ok(Json(entries))
}

struct FeedbackRow {
    time: String,
    kind: &'static str,
    kind_class: String,
    comment: String,
    question: String,
    answer: String,
    citations: Vec<(String, String)>,
    who: String,
}

#[derive(Template)]
#[template(path = "feedback.html")]
struct FeedbackPage {
    layout: Layout,
    rows: Vec<FeedbackRow>,
    counts: Vec<(&'static str, usize)>,
}

/// `GET /admin/feedback`: the feedback, newest first (admins only).
pub async fn page(
    State(state): State<Arc<AppState>>,
    PageCaller(caller): PageCaller,
) -> Result<Response, super::HtmlError> {
    if caller.role == Role::Public {
        return Ok(axum::response::Redirect::to("/login?next=/admin/feedback").into_response());
    }
    caller.require(Role::Admin)?;
    let entries = state.web.feedback.read_all()?;
    state.audit.record(&caller, "feedback", Vec::new())?;
    let counts = KINDS
        .iter()
        .map(|k| {
            (
                kind_label(k),
                entries.iter().filter(|e| e.kind == *k).count(),
            )
        })
        .collect();
    let rows = entries
        .into_iter()
        .rev()
        .map(|e| FeedbackRow {
            time: e
                .time
                .chars()
                .take(19)
                .collect::<String>()
                .replace('T', " "),
            kind: kind_label(&e.kind),
            kind_class: e.kind.clone(),
            comment: e.comment,
            question: e.question,
            answer: e.answer,
            citations: e
                .citations
                .iter()
                .map(|c| {
                    (
                        format!("[{}] {} {}", c.n, c.doc, c.locator),
                        super::passage_href(&c.doc, c.id),
                    )
                })
                .collect(),
            who: format!("{} ({})", e.actor, super::role_label(e.role)),
        })
        .collect();
    Ok(render(&FeedbackPage {
        layout: Layout::of(&caller, "admin"),
        rows,
        counts,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_appended_and_a_torn_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feedback.jsonl");
        let log = FeedbackLog::open(&path).unwrap();
        let entry = FeedbackEntry {
            time: "2025-01-01T00:00:00Z".into(),
            kind: "wrong".into(),
            comment: "틀렸어요".into(),
            question: "질문".into(),
            answer: "답 [1]".into(),
            citations: vec![FeedbackCitation {
                n: 1,
                doc: "a.md".into(),
                locator: "제1조".into(),
                id: 3,
                quote: "인용".into(),
            }],
            role: Role::Public,
            actor: "-".into(),
        };
        log.record(&entry).unwrap();
        drop(log);
        // a crash in the middle of a later write
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"time\": \"2025").unwrap();
        let log = FeedbackLog::open(&path).unwrap();
        log.record(&entry).unwrap();
        assert_eq!(log.read_all().unwrap(), vec![entry.clone(), entry]);
    }
}
