//! The web pages in real headless Chromium (Debian's, over WebDriver) against the real
//! server on a real index of part of the shared corpus: the chat's streamed, cited answer and
//! its passage view, a refusal, filtered search with highlights and CSV export, an admin's
//! upload becoming searchable, and the eval report's chart; every page is photographed at
//! desktop and phone width into `target/screenshots/<test>/`.
//!
//! One binary with its own runner (`harness = false`): the index, the server and chromedriver
//! are made once and shared by the tests, which run one after another, each in a fresh
//! browser profile, and are all stopped at the end however the tests went. Arguments as
//! libtest's: name filters, `--exact`, `--list`, `--ignored`.

#[path = "browser/chromium.rs"]
mod chromium;
mod common;

use anyhow::{ensure, Context, Result};
use chromium::{Browser, Chromedriver};
use common::{anjeon, ingest, new_token, post_json, request, shared, start_server_with, Server};
use fantoccini::key::Key;
use futures_util::FutureExt;
use serde_json::{json, Value};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The part of the corpus indexed before the server starts: one short statute the questions
/// are about, a second one for the law filter, and the safety letters (another kind).
const INDEXED: &[&str] = &[
    "statutes/식품위생분야종사자의건강진단규칙.md",
    "statutes/식품안전기본법_시행령.md",
    "mfds_data/mfds_safety_letters_subset.json",
];

/// What the admin uploads, with a query that finds it and the title its hits carry.
const UPLOADED: &[(&str, &str, &str)] = &[
    (
        "statutes/화장품법_시행령.md",
        "화장품 제조업 등록",
        "화장품법 시행령",
    ),
    (
        "pdf/정오표_3차수정_수분_식이섬유.pdf",
        "식이섬유 충분섭취량",
        "정오표_3차수정_수분_식이섬유",
    ),
];

const QUESTION: &str = "건강진단은 언제 다시 받아야 하나요?";
const OFF_TOPIC: &str = "비트코인 가격이 오를까요?";
const REFUSAL: &str = "찾은 문서에서 답을 확인할 수 없습니다";
/// Per test, on top of the waits inside it.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

/// The server under test and what the tests know about its data.
struct Site {
    url: String,
    admin_token: String,
    /// The files the admin uploads (copies, outside the data directory).
    uploads: Vec<PathBuf>,
    _server: Server,
    _tmp: tempfile::TempDir,
}

