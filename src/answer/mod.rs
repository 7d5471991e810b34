//! Grounded answers: a question (with its conversation and the caller's role) becomes an
//! answer whose every sentence cites a passage that supports it, or a refusal that says so.
//!
//! ```text
//! question ─question.rs─▶ NFC, standalone follow-up ─retrieve.rs─▶ hybrid search (access
//! filter inside) → rerank → pack [1..k] ─extract.rs (+ parallel.rs) | generator
//! (prompt.rs)─▶ sentences ─verify.rs─▶ verdicts, re-citation ─guard.rs─▶ leak guard, PII
//! ─▶ Answer | refusal
//! ```

#[cfg(test)]
mod calibrate;
mod extract;
mod guard;
pub mod measure;
mod parallel;
pub mod prompt;
pub mod question;
pub mod retrieve;
#[cfg(test)]
mod tests;
pub mod text;
mod thesaurus;
pub mod verify;

pub use crate::auth::Role;
pub use crate::config::AnswerMode;
pub use guard::LEAK_SPAN_CHARS;
pub use measure::{measure, RagItem, RagReport};
pub use prompt::Prompts;

use crate::config::AnswerConfig;
use crate::error::{Error, Result};
use crate::filter::{Access, SearchFilter};
use crate::index::Index;
use crate::llm::{GenerateParams, Generator, Prompt};
use retrieve::{QuestionTerms, RerankWeights, Scored};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Instant;
use text::CitedSentence;
use verify::{SupportSettings, Verifier};

/// One earlier exchange of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    pub question: String,
    #[serde(default)]
    pub answer: String,
}

/// A question as callers (CLI, HTTP API, eval) state it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AskRequest {
    pub question: String,
    #[serde(default)]
    pub role: Role,
    /// Earlier turns, oldest first.
    #[serde(default)]
    pub history: Vec<Turn>,
}

/// A passage an answer cites (or, in a refusal, one of the closest passages found).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Citation {
    /// The number the answer text uses: `[n]`.
    pub n: usize,
    pub doc: String,
    pub locator: String,
    /// The sentence of the passage that supports the answer (redacted for public callers).
    pub quote: String,
    pub title: String,
    /// The whole passage (redacted for public callers), for showing it beside the answer.
    pub text: String,
    /// Passage id in the index.
    pub id: u64,
    /// The passage's access level (`public` or `internal`).
    pub access: String,
}

/// How a claim fared in verification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Its own citations support it.
    Supported,
    /// Another packed passage supports it; it now cites that one.
    Recited,
    /// Nothing packed supports it: left out of the answer.
    Unsupported,
    /// It repeats a document the caller may not read: left out of the answer.
    Withheld,
}

/// One sentence of the answer and its verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub text: String,
    pub citations: Vec<usize>,
    pub supported: bool,
    /// Support score against the best cited passage, 0..=1.
    pub score: f32,
    pub verdict: Verdict,
}

/// Why an answer is a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalReason {
    /// No passage is relevant enough.
    WeakRetrieval,
    /// Passages were found, but no sentence of the answer survived verification.
    NoSupportedClaim,
    /// The question names something no readable document mentions.
    UnknownSubject,
}

/// Where the time of one answer went, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub retrieval_ms: f64,
    pub generation_ms: f64,
    pub verification_ms: f64,
    /// Until the first text reached the caller.
    pub first_text_ms: f64,
    pub total_ms: f64,
}

/// The whole answer: what `anjeon ask --json` prints and `/api/ask` sends last.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    pub answer: String,
    pub refused: bool,
    pub citations: Vec<Citation>,
    pub claims: Vec<Claim>,
    pub prompt_version: String,
    /// The standalone question that was searched (the follow-up rewritten).
    pub question: String,
    pub mode: AnswerMode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refusal_reason: Option<RefusalReason>,
    /// The question was about the asker's own health: the answer starts with a referral.
    pub medical_referral: bool,
    pub timings: Timings,
}

