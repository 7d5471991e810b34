//! Sign-in and administration: `/login`, `/admin` (upload by drag and drop, ingest progress,
//! the document list with re-ingest and delete) and their APIs. Uploads are kept under
//! `<data_dir>/uploads/` and ingested by a background job; jobs, deletes and re-ingests
//! run one at a time, each through the index's crash-safe write path, and every admin
//! action is audited.

use super::{render, HtmlError, Layout, PageCaller};
use crate::auth::{Caller, Role};
use crate::error::{Error, Result};
use crate::filter::Access;
use crate::index::{FileOutcome, IngestEvent};
use crate::manifest::EntryState;
use crate::server::{ApiError, AppState};
use askama::Template;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Jobs remembered for progress polling; older finished ones are forgotten.
const KEPT_JOBS: usize = 100;

/// One file of an ingest job.
#[derive(Debug, Clone, Serialize)]
pub struct JobFile {
    pub name: String,
    pub key: String,
    /// `queued`, `running`, `done`, `unchanged` or `failed`.
    pub state: &'static str,
    pub passages: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    path: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub name: String,
    pub error: String,
}

/// An ingest job as `GET /api/admin/jobs/{id}` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: u64,
    /// `queued`, `running`, `done` or `failed`.
    pub state: &'static str,
    /// Files in the job.
    pub files: usize,
    /// Files finished (indexed, unchanged or skipped).
    pub done: usize,
    pub skipped: Vec<Skipped>,
    pub items: Vec<JobFile>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Ingest jobs, and the lock that makes index writes from the web one at a time.
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    jobs: Mutex<BTreeMap<u64, Job>>,
    writes: Mutex<()>,
}

impl Jobs {
    fn update(&self, id: u64, f: impl FnOnce(&mut Job)) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(job) = jobs.get_mut(&id) {
            f(job);
        }
    }

    fn get(&self, id: u64) -> Option<Job> {
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner());
        jobs.get(&id).cloned()
    }

    /// Runs `f` as the only index writer of the web.
    fn exclusive<T>(&self, f: impl FnOnce() -> T) -> T {
        let _guard = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        f()
    }
}

/// Starts a job ingesting `files` (key, path) in the background; returns its id.
fn start_job(
    state: &Arc<AppState>,
    files: Vec<(String, PathBuf)>,
    access: Access,
    force: bool,
) -> u64 {
    let jobs = &state.web.jobs;
    let id = jobs.next.fetch_add(1, Ordering::Relaxed) + 1;
    let items = files
        .iter()
        .map(|(key, path)| JobFile {
            name: key.rsplit('/').next().unwrap_or(key).to_string(),
            key: key.clone(),
            state: "queued",
            passages: 0,
            error: None,
            path: path.clone(),
        })
        .collect::<Vec<_>>();
    {
        let mut all = jobs.jobs.lock().unwrap_or_else(|p| p.into_inner());
        all.insert(
            id,
            Job {
                id,
                state: "queued",
                files: items.len(),
                done: 0,
                skipped: Vec::new(),
                items,
                error: None,
            },
        );
        while all.len() > KEPT_JOBS {
            let Some(oldest) = all
                .iter()
                .find(|(_, j)| matches!(j.state, "done" | "failed"))
                .map(|(k, _)| *k)
            else {
                break;
            };
            all.remove(&oldest);
        }
    }
    let state = state.clone();
    std::thread::spawn(move || {
        let jobs = &state.web.jobs;
        let result = jobs.exclusive(|| {
            jobs.update(id, |j| j.state = "running");
            state.index.ingest_files(&files, access, force, &|event| {
                jobs.update(id, |job| apply_event(job, event));
            })
        });
        jobs.update(id, |job| match result {
            Ok(_) => {
                for item in &mut job.items {
                    if item.state == "running" || item.state == "indexed" {
                        item.state = "done";
                    }
                }
                job.done = job.items.len();
                job.state = "done";
            }
            Err(e) => {
                tracing::error!("ingest job {id}: {e}");
                for item in &mut job.items {
                    if item.state != "failed" && item.state != "unchanged" {
                        item.state = "failed";
                        item.error = Some("색인 중 오류가 났습니다".into());
                    }
                }
                job.state = "failed";
                job.error = Some(format!("색인하지 못했습니다: {e}"));
            }
        });
    });
    id
}

