//! Officials' regulation search (`/search`): BM25 over the passages the caller may read,
//! filters by law, kind, date and (for officials) access level, highlighted hits, counts per
//! facet from one query, pagination, and the same list as CSV (`/search.csv`).

use super::{render, HtmlError, Layout, PageCaller};
use crate::auth::{Caller, Role};
use crate::config::SearchMode;
use crate::error::{Error, Result};
use crate::filter::{Access, SearchFilter};
use crate::index::{parse_date, FacetCounts, Hit, SearchRequest};
use crate::server::AppState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::sync::Arc;

/// Hits per page.
const PER_PAGE: usize = 10;
/// Pages one can go to (deeper results are reached by narrowing the filters).
const MAX_PAGES: usize = 50;
/// Rows of a CSV export at most.
const CSV_ROWS: usize = 1000;

/// The query string of `/search` and `/search.csv`; every field optional.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SearchParams {
    pub q: String,
    pub law: String,
    pub kind: String,
    pub date_from: String,
    pub date_to: String,
    pub access: String,
    pub page: String,
}

impl SearchParams {
    /// The filter these parameters ask for, within what `caller` may read: the access
    /// parameter only narrows, and only for officials.
    pub fn filter(&self, caller: &Caller) -> Result<SearchFilter> {
        let allowed = caller.role.access();
        let access = match self.access.as_str() {
            "" | "all" => allowed,
            level => {
                let wanted: Access = level.parse().map_err(Error::InvalidInput)?;
                if allowed.contains(&wanted) {
                    vec![wanted]
                } else {
                    allowed
                }
            }
        };
        let kinds = match self.kind.as_str() {
            "" => Vec::new(),
            k if super::KINDS.contains(&k) => vec![k.to_string()],
            k => {
                return Err(Error::InvalidInput(format!(
                    "알 수 없는 문서 종류입니다: {k}"
                )))
            }
        };
        let date = |s: &str, which: &str| -> Result<Option<i64>> {
            if s.trim().is_empty() {
                return Ok(None);
            }
            parse_date(s).map(Some).ok_or_else(|| {
                Error::InvalidInput(format!("{which}은(는) YYYY-MM-DD 형식으로 입력하세요"))
            })
        };
        Ok(SearchFilter {
            access,
            kinds,
            law: Some(self.law.trim().to_string()).filter(|l| !l.is_empty()),
            doc: None,
            date_from: date(&self.date_from, "시작일")?,
            date_to: date(&self.date_to, "종료일")?,
        })
    }

    fn page(&self) -> usize {
        self.page.parse::<usize>().unwrap_or(1).clamp(1, MAX_PAGES)
    }

    /// The query string of these parameters with some replaced (`page`, a facet).
    fn query_string(&self, replace: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(&str, &str)> = vec![
            ("q", &self.q),
            ("law", &self.law),
            ("kind", &self.kind),
            ("date_from", &self.date_from),
            ("date_to", &self.date_to),
            ("access", &self.access),
            ("page", &self.page),
        ];
        for (k, v) in replace {
            if let Some(p) = pairs.iter_mut().find(|(name, _)| name == k) {
                p.1 = v;
            }
        }
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", super::percent_encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// A hit as the page shows it.
pub struct HitView {
    pub title: String,
    pub doc: String,
    pub locator: String,
    pub law: String,
    pub kind: &'static str,
    pub access: String,
    pub access_label: &'static str,
    pub date: String,
    /// Escaped text with the matches in `<mark>`.
    pub snippet: String,
    pub href: String,
}

/// The highlighter's `<b>…</b>` (text already escaped) as `<mark>…</mark>`, each stretch of
/// text redacted for public callers.
pub fn marks(highlight: &str, redact: bool) -> String {
    let mut out = String::with_capacity(highlight.len() + 16);
    for (i, piece) in highlight.split("<b>").enumerate() {
        let (inside, after) = match (i, piece.split_once("</b>")) {
            (0, _) | (_, None) => ("", piece),
            (_, Some((m, rest))) => (m, rest),
        };
        let fix = |s: &str| {
            if redact {
                anjeon_ingest::redact(s).into_owned()
            } else {
                s.to_string()
            }
        };
        if !inside.is_empty() {
            out.push_str("<mark>");
            out.push_str(&fix(inside));
            out.push_str("</mark>");
        }
        out.push_str(&fix(after));
    }
    out
}

fn hit_view(h: &Hit, public: bool) -> HitView {
    HitView {
        title: h.title.clone(),
        doc: h.doc.clone(),
        locator: h.locator.clone(),
        law: h.law.clone().unwrap_or_default(),
        kind: super::kind_label(&h.kind),
        access: h.access.clone(),
        access_label: super::access_label(&h.access),
        date: h.date.map(super::format_date).unwrap_or_default(),
        snippet: marks(&h.highlight, public),
        href: super::passage_href(&h.doc, h.id),
    }
}

struct Facet {
    label: String,
    count: usize,
    href: String,
    active: bool,
}

struct PageLink {
    n: usize,
    href: String,
    current: bool,
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    layout: Layout,
    params: SearchParams,
    laws: Vec<Choice>,
    kinds: Vec<Choice>,
    access_choices: Vec<Choice>,
    searched: bool,
    total: usize,
    hits: Vec<HitView>,
    law_facets: Vec<Facet>,
    kind_facets: Vec<Facet>,
    pages: Vec<PageLink>,
    prev: String,
    next: String,
    csv_href: String,
    first_rank: usize,
}

/// Results of one search: the page's hits and the counts of all of them.
struct Results {
    hits: Vec<Hit>,
    facets: FacetCounts,
}

/// Runs the search on a blocking thread (tantivy and the analyzer are synchronous).
async fn run(
    state: &Arc<AppState>,
    query: String,
    filter: SearchFilter,
    skip: usize,
    take: usize,
) -> Result<Results> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let lexical = state.web.lexical;
        let facets = state.index.facets(&query, lexical, &filter)?;
        let hits = if facets.total == 0 {
            Vec::new()
        } else {
            state.index.search(&SearchRequest {
                query,
                top_k: skip + take,
                mode: SearchMode::Bm25,
                lexical,
                filter,
            })?
        };
        Ok(Results {
            hits: hits.into_iter().skip(skip).collect(),
            facets,
        })
    })
    .await
    .map_err(|e| Error::Index(format!("search task failed: {e}")))?
}

