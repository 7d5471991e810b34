//! Document views: `/doc/{key}` shows a whole document, passage by passage as the index
//! holds them, the cited one marked; for a statute, the article around it (its 장,
//! effective date, previous and next 조, passages citing it). `/doc/{key}/raw` serves the
//! original file. A document the caller may not read is a 404, as if it did not exist.

use super::{render, HtmlError, Layout, PageCaller};
use crate::auth::{Caller, Role};
use crate::config::SearchMode;
use crate::error::{Error, Result};
use crate::filter::{Access, SearchFilter};
use crate::index::{DocumentView, SearchRequest};
use crate::manifest::{Entry, EntryState};
use crate::server::AppState;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// The 장 of each article of one statute file, read from its original.
pub struct Chapters {
    hash: String,
    by_article: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct DocParams {
    /// The passage to mark and scroll to.
    p: Option<u64>,
    /// An article to open, e.g. `제44조`.
    article: String,
}

struct PassageView {
    id: u64,
    locator: String,
    text: String,
    selected: bool,
    /// Set on the first passage of each article (statutes), for the article's anchor.
    article_anchor: String,
}

struct ArticleLink {
    label: String,
    href: String,
}

struct Citing {
    title: String,
    locator: String,
    doc: String,
    href: String,
}

struct ArticleView {
    article: String,
    title: String,
    chapter: String,
    effective: String,
    prev: Option<ArticleLink>,
    next: Option<ArticleLink>,
    citing: Vec<Citing>,
}

#[derive(Template)]
#[template(path = "doc.html")]
struct DocPage {
    layout: Layout,
    key: String,
    title: String,
    kind: &'static str,
    access: &'static str,
    internal: bool,
    date: String,
    law: String,
    passages: Vec<PassageView>,
    article: Option<ArticleView>,
    raw_href: String,
}

/// `GET /doc/{key}` and `GET /doc/{key}/raw`.
pub async fn document(
    State(state): State<Arc<AppState>>,
    PageCaller(caller): PageCaller,
    Path(key): Path<String>,
    Query(params): Query<DocParams>,
) -> Result<Response, HtmlError> {
    let access = caller.role.access();
    if let Some(doc) = key.strip_suffix("/raw") {
        if state.index.entry(&key).is_none() {
            return raw(&state, &caller, doc).await;
        }
    }
    let view = {
        let (state, key, access) = (state.clone(), key.clone(), access.clone());
        tokio::task::spawn_blocking(move || state.index.document(&key, &access))
            .await
            .map_err(|e| Error::Index(format!("document task failed: {e}")))??
    };
    let Some(view) = view else {
        return Err(not_found(&key).into());
    };
    if view.entry.access == Access::Internal {
        state.audit.record(&caller, "document", vec![key.clone()])?;
    }
    let public = caller.role == Role::Public;
    let selected = params.p.or_else(|| {
        let wanted = params.article.trim();
        view.passages
            .iter()
            .find(|p| !wanted.is_empty() && article_of(&p.locator).as_deref() == Some(wanted))
            .map(|p| p.id)
    });
    let article = match selected {
        Some(id) => match view.passages.iter().position(|p| p.id == id) {
            Some(i) if view.passages[i].kind == "statute" => {
                Some(article_view(&state, &caller, &view, i).await?)
            }
            _ => None,
        },
        None => None,
    };
    let first = view.passages.first();
    let mut seen_article = None;
    let passages = view
        .passages
        .iter()
        .map(|p| {
            let art = article_of(&p.locator);
            let anchor = match &art {
                Some(a) if seen_article.as_ref() != Some(a) => {
                    seen_article = Some(a.clone());
                    format!("a-{}", super::percent_encode(a))
                }
                _ => String::new(),
            };
            PassageView {
                id: p.id,
                locator: p.locator.clone(),
                text: shown(&p.text, public),
                selected: Some(p.id) == selected,
                article_anchor: anchor,
            }
        })
        .collect();
    let title = view
        .entry
        .titles
        .first()
        .cloned()
        .or_else(|| first.map(|p| p.title.clone()))
        .unwrap_or_else(|| key.clone());
    let raw_href = if view.entry.source.is_file() {
        format!("/doc/{}/raw", super::doc_path(&key))
    } else {
        String::new()
    };
    Ok(render(&DocPage {
        layout: Layout::of(&caller, "search"),
        title,
        kind: super::kind_label(first.map_or("", |p| p.kind.as_str())),
        access: super::access_label(view.entry.access.as_str()),
        internal: view.entry.access == Access::Internal,
        date: first
            .and_then(|p| p.date)
            .map(super::format_date)
            .unwrap_or_default(),
        law: first.and_then(|p| p.law.clone()).unwrap_or_default(),
        key,
        passages,
        article,
        raw_href,
    }))
}

fn not_found(key: &str) -> Error {
    Error::NotFound(format!("'{key}' 문서를 찾을 수 없습니다"))
}

fn shown(text: &str, public: bool) -> String {
    if public {
        anjeon_ingest::redact(text).into_owned()
    } else {
        text.to_string()
    }
}

/// The article a statute locator names: `제44조의2` of `제44조의2 제1항`, `부칙 제1조` of
/// `부칙 제1조`; `None` for other locators.
pub fn article_of(locator: &str) -> Option<String> {
    let (prefix, rest) = match locator.strip_prefix("부칙 ") {
        Some(rest) => ("부칙 ", rest),
        None => ("", locator),
    };
    let head = rest.split_whitespace().next()?;
    let body = head.strip_prefix('제')?;
    let digits = body.chars().take_while(char::is_ascii_digit).count();
    let after = &body[digits..];
    if digits == 0 || !after.starts_with('조') {
        return None;
    }
    Some(format!("{prefix}{head}"))
}

/// Whether `text` mentions `article` (e.g. `제4조`) itself, not `제44조` or `제4조의2`.
pub fn mentions_article(text: &str, article: &str) -> bool {
    text.match_indices(article).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + article.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit())
            && !text[i + article.len()..].starts_with("의")
            && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

async fn article_view(
    state: &Arc<AppState>,
    caller: &Caller,
    view: &DocumentView,
    at: usize,
) -> Result<ArticleView> {
    let p = &view.passages[at];
    let article = article_of(&p.locator).unwrap_or_else(|| p.locator.clone());
    // Going back, the last passage met of the previous article is its first one.
    let prev = {
        let mut found: Option<(String, u64)> = None;
        for q in view.passages[..at].iter().rev() {
            match article_of(&q.locator) {
                Some(a) if a != article => match &found {
                    Some((f, _)) if *f != a => break,
                    _ => found = Some((a, q.id)),
                },
                _ => {}
            }
        }
        found.map(|(label, id)| ArticleLink {
            label,
            href: super::passage_href(&view.key, id),
        })
    };
    // Going forward, the first passage of another article begins the next one.
    let next = view.passages[at + 1..]
        .iter()
        .find_map(|q| {
            article_of(&q.locator)
                .filter(|a| *a != article)
                .map(|a| (a, q.id))
        })
        .map(|(label, id)| ArticleLink {
            label,
            href: super::passage_href(&view.key, id),
        });
    let chapter = chapter_of(state, &view.key, &view.entry, &article).unwrap_or_default();
    let citing = citing_passages(state, caller, view, &article).await?;
    Ok(ArticleView {
        title: p.title.clone(),
        effective: p.date.map(super::format_date).unwrap_or_default(),
        article,
        chapter,
        prev,
        next,
        citing,
    })
}

/// The 장 (and 절) an article belongs to, from the parsed original file, which the index
/// does not keep; `None` when the original is gone or changed.
fn chapter_of(state: &AppState, key: &str, entry: &Entry, article: &str) -> Option<String> {
    let cached = {
        let cache = state.web.chapters.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).filter(|c| c.hash == entry.hash).cloned()
    };
    let chapters = match cached {
        Some(c) => c,
        None => {
            let bytes = std::fs::read(&entry.source).ok()?;
            let hash = hex::encode(Sha256::digest(&bytes));
            if hash != entry.hash {
                return None;
            }
            let docs = anjeon_ingest::parse_file(&entry.source, &bytes).ok()?;
            let mut by_article = HashMap::new();
            for doc in &docs {
                for seg in &doc.segments {
                    let l = &seg.locator;
                    if let (Some(a), Some(c)) = (&l.article, &l.chapter) {
                        if !c.starts_with("부칙") {
                            by_article.entry(a.clone()).or_insert_with(|| c.clone());
                        }
                    }
                }
            }
            let c = Arc::new(Chapters { hash, by_article });
            state
                .web
                .chapters
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.to_string(), c.clone());
            c
        }
    };
    chapters.by_article.get(article).cloned()
}