impl Site {
    /// Indexes [`INDEXED`], runs a short real eval into `<data>/eval/run1`, makes an admin
    /// token and starts the server with it.
    fn start() -> Site {
        let tmp = tempfile::tempdir().expect("a temporary folder");
        let docs = tmp.path().join("docs");
        for rel in INDEXED {
            copy(&shared().join(rel), &docs.join(rel));
        }
        let data = tmp.path().join("data");
        ingest(&data, &docs, "public");

        let bench = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/bench");
        let out = anjeon(&data)
            .env_remove("ANJEON_LLM_MODEL")
            .args(["eval", "--tasks", "kobest_copa", "--limit", "5"])
            .args(["--threads", "2", "--data-root"])
            .arg(&bench)
            .arg("--out")
            .arg(data.join("eval/run1"))
            .output()
            .expect("run anjeon eval");
        assert!(
            out.status.success() && data.join("eval/run1/results.json").is_file(),
            "anjeon eval: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        let uploads = UPLOADED
            .iter()
            .map(|(rel, _, _)| {
                let to = tmp.path().join("uploads").join(file_name(rel));
                copy(&shared().join(rel), &to);
                to
            })
            .collect();

        let (admin_token, config) = new_token(&data, "admin", "lee");
        let (server, url) = start_server_with(&data, &[("ANJEON_AUTH_TOKENS", &config)]);
        Site {
            url,
            admin_token,
            uploads,
            _server: server,
            _tmp: tmp,
        }
    }

    /// `/api/ask`'s whole answer to `question`, as the public.
    fn ask(&self, question: &str) -> Value {
        let body = json!({ "question": question, "stream": false }).to_string();
        let (status, body) = post_json(&self.url, "/api/ask", &body);
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("the answer's JSON")
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
}

fn file_name(rel: &str) -> &str {
    rel.rsplit('/').next().unwrap_or(rel)
}

/// Text without any whitespace, for comparing what the page shows with what the API said
/// regardless of how the page wraps and spaces it.
fn squeeze(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Types `question` into the chat and sends it with the ask button.
async fn send_question(b: &Browser, question: &str) -> Result<()> {
    let input = b.find("form#ask-form textarea#question").await?;
    input.clear().await?;
    input.send_keys(question).await?;
    b.find("form#ask-form button#ask-button")
        .await?
        .click()
        .await?;
    Ok(())
}

const CHAT: &str = "chat_streams_a_cited_answer_and_shows_the_cited_passage";

/// Ask → the answer streams into `#answer` with a citation → opening it (by keyboard) shows
/// the passage with the quoted sentence marked and a link to the source; the answer has its
/// feedback buttons; then a new conversation empties the chat.
async fn chat_streams_a_cited_answer_and_shows_the_cited_passage(
    site: &Site,
    b: &Browser,
) -> Result<()> {
    let expected = site.ask(QUESTION);
    ensure!(expected["refused"] == false, "the API refused: {expected}");

    b.open("/").await?;
    let live = b.find("#answer").await?.attr("aria-live").await?;
    ensure!(
        matches!(live.as_deref(), Some("polite" | "assertive")),
        "#answer must be an aria-live region (screen readers hear the streamed text), has aria-live={live:?}"
    );
    ensure!(
        !b.find_all(".example-question").await?.is_empty(),
        "the empty chat shows no .example-question"
    );
    b.screenshots(CHAT, "chat-empty", None).await?;

    // A mark that a page load would wipe, and a record of what #answer showed as it changed.
    b.js("window.anjeonTest = { states: [] };
         const answer = document.querySelector('#answer');
         new MutationObserver(() => window.anjeonTest.states.push(answer.textContent))
             .observe(answer, { childList: true, subtree: true, characterData: true });")
        .await?;
    send_question(b, QUESTION).await?;
    let cite = b.wait_for("#answer a.cite[data-n]").await?;
    let claims: Vec<String> = expected["claims"]
        .as_array()
        .context("claims")?
        .iter()
        .filter(|c| c["supported"] == true)
        .filter_map(|c| c["text"].as_str().map(squeeze))
        .collect();
    ensure!(
        !claims.is_empty(),
        "the API's answer has no supported claim: {expected}"
    );
    b.wait_until(
        "#answer shows every sentence of the API's answer",
        &format!(
            "(() => {{ const t = document.querySelector('#answer').textContent.replace(/\\s+/g, ''); return {}.every(c => t.includes(c)); }})()",
            json!(claims)
        ),
    )
    .await?;
    let streamed = b
        .js("return window.anjeonTest ? {
                states: window.anjeonTest.states.length,
                sse: performance.getEntriesByType('resource').some(e => new URL(e.name).pathname === '/api/ask'),
             } : null;")
        .await?;
    ensure!(
        streamed != Value::Null,
        "the page was reloaded to answer: the answer must stream into the open page"
    );
    ensure!(
        streamed["sse"] == true,
        "the page did not fetch /api/ask: {streamed}"
    );
    ensure!(
        streamed["states"].as_u64() > Some(0),
        "#answer never changed while answering: {streamed}"
    );

    let n: u64 = cite
        .attr("data-n")
        .await?
        .unwrap_or_default()
        .parse()
        .context("a.cite's data-n is not a number")?;
    let citation = expected["citations"]
        .as_array()
        .context("citations")?
        .iter()
        .find(|c| c["n"] == n)
        .with_context(|| format!("the page cites [{n}], the API's answer does not: {expected}"))?
        .clone();
    let kinds: Vec<String> = {
        let mut kinds = Vec::new();
        for button in b.find_all("button.feedback[data-kind]").await? {
            kinds.extend(button.attr("data-kind").await?);
        }
        kinds
    };
    for kind in ["helpful", "wrong", "bad-citation"] {
        ensure!(
            kinds.iter().any(|k| k == kind),
            "no button.feedback[data-kind={kind}] on the answer (has {kinds:?})"
        );
    }

    // by keyboard: a citation is reached and opened like any link
    cite.send_keys(&Key::Enter.to_string())
        .await
        .context("a.cite cannot be focused and opened by keyboard (Enter)")?;
    b.wait_for("#passage mark").await?;
    let panel = b.find("#passage").await?;
    ensure!(panel.is_displayed().await?, "#passage is there but hidden");
    let shown = squeeze(&panel.text().await?);
    for field in ["title", "locator"] {
        let value = citation[field].as_str().unwrap_or_default();
        ensure!(
            shown.contains(&squeeze(value)),
            "#passage does not show the citation's {field} {value:?}; it shows {shown:?}"
        );
    }
    // a citizen sees titles, not the storage keys of files
    let key = citation["doc"].as_str().unwrap_or_default();
    ensure!(
        !shown.contains(&squeeze(key)),
        "#passage shows the file key {key:?} to the public: {shown:?}"
    );
    let mut marked = String::new();
    for mark in b.find_all("#passage mark").await? {
        marked.push_str(&mark.text().await?);
    }
    let quote = citation["quote"].as_str().unwrap_or_default();
    ensure!(
        squeeze(&marked) == squeeze(quote),
        "the <mark> in #passage should be the quoted sentence {quote:?}, is {marked:?}"
    );

    let href = b
        .find("#passage a#source-link, a#source-link")
        .await?
        .prop("href")
        .await?
        .context("a#source-link has no href")?;
    let link = url::Url::parse(&href).with_context(|| format!("source link {href:?}"))?;
    let source = request(&site.url, "GET", link.path(), &[], "");
    ensure!(
        source.status == 200,
        "the source link {href} answers {}",
        source.status
    );
    let opening: String = quote.chars().take(12).collect();
    ensure!(
        source.body.contains(&opening),
        "the source document at {href} does not hold the quote's opening {opening:?}"
    );
    b.screenshots(CHAT, "chat-answer", Some("#passage")).await?;

    b.find("button#new-conversation").await?.click().await?;
    b.wait_until(
        "a new conversation clears the answer and shows the example questions again",
        "!document.querySelector('#answer a.cite') && [...document.querySelectorAll('.example-question')].some(e => e.offsetParent !== null)",
    )
    .await?;

    // the source document, opened at the cited place
    b.client().goto(&href).await?;
    b.expect_loaded("the source link").await?;
    let place = b
        .js_with(
            "const id = decodeURIComponent(location.hash.slice(1));
             const at = id && document.getElementById(id);
             return at ? at.innerText : null;",
            Vec::new(),
        )
        .await?;
    let place = place.as_str().with_context(|| {
        format!("the source link {href} does not lead to a place in the document (no #fragment naming an element there)")
    })?;
    ensure!(
        squeeze(place).contains(&squeeze(&opening)),
        "the source link {href} leads to a place that does not hold the quote {opening:?}…: {place:?}"
    );
    let target = link.fragment().map(|id| format!("[id='{id}']"));
    b.screenshots(CHAT, "document", target.as_deref()).await?;
    Ok(())
}

const REFUSED: &str = "a_question_outside_the_documents_is_refused";

/// A question the documents do not answer, asked by keyboard only, is refused as such, with
/// the closest passages.
async fn a_question_outside_the_documents_is_refused(site: &Site, b: &Browser) -> Result<()> {
    let expected = site.ask(OFF_TOPIC);
    ensure!(expected["refused"] == true, "the API answered: {expected}");
    b.open("/").await?;
    // by keyboard only: type, Tab to the ask button, Enter
    let input = b.find("form#ask-form textarea#question").await?;
    input.send_keys(OFF_TOPIC).await?;
    input.send_keys(&Key::Tab.to_string()).await?;
    let focused = b.client().active_element().await?;
    let id = focused.attr("id").await?;
    ensure!(
        id.as_deref() == Some("ask-button"),
        "Tab from the question goes to {:?} (id {id:?}), not button#ask-button",
        focused
            .html(false)
            .await?
            .chars()
            .take(120)
            .collect::<String>()
    );
    focused.send_keys(&Key::Enter.to_string()).await?;
    b.wait_for("#answer .refusal").await?;
    b.wait_until(
        "the refusal says so",
        &format!(
            "document.querySelector('#answer .refusal').textContent.includes({})",
            json!(REFUSAL)
        ),
    )
    .await?;
    let closest = expected["citations"][0]["title"]
        .as_str()
        .context("the refusal lists no passage")?;
    let answer = b.find("#answer").await?.text().await?;
    ensure!(
        squeeze(&answer).contains(&squeeze(closest)),
        "the refusal does not show the closest passage {closest:?}: {answer:?}"
    );
    b.screenshots(REFUSED, "chat-refusal", Some("#answer"))
        .await?;
    Ok(())
}

/// Submits the search form with `query` and, when given, the option of `select[name=…]`
/// whose label contains the given text; returns the hits' texts once the results are shown.
async fn search(b: &Browser, query: &str, filter: Option<(&str, &str)>) -> Result<Vec<String>> {
    b.open("/search").await?;
    let input = b.find("form#search-form input[name=q]").await?;
    if let Some((name, label)) = filter {
        let select = b
            .find(&format!("form#search-form select[name={name}]"))
            .await?;
        let mut value = None;
        for option in select.find_all(fantoccini::Locator::Css("option")).await? {
            if option.text().await?.contains(label) {
                value = option.attr("value").await?;
                break;
            }
        }
        let value = value
            .with_context(|| format!("select[name={name}] has no option labelled {label:?}"))?;
        select.select_by_value(&value).await?;
    }
    // A count already on the page is marked, so that only the new search's count is awaited,
    // whether the form loads a new page or the page's script updates this one.
    b.js("const c = document.querySelector('#result-count');
          if (c) { c.anjeonStale = true; c.anjeonText = c.textContent; }")
        .await?;
    input.send_keys(query).await?;
    input.send_keys(&Key::Enter.to_string()).await?;
    b.wait_until(
        "the search shows its results and #result-count",
        "(() => { const c = document.querySelector('#result-count');
                  return c && (!c.anjeonStale || c.textContent !== c.anjeonText); })()",
    )
    .await?;
    b.expect_loaded("the search").await?;
    let mut hits = Vec::new();
    for hit in b.find_all("li.hit").await? {
        hits.push(hit.text().await?);
    }
    Ok(hits)
}

/// The first number in `#result-count`.
async fn result_count(b: &Browser) -> Result<u64> {
    let text = b.find("#result-count").await?.text().await?;
    let digits: String = text
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .with_context(|| format!("#result-count holds no number: {text:?}"))
}

const SEARCH: &str = "search_with_a_law_filter_shows_highlighted_hits_of_that_law";

/// Officials' search: without a filter the health-check rule ranks first for "건강"; with the
/// law filter every hit is of the other law, matches are marked, facets and counts are shown,
/// and the CSV export holds the same hits.
async fn search_with_a_law_filter_shows_highlighted_hits_of_that_law(
    site: &Site,
    b: &Browser,
) -> Result<()> {
    b.open("/search").await?;
    b.screenshots(SEARCH, "search-empty", None).await?;

    let all = search(b, "건강", None).await?;
    ensure!(
        all.first()
            .is_some_and(|h| h.contains("식품위생 분야 종사자의 건강진단 규칙")),
        "unfiltered, the health-check rule should rank first for 건강: {all:?}"
    );
    let unfiltered = result_count(b).await?;

    let law = "식품안전기본법 시행령";
    let hits = search(b, "건강", Some(("law", law))).await?;
    ensure!(!hits.is_empty(), "no hits for 건강 in {law}");
    for hit in &hits {
        ensure!(hit.contains(law), "a hit outside {law}: {hit:?}");
    }
    let filtered = result_count(b).await?;
    ensure!(
        (hits.len() as u64) <= filtered && filtered < unfiltered,
        "#result-count: {filtered} with the filter, {unfiltered} without, {} hits shown",
        hits.len()
    );
    // what is marked is the query's term (a hit may match by its title only, unmarked)
    let mut marked_hits = 0;
    for (i, hit) in b.find_all("li.hit").await?.iter().enumerate() {
        let mut marked = Vec::new();
        for mark in hit.find_all(fantoccini::Locator::Css("mark")).await? {
            marked.push(mark.text().await?);
        }
        let text = hit.text().await?;
        ensure!(
            marked.iter().all(|m| m.contains("건강")),
            "hit {i} marks {marked:?}, not only the query's term: {text:?}"
        );
        marked_hits += usize::from(!marked.is_empty());
    }
    ensure!(marked_hits > 0, "no hit has a <mark>: {hits:?}");
    ensure!(
        !b.find_all(".facet").await?.is_empty(),
        "no .facet (result counts per facet)"
    );
    b.screenshots(SEARCH, "search-results", None).await?;

    let href = b
        .find("a#export-csv")
        .await?
        .prop("href")
        .await?
        .context("a#export-csv has no href")?;
    let link = url::Url::parse(&href)?;
    let path = match link.query() {
        Some(q) => format!("{}?{q}", link.path()),
        None => link.path().to_string(),
    };
    let csv = request(&site.url, "GET", &path, &[], "");
    ensure!(csv.status == 200, "{href} answers {}", csv.status);
    ensure!(
        csv.head.contains("text/csv"),
        "{href} is not CSV: {}",
        csv.head
    );
    let records = csv_records(csv.body.trim_start_matches('\u{feff}'));
    let rows = records.len().saturating_sub(1) as u64;
    ensure!(
        rows >= filtered.min(hits.len() as u64) && rows <= filtered,
        "the CSV export has {rows} rows under its header for {filtered} hits ({} on the page):\n{}",
        hits.len(),
        csv.body.chars().take(600).collect::<String>()
    );
    for record in records.iter().skip(1) {
        ensure!(
            record.iter().any(|field| field == law),
            "a CSV row outside {law}: {record:?}"
        );
    }
    Ok(())
}

/// The records of an RFC 4180 CSV text (quoted fields may hold commas, quotes and newlines).
fn csv_records(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let (mut record, mut field) = (Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => {}
            (false, '\n') => {
                record.push(std::mem::take(&mut field));
                records.push(std::mem::take(&mut record));
            }
            (false, c) => field.push(c),
        }
    }
    if !field.is_empty() || !record.is_empty() {
        record.push(field);
        records.push(record);
    }
    records
}

const UPLOAD: &str = "an_admin_uploads_two_documents_and_they_become_searchable";

/// `/admin` is closed to the public; an admin signs in with a token, drops two files on the
/// upload input, watches both reach done, and finds them in the document list and in search.
async fn an_admin_uploads_two_documents_and_they_become_searchable(
    site: &Site,
    b: &Browser,
) -> Result<()> {
    for (_, query, title) in UPLOADED {
        let hits = search(b, query, None).await?;
        ensure!(
            !hits.iter().any(|h| h.contains(title)),
            "{title} is found before it was uploaded: {hits:?}"
        );
    }

    b.client().goto(&b.url("/admin")).await?;
    ensure!(
        b.find_all("#upload-zone, input#upload-input")
            .await?
            .is_empty(),
        "the public sees the admin's upload on /admin"
    );

    b.open("/login").await?;
    b.screenshots(UPLOAD, "login", None).await?;
    b.find("input#token")
        .await?
        .send_keys(&site.admin_token)
        .await?;
    b.find("button#login-button").await?.click().await?;
    b.wait_until("signing in leaves /login", "location.pathname !== '/login'")
        .await?;
    b.expect_loaded("after signing in").await?;

    b.open("/admin").await?;
    b.find("#upload-zone").await?;
    b.find("table#documents").await?;
    b.screenshots(UPLOAD, "admin", None).await?;
    let input = b.find("input#upload-input[type=file][multiple]").await?;
    let paths: Vec<String> = site
        .uploads
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    input.send_keys(&paths.join("\n")).await?;

    let names: Vec<&str> = UPLOADED.iter().map(|(rel, _, _)| file_name(rel)).collect();
    let start = Instant::now();
    b.wait_until(
        "#upload-progress shows each file done",
        &format!(
            "(() => {{
                const names = {};
                const rows = [...document.querySelectorAll('#upload-progress *')];
                return names.every(name => rows.some(row =>
                    row.textContent.includes(name)
                    && names.every(other => other === name || !row.textContent.includes(other))
                    && (row.textContent.includes('완료') || row.dataset.state === 'done'
                        || row.querySelector('[data-state=done]'))));
            }})()",
            json!(names)
        ),
    )
    .await?;
    let took = start.elapsed();
    let progress = b.find("#upload-progress").await?.text().await?;
    ensure!(!progress.contains("실패"), "an upload failed: {progress:?}");
    // the document list refreshes itself when the job ends, without a reload
    b.wait_until(
        "table#documents lists the uploaded files",
        &format!(
            "(() => {{
                const listed = document.querySelector('table#documents').textContent;
                return {}.every(name => listed.includes(name));
            }})()",
            json!(names)
        ),
    )
    .await?;
    b.screenshots(UPLOAD, "admin-uploaded", Some("#upload-progress"))
        .await?;
    for (_, query, title) in UPLOADED {
        let hits = search(b, query, None).await?;
        ensure!(
            hits.iter().any(|h| h.contains(title)),
            "{title} was uploaded ({took:?}) but is not found by {query:?}: {hits:?}"
        );
    }
    Ok(())
}

