//! The web pages: the citizens' chat, officials' search and document views, the admin's
//! uploads and the eval report, rendered by the server from `web/templates` (askama) with
//! one small script. Every asset is built into the binary: it works on a closed network.

mod admin;
mod chat;
mod docs;
mod eval;
mod feedback;
mod search;

pub use feedback::{FeedbackEntry, FeedbackLog};

use crate::auth::{Caller, Role};
use crate::config::{Config, LexicalFields, WebConfig};
use crate::error::{Error, Result};
use crate::server::AppState;
use askama::Template;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What the pages keep beside the index: feedback, upload jobs, and caches.
pub struct WebState {
    pub data_dir: PathBuf,
    pub config: WebConfig,
    /// The BM25 fields searches use (`search.lexical`).
    pub lexical: LexicalFields,
    /// Largest file ingest accepts (`index.max_file_bytes`).
    pub max_file_bytes: u64,
    pub feedback: FeedbackLog,
    jobs: admin::Jobs,
    /// 장 of each article of a statute, by document key, parsed from its original once.
    chapters: Mutex<HashMap<String, Arc<docs::Chapters>>>,
}

impl WebState {
    pub fn open(config: &Config) -> Result<WebState> {
        Ok(WebState {
            data_dir: config.data_dir.clone(),
            config: config.web.clone(),
            lexical: config.search.lexical,
            max_file_bytes: config.index.max_file_bytes,
            feedback: FeedbackLog::open(&config.data_dir.join("feedback.jsonl"))?,
            jobs: admin::Jobs::default(),
            chapters: Mutex::new(HashMap::new()),
        })
    }

    /// Where uploaded originals are kept.
    pub fn uploads_dir(&self) -> PathBuf {
        self.data_dir.join("uploads")
    }
}

/// The pages and their APIs, merged into [`crate::server::router`].
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(chat::page))
        .route("/search", get(search::page))
        .route("/search.csv", get(search::csv))
        .route("/doc/{*key}", get(docs::document))
        .route("/login", get(admin::login_page))
        .route("/admin", get(admin::page))
        .route("/admin/feedback", get(feedback::page))
        .route("/eval", get(eval::index))
        .route("/eval/{run}/{task}", get(eval::task))
        .route("/api/feedback", post(feedback::submit).get(feedback::list))
        .route(
            "/api/admin/documents",
            get(admin::list)
                .post(admin::upload)
                // Uploads are limited by `web.max_upload_bytes`, counted while reading.
                .layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route(
            "/api/admin/documents/{*key}",
            post(admin::reingest).delete(admin::delete),
        )
        .route("/api/admin/jobs/{id}", get(admin::job))
        .route("/static/{file}", get(static_file))
}

/// The stylesheet and the script, built in.
async fn static_file(Path(file): Path<String>) -> Response {
    let (body, kind): (&'static str, &str) = match file.as_str() {
        "app.css" => (
            include_str!("../../web/static/app.css"),
            "text/css; charset=utf-8",
        ),
        "app.js" => (
            include_str!("../../web/static/app.js"),
            "text/javascript; charset=utf-8",
        ),
        _ => return HtmlError(Error::NotFound(format!("/static/{file}"))).into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// What every page's header shows about the caller.
#[derive(Debug, Clone)]
pub struct Layout {
    pub role: &'static str,
    pub role_label: &'static str,
    pub name: String,
    pub signed_in: bool,
    pub official: bool,
    pub admin: bool,
    /// Which menu entry is the current page.
    pub nav: &'static str,
}

impl Layout {
    pub fn of(caller: &Caller, nav: &'static str) -> Layout {
        Layout {
            role: caller.role.name(),
            role_label: role_label(caller.role),
            name: caller.name.clone().unwrap_or_default(),
            signed_in: caller.role != Role::Public,
            official: caller.role != Role::Public,
            admin: caller.role == Role::Admin,
            nav,
        }
    }
}

pub fn role_label(role: Role) -> &'static str {
    match role {
        Role::Public => "일반 이용자",
        Role::Official => "공무원",
        Role::Admin => "관리자",
    }
}

/// The caller of a page: like [`Caller`], but a token nobody holds is answered with the
/// error page instead of JSON.
pub struct PageCaller(pub Caller);

impl FromRequestParts<Arc<AppState>> for PageCaller {
    type Rejection = HtmlError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        Caller::from_request_parts(parts, state)
            .await
            .map(PageCaller)
            .map_err(|e| HtmlError(e.error))
    }
}