/// Passages (within the caller's access) that mention this article of this law: those of
/// the same law naming `제N조`, and those of other documents naming the law and the article.
async fn citing_passages(
    state: &Arc<AppState>,
    caller: &Caller,
    view: &DocumentView,
    article: &str,
) -> Result<Vec<Citing>> {
    let Some(law) = view.passages.first().and_then(|p| p.law.clone()) else {
        return Ok(Vec::new());
    };
    if article.starts_with("부칙") {
        return Ok(Vec::new());
    }
    let request = SearchRequest {
        query: format!("{law} {article}"),
        top_k: 100,
        mode: SearchMode::Bm25,
        lexical: state.web.lexical,
        filter: SearchFilter {
            access: caller.role.access(),
            ..Default::default()
        },
    };
    let hits = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.index.search(&request))
            .await
            .map_err(|e| Error::Index(format!("search task failed: {e}")))??
    };
    let public = caller.role == Role::Public;
    Ok(hits
        .into_iter()
        .filter(|h| {
            let own = h.doc == view.key && article_of(&h.locator).as_deref() == Some(article);
            let same_law = h.law.as_deref() == Some(law.as_str());
            !own && mentions_article(&h.text, article) && (same_law || h.text.contains(&law))
        })
        .take(20)
        .map(|h| Citing {
            href: super::passage_href(&h.doc, h.id),
            title: shown(&h.title, public),
            locator: h.locator,
            doc: h.doc,
        })
        .collect())
}