/// Makes answers. Holds references only: build one per request or keep one per server.
pub struct Answerer<'a> {
    index: &'a Index,
    generator: Option<&'a dyn Generator>,
    prompts: Prompts,
    config: AnswerConfig,
}

impl<'a> Answerer<'a> {
    /// An answerer over `index`. Generative mode needs a generator; extractive mode uses one
    /// only to count tokens when given.
    pub fn new(
        index: &'a Index,
        generator: Option<&'a dyn Generator>,
        prompts: Prompts,
        config: AnswerConfig,
    ) -> Result<Self> {
        if config.mode == AnswerMode::Generative && generator.is_none() {
            return Err(Error::Config(
                "answer.mode = \"generative\" needs a language model".into(),
            ));
        }
        Ok(Answerer {
            index,
            generator,
            prompts,
            config,
        })
    }

    /// The prompt set of `config.prompts_dir` (built-in when empty).
    pub fn load_prompts(config: &AnswerConfig) -> Result<Prompts> {
        let dir = (!config.prompts_dir.is_empty()).then(|| Path::new(&config.prompts_dir));
        Prompts::load(dir)
    }

    pub fn config(&self) -> &AnswerConfig {
        &self.config
    }

    /// The prompt set answers are made with.
    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    /// Answers `req`. Verified text reaches `on_text` sentence by sentence as soon as it is
    /// final (never a sentence that verification drops); `on_text` returning `false` stops
    /// the answer early. The returned [`Answer`] holds the whole text, citations and verdicts.
    pub fn answer(
        &self,
        req: &AskRequest,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Answer> {
        let start = Instant::now();
        let mut timings = Timings::default();
        let asked = question::normalise(&req.question);
        if asked.is_empty() {
            return Err(Error::InvalidInput(
                "질문이 비어 있습니다 (empty question)".into(),
            ));
        }
        if asked.chars().count() > question::MAX_QUESTION_CHARS {
            return Err(Error::InvalidInput(format!(
                "질문은 {}자 이내로 입력해 주세요 (question too long)",
                question::MAX_QUESTION_CHARS
            )));
        }
        let filter = SearchFilter {
            access: req.role.access(),
            ..Default::default()
        };
        let standalone = self.standalone(&asked, &req.history)?;
        let terms = QuestionTerms::new(self.index, &standalone, &filter)?;
        let weights = RerankWeights::of(&self.config);
        let ranked = retrieve::retrieve(
            self.index,
            &standalone,
            &terms,
            &filter,
            retrieve::Pool::of(&self.config),
            &weights,
            self.config.rerank,
        )?;
        timings.retrieval_ms = ms(start);
        let found = Found {
            medical: question::is_own_medical_case(&asked),
            standalone,
            terms,
            filter,
            ranked,
        };

        let mut out = Output::new(start, on_text, req.role == Role::Public);
        if found.medical {
            out.emit(&format!("{}\n", self.prompts.render_medical()));
        }
        if !found.terms.unknown.is_empty() {
            return self.refuse(out, RefusalReason::UnknownSubject, &found, timings);
        }
        // the best passage's match itself: a definition or a named body picks among
        // passages, but makes no weak match an answer
        let best = found.ranked.first().map(|s| s.evidence).unwrap_or(0.0);
        if best < self.config.min_relevance {
            return self.refuse(out, RefusalReason::WeakRetrieval, &found, timings);
        }
        let counter = |t: &str| match self.generator {
            Some(g) => g.count_tokens(t),
            // Without a model, a character is a safe upper bound on a token.
            None => Ok(t.chars().count()),
        };
        let packed = retrieve::pack(
            &found.ranked,
            self.config.context_passages,
            self.config.context_tokens,
            &counter,
        )?;

        let generation_start = Instant::now();
        // An extractive answer's quotes, each also citing the passages of other laws that
        // state the same rule (`parallel.rs`), which join the numbered passages after `packed`.
        let mut quotes = Vec::new();
        let mut extra = Vec::new();
        if self.config.mode == AnswerMode::Extractive {
            quotes = extract::best_sentences(self.index, &found.terms, &packed, &self.config)?;
            let parallels = parallel::parallels(self.index, &quotes, &packed, &found.filter)?;
            for (i, n) in parallels.links {
                quotes[i].citations.push(n);
            }
            extra = parallels.extra;
        }
        let packed: Vec<&Scored> = packed.iter().copied().chain(&extra).collect();
        let verifier = Verifier::new(
            self.index,
            SupportSettings {
                threshold: self.config.min_support,
                embedding_weight: self.config.support_embedding_weight,
                cosine_floor: self.config.cosine_floor,
                cosine_ceiling: self.config.cosine_ceiling,
            },
        );
        let mut claims: Vec<Claim> = Vec::new();
        let mut verification_ms = 0.0;
        let mut check = |sentences: &[CitedSentence], out: &mut Output| -> Result<()> {
            let t = Instant::now();
            // A base model that loops repeats its sentences; each is said once.
            let fresh: Vec<CitedSentence> = sentences
                .iter()
                .filter(|s| !claims.iter().any(|c| c.text == s.text))
                .cloned()
                .collect();
            for mut claim in verifier.check(&fresh, &packed)? {
                if claim.supported && req.role == Role::Public {
                    let cited: Vec<&str> = claim
                        .citations
                        .iter()
                        .filter_map(|&n| packed.get(n.checked_sub(1)?).map(|s| s.hit.text.as_str()))
                        .collect();
                    if guard::leaks_internal(self.index, &claim.text, &cited)? {
                        claim.supported = false;
                        claim.verdict = Verdict::Withheld;
                    }
                }
                if claim.supported {
                    let marks: Vec<String> =
                        claim.citations.iter().map(|n| format!("[{n}]")).collect();
                    let sep = if out.text.is_empty() || out.text.ends_with('\n') {
                        ""
                    } else {
                        "\n"
                    };
                    out.emit(&format!("{sep}{} {}", claim.text, marks.join("")));
                }
                claims.push(claim);
            }
            verification_ms += ms(t);
            Ok(())
        };
        match self.config.mode {
            AnswerMode::Extractive => check(&quotes, &mut out)?,
            AnswerMode::Generative => {
                let generator = self.generator.ok_or_else(|| {
                    Error::Config("generative answers need a language model".into())
                })?;
                self.generate(generator, &found.standalone, &packed, &mut |s| {
                    check(s, &mut out)
                })?;
            }
        }
        timings.generation_ms = ms(generation_start) - verification_ms;
        timings.verification_ms = verification_ms;
        if !claims.iter().any(|c| c.supported) {
            let mut refusal = self.refuse(out, RefusalReason::NoSupportedClaim, &found, timings)?;
            refusal.claims = claims;
            return Ok(refusal);
        }
        let citations = cite(&claims, &packed, req.role == Role::Public);
        timings.first_text_ms = out.first_text_ms.unwrap_or_else(|| ms(start));
        timings.total_ms = ms(start);
        Ok(Answer {
            answer: out.text,
            refused: false,
            citations,
            claims,
            prompt_version: self.prompts.version.clone(),
            question: found.standalone.clone(),
            mode: self.config.mode,
            refusal_reason: None,
            medical_referral: found.medical,
            timings,
        })
    }
}

impl Answerer<'_> {
    /// The question to search: a follow-up gets the subject of the conversation's previous
    /// standalone question (see [`question::rewrite_follow_up`]).
    fn standalone(&self, asked: &str, history: &[Turn]) -> Result<String> {
        let mut previous: Option<String> = None;
        for turn in history {
            let q = question::normalise(&turn.question);
            if q.is_empty() {
                continue;
            }
            previous = Some(match previous {
                Some(p) if question::is_follow_up(&q) => self.rewrite(&q, &p)?,
                _ => q,
            });
        }
        match previous {
            Some(p) if question::is_follow_up(asked) => self.rewrite(asked, &p),
            _ => Ok(asked.to_string()),
        }
    }