fn apply_event(job: &mut Job, event: IngestEvent) {
    match event {
        IngestEvent::Found(_) => {}
        IngestEvent::File(path) => {
            if let Some(item) = job.items.iter_mut().find(|i| i.path == path) {
                item.state = "running";
            }
        }
        IngestEvent::Finished(path, outcome) => {
            let Some(item) = job.items.iter_mut().find(|i| i.path == path) else {
                return;
            };
            match outcome {
                // Durable when the whole run has committed: "done" comes then.
                FileOutcome::Indexed(n) => {
                    item.state = "indexed";
                    item.passages = n;
                }
                FileOutcome::Unchanged => item.state = "unchanged",
                FileOutcome::Skipped(error) => {
                    item.state = "failed";
                    item.error = Some(error.to_string());
                    job.skipped.push(Skipped {
                        name: item.name.clone(),
                        error: error.to_string(),
                    });
                }
            }
            job.done += 1;
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LoginParams {
    next: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
}

/// `GET /login`.
pub async fn login_page(
    PageCaller(caller): PageCaller,
    Query(params): Query<LoginParams>,
) -> Result<Response, HtmlError> {
    // Only a path on this site, so the login cannot send anyone elsewhere.
    let next = if params.next.starts_with('/') && !params.next.starts_with("//") {
        params.next
    } else {
        "/".to_string()
    };
    Ok(render(&LoginPage {
        layout: Layout::of(&caller, "login"),
        next,
    }))
}

struct DocumentRow {
    key: String,
    href: String,
    title: String,
    access: &'static str,
    state: &'static str,
    passages: usize,
    duplicate_of: String,
    has_source: bool,
    uploaded: bool,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    layout: Layout,
    documents: Vec<DocumentRow>,
    passages: usize,
    max_upload_mb: u64,
    max_file_mb: u64,
}

/// `GET /admin`: the public is sent to sign in, officials are refused.
pub async fn page(
    State(state): State<Arc<AppState>>,
    PageCaller(caller): PageCaller,
) -> Result<Response, HtmlError> {
    if caller.role == Role::Public {
        return Ok(Redirect::to("/login?next=/admin").into_response());
    }
    caller.require(Role::Admin)?;
    let uploads = state.web.uploads_dir();
    let documents: Vec<DocumentRow> = state
        .index
        .entries()
        .into_iter()
        .map(|(key, e)| DocumentRow {
            href: format!("/doc/{}", super::doc_path(&key)),
            title: e.titles.first().cloned().unwrap_or_default(),
            access: super::access_label(e.access.as_str()),
            state: match e.state {
                EntryState::Committed => "색인됨",
                EntryState::Pending => "색인 중",
            },
            passages: e.passages.len(),
            duplicate_of: e.duplicate_of.clone().unwrap_or_default(),
            has_source: e.source.is_file(),
            uploaded: e.source.starts_with(&uploads),
            key,
        })
        .collect();
    let passages = documents.iter().map(|d| d.passages).sum();
    Ok(render(&AdminPage {
        layout: Layout::of(&caller, "admin"),
        documents,
        passages,
        max_upload_mb: state.web.config.max_upload_bytes / (1024 * 1024),
        max_file_mb: state.web.max_file_bytes / (1024 * 1024),
    }))
}

/// `GET /api/admin/documents`: the manifest's entries (admins only).
pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Role::Admin)?;
    let docs: Vec<serde_json::Value> = state
        .index
        .entries()
        .into_iter()
        .map(|(key, e)| {
            serde_json::json!({
                "key": key,
                "titles": e.titles,
                "access": e.access,
                "state": e.state,
                "passages": e.passages.len(),
                "duplicate_of": e.duplicate_of,
                "source_present": e.source.is_file(),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({ "documents": docs })))
}

/// A file of an upload, checked and held until every part is read.
struct Upload {
    name: String,
    bytes: Vec<u8>,
}

/// A file name safe to keep as a document key and a file under `uploads/`.
fn upload_name(raw: &str) -> Result<String> {
    // Browsers send the bare name; some send a path: keep its last part.
    let name = raw.rsplit(['/', '\\']).next().unwrap_or("").trim();
    let name: String = unicode_normalization::UnicodeNormalization::nfc(name).collect();
    if name.is_empty()
        || name.starts_with('.')
        || name.len() > 200
        || name.chars().any(|c| c.is_control())
    {
        return Err(Error::Unprocessable(format!(
            "파일 이름 '{raw}'을(를) 쓸 수 없습니다 (비어 있거나, 점으로 시작하거나, 너무 깁니다)"
        )));
    }
    Ok(name)
}

/// `POST /api/admin/documents` (multipart: `files` parts, an optional `access` part):
/// stores the files under `uploads/` and starts their ingest; 202 with the job id.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    multipart: std::result::Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let mut multipart = multipart.map_err(|e| {
        Error::Unprocessable(format!("multipart/form-data 형식의 업로드가 아닙니다: {e}"))
    })?;
    let limits = &state.web.config;
    let mut total: u64 = 0;
    let mut access = Access::Public;
    let mut files: Vec<Upload> = Vec::new();
    let bad = |e: axum::extract::multipart::MultipartError| -> Error {
        Error::Unprocessable(format!("업로드를 읽지 못했습니다: {e}"))
    };
    while let Some(mut field) = multipart.next_field().await.map_err(bad)? {
        match field.name() {
            Some("access") => {
                let text = field.text().await.map_err(bad)?;
                access = text.trim().parse().map_err(|_| {
                    Error::Unprocessable(format!(
                        "공개 범위는 public 또는 internal이어야 합니다: '{text}'"
                    ))
                })?;
            }
            Some("files") | Some("file") => {
                let name = upload_name(field.file_name().unwrap_or(""))?;
                if files.len() >= limits.max_upload_files {
                    return Err(Error::TooLarge(format!(
                        "한 번에 {}개까지 올릴 수 있습니다",
                        limits.max_upload_files
                    ))
                    .into());
                }
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    total += chunk.len() as u64;
                    if total > limits.max_upload_bytes {
                        return Err(Error::TooLarge(format!(
                            "한 번에 올릴 수 있는 크기({} MB)를 넘었습니다",
                            limits.max_upload_bytes / (1024 * 1024)
                        ))
                        .into());
                    }
                    if bytes.len() as u64 + chunk.len() as u64 > state.web.max_file_bytes {
                        return Err(Error::TooLarge(format!(
                            "'{name}'이(가) 파일 하나의 최대 크기({} MB)보다 큽니다",
                            state.web.max_file_bytes / (1024 * 1024)
                        ))
                        .into());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                files.push(Upload { name, bytes });
            }
            _ => {}
        }
    }
    if files.is_empty() {
        return Err(Error::Unprocessable("올린 파일이 없습니다 (files 필드)".into()).into());
    }
    for f in &files {
        if f.bytes.is_empty() {
            return Err(Error::Unprocessable(format!("'{}'은(는) 빈 파일입니다", f.name)).into());
        }
        if anjeon_ingest::parser_for(std::path::Path::new(&f.name), &f.bytes).is_none() {
            return Err(Error::UnsupportedType(format!(
                "'{}'은(는) 읽을 수 없는 형식입니다. PDF, HWP, HWPX, 법령 Markdown·XML·JSON, \
                 식약처 공공데이터 JSON, HTML, Markdown, 텍스트 파일을 올려 주세요",
                f.name
            ))
            .into());
        }
    }
    let mut names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Err(
            Error::Unprocessable(format!("같은 이름의 파일이 두 개입니다: {}", w[0])).into(),
        );
    }
    let dir = state.web.uploads_dir();
    let stored = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || store_uploads(&dir, files))
            .await
            .map_err(|e| Error::Config(format!("upload writer failed: {e}")))??
    };
    state.audit.record(
        &caller,
        "upload",
        stored.iter().map(|(k, _)| k.clone()).collect(),
    )?;
    let keys: Vec<String> = stored.iter().map(|(k, _)| k.clone()).collect();
    let id = start_job(&state, stored, access, false);
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "job": id, "files": keys, "access": access })),
    )
        .into_response())
}