/// `GET /doc/{key}/raw`: the original bytes, while the file is still where it was ingested
/// from and unchanged.
async fn raw(state: &Arc<AppState>, caller: &Caller, key: &str) -> Result<Response, HtmlError> {
    let entry = state
        .index
        .entry(key)
        .filter(|e| e.state == EntryState::Committed && caller.role.access().contains(&e.access))
        .ok_or_else(|| not_found(key))?;
    let source = entry.source.clone();
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(&source))
        .await
        .map_err(|e| Error::Index(format!("read task failed: {e}")))?
        .map_err(|_| {
            Error::NotFound(format!(
                "'{key}'의 원본 파일이 색인한 위치({})에 더 이상 없습니다",
                entry.source.display()
            ))
        })?;
    if hex::encode(Sha256::digest(&bytes)) != entry.hash {
        return Err(Error::NotFound(format!(
            "'{key}'의 원본 파일이 색인한 뒤 바뀌었습니다; 다시 색인하면 새 내용을 볼 수 있습니다"
        ))
        .into());
    }
    if entry.access == Access::Internal {
        state.audit.record(caller, "raw", vec![key.to_string()])?;
    }
    let name = key.rsplit('/').next().unwrap_or(key);
    let mut response = bytes.into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(name)),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "inline; filename*=UTF-8''{}",
        super::percent_encode(name)
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // An uploaded HTML file runs nothing on our origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'",
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The media type of an original file, by its extension.
pub fn content_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "pdf" => "application/pdf",
        "md" | "markdown" => "text/markdown; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "xml" => "application/xml",
        "html" | "htm" => "text/html; charset=utf-8",
        "hwp" => "application/x-hwp",
        "hwpx" => "application/hwp+zip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn articles_are_read_from_locators() {
        assert_eq!(article_of("제44조 제1항").as_deref(), Some("제44조"));
        assert_eq!(article_of("제7조의2").as_deref(), Some("제7조의2"));
        assert_eq!(article_of("부칙 제1조").as_deref(), Some("부칙 제1조"));
        assert_eq!(article_of("p. 3"), None);
        assert_eq!(article_of("제2장 총칙"), None);
    }

    #[test]
    fn article_mentions_are_exact() {
        assert!(mentions_article("법 제4조에 따라", "제4조"));
        assert!(mentions_article("제4조제1항", "제4조"));
        assert!(!mentions_article("법 제44조에 따라", "제4조"));
        assert!(!mentions_article("법 제4조의2에 따라", "제4조"));
        assert!(!mentions_article("제14조", "제4조"));
    }

    #[test]
    fn content_types_follow_extensions() {
        assert_eq!(content_type("a.PDF"), "application/pdf");
        assert_eq!(content_type("법.md"), "text/markdown; charset=utf-8");
        assert_eq!(content_type("x"), "application/octet-stream");
    }
}