const EVAL: &str = "the_eval_page_charts_the_latest_run";

/// The eval report draws the run made at start-up as an SVG chart naming its task.
async fn the_eval_page_charts_the_latest_run(_site: &Site, b: &Browser) -> Result<()> {
    b.open("/eval").await?;
    let chart = b.wait_for("svg.chart").await?;
    let (_, _, width, height) = chart.rectangle().await?;
    ensure!(
        width > 50.0 && height > 20.0,
        "svg.chart is {width}×{height}"
    );
    let marks = chart
        .find_all(fantoccini::Locator::Css(
            "rect, line, path, circle, polyline",
        ))
        .await?;
    ensure!(!marks.is_empty(), "svg.chart draws nothing");
    let text = b.page_text().await;
    ensure!(
        text.contains("kobest_copa"),
        "/eval does not name the task kobest_copa: {text:?}"
    );
    ensure!(
        text.contains("0.4") || text.contains("40"),
        "/eval does not show kobest_copa's accuracy 0.4 (40%): {text:?}"
    );
    b.screenshots(EVAL, "eval", None).await?;
    // on a phone the chart with its labels above the bars shows, and fits the screen
    b.emulate(chromium::PHONE).await?;
    let fit = b
        .js("const s = [...document.querySelectorAll('svg.chart')].find(e => e.getClientRects().length > 0); \
             return s ? [s.getBoundingClientRect().width, document.documentElement.clientWidth, s.closest('.chart-narrow') !== null] : null;")
        .await?;
    b.emulate(chromium::DESKTOP).await?;
    let (width, screen, narrow) = (fit[0].as_f64(), fit[1].as_f64(), fit[2].as_bool());
    ensure!(
        narrow == Some(true) && width <= screen,
        "on a phone the eval chart should be the narrow one and fit the screen: {fit}"
    );
    Ok(())
}