/// Writes each file durably (temporary file, fsync, rename, directory fsync) and returns
/// (document key, path) pairs; the key is the file name.
fn store_uploads(dir: &std::path::Path, files: Vec<Upload>) -> Result<Vec<(String, PathBuf)>> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let path = dir.join(&f.name);
        let tmp = dir.join(format!(".{}.part", f.name));
        let mut file = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        file.write_all(&f.bytes)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
        out.push((f.name, path));
    }
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(out)
}

/// `GET /api/admin/jobs/{id}`: `{state, files, done, skipped, items}`.
pub async fn job(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Job>, ApiError> {
    caller.require(Role::Admin)?;
    let id: u64 = id
        .parse()
        .map_err(|_| Error::NotFound(format!("작업 {id}이(가) 없습니다")))?;
    state
        .web
        .jobs
        .get(id)
        .map(Json)
        .ok_or_else(|| Error::NotFound(format!("작업 {id}이(가) 없습니다")).into())
}

/// `POST /api/admin/documents/{key}/reingest`: reads the document's original again and
/// rewrites its passages, even when unchanged; 202 with the job id.
pub async fn reingest(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(rest): Path<String>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin)?;
    let key = rest
        .strip_suffix("/reingest")
        .ok_or_else(|| Error::NotFound(format!("/api/admin/documents/{rest}")))?;
    let entry = state
        .index
        .entry(key)
        .ok_or_else(|| Error::NotFound(format!("'{key}' 문서가 없습니다")))?;
    if !entry.source.is_file() {
        return Err(Error::Unprocessable(format!(
            "'{key}'의 원본 파일({})이 없어 다시 색인할 수 없습니다",
            entry.source.display()
        ))
        .into());
    }
    state
        .audit
        .record(&caller, "reingest", vec![key.to_string()])?;
    let id = start_job(
        &state,
        vec![(key.to_string(), entry.source.clone())],
        entry.access,
        true,
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "job": id, "files": [key] })),
    )
        .into_response())
}