/// Reads of internal passages go to the audit log.
fn audit_internal(state: &AppState, caller: &Caller, action: &str, hits: &[Hit]) -> Result<()> {
    let internal: Vec<String> = hits
        .iter()
        .filter(|h| h.access == Access::Internal.as_str())
        .map(|h| format!("{} {}", h.doc, h.locator))
        .collect();
    if internal.is_empty() {
        return Ok(());
    }
    state.audit.record(caller, action, internal)
}

/// `GET /search`.
pub async fn page(
    State(state): State<Arc<AppState>>,
    PageCaller(caller): PageCaller,
    Query(params): Query<SearchParams>,
) -> Result<Response, HtmlError> {
    let filter = params.filter(&caller)?;
    let page = params.page();
    let searched = !params.q.trim().is_empty();
    // The law list: every law the caller may read, with its passages.
    let access_only = SearchFilter {
        access: caller.role.access(),
        ..Default::default()
    };
    let all = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || state.index.facets("", state.web.lexical, &access_only))
            .await
            .map_err(|e| Error::Index(format!("search task failed: {e}")))??
    };
    let results = if searched {
        run(
            &state,
            params.q.clone(),
            filter,
            (page - 1) * PER_PAGE,
            PER_PAGE,
        )
        .await?
    } else {
        Results {
            hits: Vec::new(),
            facets: FacetCounts::default(),
        }
    };
    audit_internal(&state, &caller, "search", &results.hits)?;
    let public = caller.role == Role::Public;
    let total = results.facets.total;
    let page_count = total.div_ceil(PER_PAGE).clamp(1, MAX_PAGES);
    let href = |replace: &[(&str, &str)]| format!("/search?{}", params.query_string(replace));
    let pages = page_window(page, page_count)
        .into_iter()
        .map(|n| PageLink {
            n,
            href: href(&[("page", &n.to_string())]),
            current: n == page,
        })
        .collect();
    let facet = |name: &str, value: &str, label: String, count: usize, current: &str| Facet {
        label,
        count,
        href: href(&[
            (name, if current == value { "" } else { value }),
            ("page", ""),
        ]),
        active: current == value,
    };
    let law_facets = results
        .facets
        .laws
        .iter()
        .map(|(law, n)| facet("law", law, law.clone(), *n, &params.law))
        .collect();
    let kind_facets = results
        .facets
        .kinds
        .iter()
        .map(|(kind, n)| {
            let label = super::kind_label(kind).to_string();
            facet("kind", kind, label, *n, &params.kind)
        })
        .collect();
    let laws = all
        .laws
        .keys()
        .map(|law| Choice {
            value: law.clone(),
            label: law.clone(),
            selected: *law == params.law,
        })
        .collect();
    let kinds = super::KINDS
        .iter()
        .map(|k| Choice {
            value: k.to_string(),
            label: super::kind_label(k).to_string(),
            selected: *k == params.kind,
        })
        .collect();
    let access_choices = [
        ("", "공개 + 내부"),
        ("public", "공개"),
        ("internal", "내부"),
    ]
    .iter()
    .map(|(v, l)| Choice {
        value: v.to_string(),
        label: l.to_string(),
        selected: *v == params.access,
    })
    .collect();
    let first_rank = (page - 1) * PER_PAGE + 1;
    let hits = results.hits.iter().map(|h| hit_view(h, public)).collect();
    let prev = if page > 1 {
        href(&[("page", &(page - 1).to_string())])
    } else {
        String::new()
    };
    let next = if page < page_count {
        href(&[("page", &(page + 1).to_string())])
    } else {
        String::new()
    };
    let csv_href = format!("/search.csv?{}", params.query_string(&[("page", "")]));
    Ok(render(&SearchPage {
        layout: Layout::of(&caller, "search"),
        params,
        laws,
        kinds,
        access_choices,
        searched,
        total,
        hits,
        law_facets,
        kind_facets,
        pages,
        prev,
        next,
        csv_href,
        first_rank,
    }))
}