    fn rewrite(&self, follow_up: &str, previous: &str) -> Result<String> {
        let previous_terms = self.index.analyse(previous)?;
        let own_terms = self.index.analyse(follow_up)?;
        Ok(question::rewrite_follow_up(
            follow_up,
            &previous_terms,
            &own_terms,
        ))
    }

    /// Generative mode: the base model continues the few-shot document; each completed
    /// sentence goes to `on_sentences` (verification) while the rest is still being written.
    fn generate(
        &self,
        generator: &dyn Generator,
        question: &str,
        packed: &[&Scored],
        on_sentences: &mut dyn FnMut(&[CitedSentence]) -> Result<()>,
    ) -> Result<()> {
        let passages: Vec<String> = packed
            .iter()
            .enumerate()
            .map(|(i, s)| {
                self.prompts.render_passage(
                    i + 1,
                    &source_of(s),
                    &guard::strip_instructions(&s.hit.text),
                )
            })
            .collect();
        let prompt = self
            .prompts
            .render_answer_prompt(&passages.join("\n"), question);
        let params = GenerateParams {
            max_tokens: self.config.max_tokens,
            stop: self.prompts.stop_sequences(),
            ..Default::default()
        };
        let mut buffer = String::new();
        let mut failed: Option<Error> = None;
        generator.generate(&Prompt::Text(prompt), &params, &mut |piece| {
            buffer.push_str(piece);
            let parts = text::sentences(&buffer);
            if parts.len() < 2 {
                return true;
            }
            let complete = parts[..parts.len() - 1].join(" ");
            let rest = parts.last().cloned().unwrap_or_default();
            buffer = rest;
            match on_sentences(&text::cited_sentences(&complete, packed.len())) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        on_sentences(&text::cited_sentences(&buffer, packed.len()))
    }

    /// A refusal naming what was searched, with the closest passages as its citations.
    fn refuse(
        &self,
        mut out: Output,
        reason: RefusalReason,
        found: &Found,
        mut timings: Timings,
    ) -> Result<Answer> {
        let Found {
            standalone,
            terms,
            filter,
            ranked,
            medical,
        } = found;
        let public = filter.access == [Access::Public];
        let closest: Vec<Citation> = ranked
            .iter()
            .take(CLOSEST_PASSAGES)
            .enumerate()
            .map(|(i, s)| {
                let quote = extract::closest_sentence(self.index, terms, &s.hit.text, &s.hit.title)
                    .unwrap_or_else(|_| s.hit.text.chars().take(160).collect());
                citation(i + 1, s, &quote, public)
            })
            .collect();
        let scope = if public {
            "공개 문서"
        } else {
            "공개·내부 문서"
        };
        // An unknown subject is what was searched for in vain; otherwise all the words were.
        let words = if reason == RefusalReason::UnknownSubject {
            terms.unknown.join(" ")
        } else if terms.subjects.is_empty() {
            searched_words(&terms.terms)
        } else {
            terms.subjects.join(" ")
        };
        let searched = format!("{scope}에서 \"{words}\"");
        let listed: Vec<String> = closest
            .iter()
            .map(|c| {
                if c.locator.is_empty() || c.locator == c.title {
                    format!("[{}] {}", c.n, c.title)
                } else {
                    format!("[{}] {} ({})", c.n, c.title, c.locator)
                }
            })
            .collect();
        let closest_text = if listed.is_empty() {
            String::new()
        } else {
            format!(" 가장 가까운 자료: {}.", listed.join(", "))
        };
        let text =
            self.prompts
                .render_refusal(&question::normalise(standalone), &searched, &closest_text);
        out.emit(&text);
        timings.first_text_ms = out.first_text_ms.unwrap_or_default();
        timings.total_ms = ms(out.start);
        Ok(Answer {
            answer: out.text,
            refused: true,
            citations: closest,
            claims: Vec::new(),
            prompt_version: self.prompts.version.clone(),
            question: standalone.clone(),
            mode: self.config.mode,
            refusal_reason: Some(reason),
            medical_referral: *medical,
            timings,
        })
    }
}

/// What retrieval found for a question, as a refusal reports it.
struct Found {
    standalone: String,
    terms: QuestionTerms,
    filter: SearchFilter,
    ranked: Vec<Scored>,
    medical: bool,
}

/// Closest passages a refusal shows.
const CLOSEST_PASSAGES: usize = 3;

/// The answer text as it is streamed: redacted for public callers, with the time of its
/// first piece.
struct Output<'f> {
    start: Instant,
    text: String,
    on_text: &'f mut dyn FnMut(&str) -> bool,
    open: bool,
    redact: bool,
    first_text_ms: Option<f64>,
}

impl<'f> Output<'f> {
    fn new(start: Instant, on_text: &'f mut dyn FnMut(&str) -> bool, redact: bool) -> Self {
        Output {
            start,
            text: String::new(),
            on_text,
            open: true,
            redact,
            first_text_ms: None,
        }
    }