const AUDIT: &str = "every_page_passes_an_accessibility_audit_at_both_widths";

/// Each page, in the states people see it in (an answer with its passage open, search
/// results, the admin's page), audited for its language, labels, names, AA contrast and, on
/// a phone, content wider than the screen.
async fn every_page_passes_an_accessibility_audit_at_both_widths(
    site: &Site,
    b: &Browser,
) -> Result<()> {
    let mut problems = Vec::new();
    let mut audit = async |page: &str| -> Result<()> {
        let found = b.audit().await?;
        problems.extend(found.into_iter().map(|p| format!("{page}: {p}")));
        Ok(())
    };
    b.open("/").await?;
    audit("/ (empty)").await?;
    send_question(b, QUESTION).await?;
    b.wait_for("#answer a.cite[data-n]").await?.click().await?;
    b.wait_for("#passage mark").await?;
    audit("/ (answer and passage)").await?;
    search(b, "건강진단", None).await?;
    audit("/search (results)").await?;
    b.open("/eval").await?;
    audit("/eval").await?;
    b.open("/login").await?;
    audit("/login").await?;
    b.find("input#token")
        .await?
        .send_keys(&site.admin_token)
        .await?;
    b.find("button#login-button").await?.click().await?;
    b.wait_until("signing in leaves /login", "location.pathname !== '/login'")
        .await?;
    b.open("/admin").await?;
    audit("/admin").await?;
    ensure!(
        problems.is_empty(),
        "{} accessibility problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
}

type Test = for<'a> fn(&'a Site, &'a Browser) -> Pin<Box<dyn Future<Output = Result<()>> + 'a>>;

const TESTS: &[(&str, Test)] = &[
    (CHAT, |s, b| {
        Box::pin(chat_streams_a_cited_answer_and_shows_the_cited_passage(
            s, b,
        ))
    }),
    (REFUSED, |s, b| {
        Box::pin(a_question_outside_the_documents_is_refused(s, b))
    }),
    (SEARCH, |s, b| {
        Box::pin(search_with_a_law_filter_shows_highlighted_hits_of_that_law(
            s, b,
        ))
    }),
    (UPLOAD, |s, b| {
        Box::pin(an_admin_uploads_two_documents_and_they_become_searchable(
            s, b,
        ))
    }),
    (EVAL, |s, b| {
        Box::pin(the_eval_page_charts_the_latest_run(s, b))
    }),
    (AUDIT, |s, b| {
        Box::pin(every_page_passes_an_accessibility_audit_at_both_widths(
            s, b,
        ))
    }),
];

/// Runs one test in a fresh browser session; on failure saves what the page looked like.
async fn run(driver: &Chromedriver, site: &Site, name: &str, test: Test) -> Result<()> {
    let shots = chromium::screenshot_dir().join(name);
    if shots.exists() {
        std::fs::remove_dir_all(&shots).with_context(|| format!("clear {}", shots.display()))?;
    }
    let browser = driver.session(&site.url).await?;
    let outcome =
        std::panic::AssertUnwindSafe(tokio::time::timeout(TEST_TIMEOUT, test(site, &browser)))
            .catch_unwind()
            .await;
    let result = match outcome {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(anyhow::anyhow!("timed out after {TEST_TIMEOUT:?}")),
        Err(panic) => Err(anyhow::anyhow!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
    };
    if result.is_err() {
        let _ = browser.screenshots(name, "failure", None).await;
    }
    browser.close().await;
    result
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |f: &str| args.iter().any(|a| a == f);
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let chosen: Vec<&(&str, Test)> = TESTS
        .iter()
        .filter(|(name, _)| {
            filters.is_empty()
                || filters.iter().any(|f| {
                    if flag("--exact") {
                        name == f
                    } else {
                        name.contains(f.as_str())
                    }
                })
        })
        .filter(|_| !flag("--ignored"))
        .collect();
    if flag("--list") {
        for (name, _) in &chosen {
            println!("{name}: test");
        }
        return ExitCode::SUCCESS;
    }
    let plural = if chosen.len() == 1 { "" } else { "s" };
    println!("\nrunning {} test{plural}", chosen.len());
    if chosen.is_empty() {
        println!("\ntest result: ok. 0 passed; 0 failed\n");
        return ExitCode::SUCCESS;
    }

    let start = Instant::now();
    let driver = Chromedriver::start();
    let site = Site::start();
    println!(
        "index, eval run and server ready in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let mut failed = Vec::new();
    for (name, test) in &chosen {
        let began = Instant::now();
        match runtime.block_on(run(&driver, &site, name, *test)) {
            Ok(()) => println!(
                "test {name} ... ok ({:.1} s)",
                began.elapsed().as_secs_f64()
            ),
            Err(e) => {
                println!(
                    "test {name} ... FAILED ({:.1} s)",
                    began.elapsed().as_secs_f64()
                );
                failed.push((name, e));
            }
        }
    }
    for (name, e) in &failed {
        println!("\n---- {name} ----\n{e:#}");
    }
    println!("\nscreenshots: {}", chromium::screenshot_dir().display());
    println!(
        "test result: {}. {} passed; {} failed; finished in {:.1} s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        chosen.len() - failed.len(),
        failed.len(),
        start.elapsed().as_secs_f64()
    );
    drop(driver);
    drop(site);
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