/// At most nine page numbers around the current one.
fn page_window(page: usize, count: usize) -> Vec<usize> {
    let from = page.saturating_sub(4).max(1);
    let to = (from + 8).min(count);
    let from = to.saturating_sub(8).max(1);
    (from..=to).collect()
}

/// `GET /search.csv`: the hits of the same search (up to 1,000) as CSV, UTF-8 with a byte
/// order mark so that Excel reads the Korean.
pub async fn csv(
    State(state): State<Arc<AppState>>,
    PageCaller(caller): PageCaller,
    Query(params): Query<SearchParams>,
) -> Result<Response, HtmlError> {
    let filter = params.filter(&caller)?;
    if params.q.trim().is_empty() {
        return Err(Error::InvalidInput("검색어(q)를 입력하세요".into()).into());
    }
    let results = run(&state, params.q.clone(), filter, 0, CSV_ROWS).await?;
    audit_internal(&state, &caller, "export", &results.hits)?;
    let public = caller.role == Role::Public;
    let mut out = String::from("\u{feff}");
    let header = [
        "순위",
        "제목",
        "법령",
        "위치",
        "문서",
        "종류",
        "공개 범위",
        "날짜",
        "점수",
        "본문",
    ];
    push_row(&mut out, header.iter().map(|s| s.to_string()));
    for (i, h) in results.hits.iter().enumerate() {
        let text = if public {
            anjeon_ingest::redact(&h.text).into_owned()
        } else {
            h.text.clone()
        };
        push_row(
            &mut out,
            [
                (i + 1).to_string(),
                h.title.clone(),
                h.law.clone().unwrap_or_default(),
                h.locator.clone(),
                h.doc.clone(),
                h.kind.clone(),
                h.access.clone(),
                h.date.map(super::format_date).unwrap_or_default(),
                format!("{:.4}", h.score),
                text,
            ]
            .into_iter(),
        );
    }
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"anjeon-search.csv\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        out,
    )
        .into_response())
}

/// One CSV record (RFC 4180): every field quoted, quotes doubled, CRLF at the end. A field
/// a spreadsheet would take for a formula gets a leading apostrophe.
fn push_row(out: &mut String, fields: impl Iterator<Item = String>) {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        if field.starts_with(['=', '+', '-', '@', '\t', '\r']) {
            out.push('\'');
        }
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    }
    out.push_str("\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn highlights_become_marks_and_stay_escaped() {
        assert_eq!(
            marks("a &lt;b&gt; <b>건강</b> c <b>진단</b>", false),
            "a &lt;b&gt; <mark>건강</mark> c <mark>진단</mark>"
        );
        assert_eq!(
            marks("연락처 010-1234-5678 <b>건강</b>", true),
            format!(
                "연락처 {} <mark>건강</mark>",
                anjeon_ingest::redact("010-1234-5678")
            )
        );
    }

    #[test]
    fn csv_fields_are_quoted_and_formulas_defused() {
        let mut out = String::new();
        push_row(
            &mut out,
            ["a\"b".to_string(), "=1+1".into(), "줄\n바꿈".into()].into_iter(),
        );
        assert_eq!(out, "\"a\"\"b\",\"'=1+1\",\"줄\n바꿈\"\r\n");
    }

    #[test]
    fn access_narrows_only_within_the_role() {
        let p = SearchParams {
            access: "internal".into(),
            ..Default::default()
        };
        assert_eq!(
            p.filter(&Caller::public()).unwrap().access,
            [Access::Public]
        );
        let official = Caller {
            name: Some("kim".into()),
            role: Role::Official,
        };
        assert_eq!(p.filter(&official).unwrap().access, [Access::Internal]);
        let all = SearchParams::default().filter(&official).unwrap();
        assert_eq!(all.access, [Access::Public, Access::Internal]);
        let bad = SearchParams {
            date_from: "어제".into(),
            ..Default::default()
        };
        assert!(bad.filter(&official).is_err());
    }

    #[test]
    fn page_windows_stay_in_range() {
        assert_eq!(page_window(1, 3), vec![1, 2, 3]);
        assert_eq!(page_window(10, 50), (6..=14).collect::<Vec<_>>());
        assert_eq!(page_window(50, 50), (42..=50).collect::<Vec<_>>());
    }
}