    fn emit(&mut self, piece: &str) {
        let piece = if self.redact {
            anjeon_ingest::redact(piece).into_owned()
        } else {
            piece.to_string()
        };
        self.text.push_str(&piece);
        if self.first_text_ms.is_none() {
            self.first_text_ms = Some(ms(self.start));
        }
        if self.open {
            self.open = (self.on_text)(&piece);
        }
    }
}

/// How a passage is named to the model: its title and locator.
fn source_of(s: &Scored) -> String {
    if s.hit.title.contains(&s.hit.locator) || s.hit.locator.is_empty() {
        s.hit.title.clone()
    } else {
        format!("{} {}", s.hit.title, s.hit.locator)
    }
}

fn citation(n: usize, s: &Scored, quote: &str, public: bool) -> Citation {
    let shown = |t: &str| {
        if public {
            anjeon_ingest::redact(t).into_owned()
        } else {
            t.to_string()
        }
    };
    Citation {
        n,
        doc: s.hit.doc.clone(),
        locator: s.hit.locator.clone(),
        quote: shown(quote),
        title: s.hit.title.clone(),
        text: shown(&s.hit.text),
        id: s.hit.id,
        access: s.hit.access.clone(),
    }
}

/// The citations of the supported claims, in order of first use, each with the passage
/// sentence closest to the claims that cite it.
fn cite(claims: &[Claim], packed: &[&Scored], public: bool) -> Vec<Citation> {
    let mut used: Vec<usize> = Vec::new();
    for c in claims.iter().filter(|c| c.supported) {
        for &n in &c.citations {
            if !used.contains(&n) {
                used.push(n);
            }
        }
    }
    used.into_iter()
        .filter_map(|n| {
            let s = packed.get(n.checked_sub(1)?)?;
            let claims_text: String = claims
                .iter()
                .filter(|c| c.supported && c.citations.contains(&n))
                .map(|c| c.text.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            let quote = text::sentences(&s.hit.text)
                .into_iter()
                .max_by(|a, b| {
                    text::bigram_containment(a, &claims_text)
                        .total_cmp(&text::bigram_containment(b, &claims_text))
                })
                .unwrap_or_else(|| s.hit.text.clone());
            Some(citation(n, s, &quote, public))
        })
        .collect()
}

/// The question's terms as a person would read them: compound parts and single syllables
/// (verb stems, counters) left out, since the whole words are there.
fn searched_words(terms: &[String]) -> String {
    let words: Vec<&str> = terms
        .iter()
        .map(String::as_str)
        .filter(|t| t.chars().count() >= 2)
        .collect();
    words
        .iter()
        .filter(|t| !words.iter().any(|o| o != *t && o.contains(**t)))
        .copied()
        .collect::<Vec<_>>()
        .join(" ")
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}