/// Headers of every HTML page: pages depend on who asks, so nothing is cached, and only
/// our own scripts and styles run.
fn html_response(status: StatusCode, body: String) -> Response {
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// A rendered page, or the error page when the template fails.
pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => html_response(StatusCode::OK, html),
        Err(e) => HtmlError(Error::Config(format!("template: {e}"))).into_response(),
    }
}

/// An error on its way to a person: the same status as the API would give
/// ([`Error::http_status`]), explained in Korean on a page.
#[derive(Debug)]
pub struct HtmlError(pub Error);

impl From<Error> for HtmlError {
    fn from(e: Error) -> Self {
        HtmlError(e)
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    heading: &'static str,
    detail: String,
    login: bool,
}

impl IntoResponse for HtmlError {
    fn into_response(self) -> Response {
        let status = self.0.http_status();
        if status >= 500 {
            tracing::error!("{}", self.0);
        }
        let heading = match status {
            400 => "요청을 처리할 수 없습니다",
            401 => "로그인이 필요합니다",
            403 => "이 페이지를 볼 권한이 없습니다",
            404 => "찾으시는 페이지나 문서가 없습니다",
            413 => "파일이 너무 큽니다",
            415 => "지원하지 않는 파일 형식입니다",
            422 => "요청 내용을 처리할 수 없습니다",
            429 => "요청이 많아 잠시 후 다시 시도해 주세요",
            _ => "서버에서 문제가 생겼습니다",
        };
        // Internal details stay in the log, as for the API.
        let detail = if status >= 500 {
            "잠시 후 다시 시도해 주세요. 문제가 계속되면 관리자에게 알려 주세요.".to_string()
        } else {
            user_message(&self.0)
        };
        let page = ErrorPage {
            layout: Layout::of(&Caller::public(), ""),
            status,
            heading,
            detail,
            login: status == 401,
        };
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match page.render() {
            Ok(html) => html_response(code, html),
            Err(_) => (code, heading).into_response(),
        }
    }
}

/// The message of an error without its English kind prefix.
fn user_message(e: &Error) -> String {
    match e {
        Error::InvalidInput(m)
        | Error::NotFound(m)
        | Error::Unauthorized(m)
        | Error::Forbidden(m)
        | Error::TooLarge(m)
        | Error::UnsupportedType(m)
        | Error::Unprocessable(m)
        | Error::Busy(m) => m.clone(),
        other => other.to_string(),
    }
}

/// A document key as a URL path under `/doc/`: each segment percent-encoded.
pub fn doc_path(key: &str) -> String {
    key.split('/')
        .map(percent_encode)
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes everything but unreserved ASCII (RFC 3986).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The link to a passage in its document.
pub fn passage_href(doc: &str, id: u64) -> String {
    format!("/doc/{}?p={id}#p-{id}", doc_path(doc))
}

/// `YYYYMMDD` → `YYYY-MM-DD`.
pub fn format_date(date: i64) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date / 10000,
        date / 100 % 100,
        date % 100
    )
}

/// Korean names of document kinds.
pub fn kind_label(kind: &str) -> &'static str {
    match kind {
        "statute" => "법령",
        "pdf" => "PDF 문서",
        "hwpx" => "한글 문서(HWPX)",
        "hwp" => "한글 문서(HWP)",
        "safety_letter" => "안전정보",
        "html" => "웹 문서",
        "markdown" => "마크다운 문서",
        "text" => "텍스트 문서",
        _ => "기타 문서",
    }
}

/// Every document kind, in the order the search form lists them.
pub const KINDS: &[&str] = &[
    "statute",
    "pdf",
    "hwpx",
    "hwp",
    "safety_letter",
    "html",
    "markdown",
    "text",
];

/// Korean names of access levels.
pub fn access_label(access: &str) -> &'static str {
    match access {
        "internal" => "내부",
        _ => "공개",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_paths_encode_each_segment() {
        assert_eq!(
            doc_path("statutes/식품 위생법.md"),
            "statutes/%EC%8B%9D%ED%92%88%20%EC%9C%84%EC%83%9D%EB%B2%95.md"
        );
        assert_eq!(passage_href("a?b.md", 7), "/doc/a%3Fb.md?p=7#p-7");
        assert_eq!(format_date(20240108), "2024-01-08");
    }
}