/// `DELETE /api/admin/documents/{key}`: removes the document (and documents recorded as
/// its duplicates) from the index; an uploaded original is removed too.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(key): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require(Role::Admin)?;
    let entry = state
        .index
        .entry(&key)
        .ok_or_else(|| Error::NotFound(format!("'{key}' 문서가 없습니다")))?;
    state.audit.record(&caller, "delete", vec![key.clone()])?;
    let worker = state.clone();
    let target = key.clone();
    let removed = tokio::task::spawn_blocking(move || {
        worker.web.jobs.exclusive(|| worker.index.delete(&target))
    })
    .await
    .map_err(|e| Error::Index(format!("delete task failed: {e}")))??;
    if entry.source.starts_with(state.web.uploads_dir()) {
        let _ = std::fs::remove_file(&entry.source);
    }
    Ok(Json(serde_json::json!({ "deleted": removed })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_are_bare_and_safe() {
        assert_eq!(
            upload_name("C:\\문서\\식품위생법.md").unwrap(),
            "식품위생법.md"
        );
        assert_eq!(upload_name("a/b/c.pdf").unwrap(), "c.pdf");
        for bad in ["", "../", ".hidden", "a\u{0}b"] {
            let e = upload_name(bad).unwrap_err();
            assert_eq!(e.http_status(), 422, "{bad:?}");
        }
    }
}
