//! OpenAI-compatible endpoints: `/v1/chat/completions` and `/v1/completions` (streaming by
//! SSE or whole), `/v1/models`, `/v1/embeddings`, with OpenAI's request, response and error
//! shapes, so the official SDKs and tools such as lm-evaluation-harness can talk to us.

use super::{ApiError, AppState};
use crate::error::Error;
use crate::llm::generator::{ChatMessage, Prompt};
use crate::llm::{Finish, GenerateParams, Generation, Generator, SamplingParams};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;

/// Tokens generated when a request does not say.
const DEFAULT_MAX_TOKENS: usize = 512;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn request_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!(
        "{prefix}-{:x}{:04x}",
        now(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn invalid(param: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        error: Error::InvalidInput(message.into()),
        param: Some(param),
    }
}

/// Parses a JSON body, answering malformed or oversized ones in OpenAI's error shape.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::from(Error::TooLarge(
                "요청 본문이 너무 큽니다. 내용을 줄여 다시 보내 주세요. (the request body exceeds the server's limit, server.max_body_bytes)".into(),
            ))
        } else {
            ApiError::from(Error::InvalidInput(format!(
                "cannot read the request body: {e}"
            )))
        }
    })?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::from(Error::InvalidInput(format!("malformed JSON: {e}"))))
}

/// Parses `body` as the JSON request of `route` and validates what needs no model (sampling
/// parameters against a 2048-token context): the fuzz target `api_json` drives this, and any
/// bytes must give `Ok` or an error, never a panic.
pub fn check_request(route: &str, body: &[u8]) -> crate::Result<()> {
    let bytes = Bytes::copy_from_slice(body);
    let unwrap = |r: Result<(), ApiError>| r.map_err(|e| e.error);
    match route {
        "/api/ask" => unwrap(parse::<super::ask::AskBody>(Ok(bytes)).map(|_| ())),
        "/v1/chat/completions" => unwrap(
            parse::<ChatRequest>(Ok(bytes))
                .and_then(|r| r.sampling.params(2048, false).map(|_| ())),
        ),
        "/v1/completions" => unwrap(
            parse::<CompletionRequest>(Ok(bytes))
                .and_then(|r| r.sampling.params(2048, r.echo).map(|_| ())),
        ),
        "/v1/embeddings" => unwrap(parse::<EmbeddingRequest>(Ok(bytes)).map(|_| ())),
        "/tokenize" => unwrap(parse::<TokenizeRequest>(Ok(bytes)).map(|_| ())),
        other => Err(Error::NotFound(format!("no JSON route {other}"))),
    }
}

/// The routes [`check_request`] knows.
pub const JSON_ROUTES: &[&str] = &[
    "/api/ask",
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/tokenize",
];

pub async fn models(State(state): State<Arc<AppState>>) -> Json<Value> {
    let created = now();
    Json(json!({
        "object": "list",
        "data": [
            {"id": state.engine.model_id(), "object": "model", "created": created, "owned_by": "anjeon",
             "max_model_len": state.engine.context_tokens()},
            {"id": state.embedding_model, "object": "model", "created": created, "owned_by": "anjeon"},
        ]
    }))
}

/// `stop` may be one string or a list.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

/// Message content: a string or a list of typed parts (only text parts are accepted).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
struct ContentPart {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<Content>,
}

/// Sampling fields shared by both completion endpoints.
#[derive(Debug, Deserialize)]
struct Sampling {
    model: String,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    max_completion_tokens: Option<usize>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    /// Extension (as llama.cpp and vLLM accept it).
    #[serde(default)]
    top_k: Option<usize>,
    #[serde(default, alias = "repeat_penalty")]
    repetition_penalty: Option<f32>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stop: Option<Stop>,
    #[serde(default)]
    n: Option<usize>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct ChatRequest {
    messages: Vec<InMessage>,
    #[serde(flatten)]
    sampling: Sampling,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PromptField {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct CompletionRequest {
    prompt: PromptField,
    #[serde(default)]
    echo: bool,
    #[serde(default)]
    logprobs: Option<usize>,
    #[serde(flatten)]
    sampling: Sampling,
}

impl Sampling {
    fn check_model(&self, state: &AppState) -> Result<(), ApiError> {
        let id = state.engine.model_id();
        if self.model == id {
            Ok(())
        } else {
            Err(ApiError {
                error: Error::NotFound(format!(
                    "the model `{}` does not exist; this server serves `{id}`",
                    self.model
                )),
                param: Some("model"),
            })
        }
    }

    fn params(&self, context: usize, allow_zero: bool) -> Result<GenerateParams, ApiError> {
        if self.n.unwrap_or(1) != 1 {
            return Err(invalid("n", "only n = 1 is supported"));
        }
        let max_tokens = self
            .max_completion_tokens
            .or(self.max_tokens)
            .unwrap_or(DEFAULT_MAX_TOKENS.min(context));
        if (max_tokens == 0 && !allow_zero) || max_tokens >= context {
            return Err(invalid(
                "max_tokens",
                format!("max_tokens must be between 1 and {}", context - 1),
            ));
        }
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(invalid(
                "temperature",
                "temperature must be between 0 and 2",
            ));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(invalid("top_p", "top_p must be in (0, 1]"));
        }
        let repeat_penalty = self.repetition_penalty.unwrap_or(1.0);
        // 1e39 is a valid JSON number that becomes an infinite f32
        if !(repeat_penalty.is_finite() && repeat_penalty > 0.0) {
            return Err(invalid(
                "repetition_penalty",
                "repetition_penalty must be a positive finite number",
            ));
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) if v.len() <= 4 => v.clone(),
            Some(Stop::Many(_)) => return Err(invalid("stop", "at most 4 stop sequences")),
        };
        let defaults = SamplingParams::default();
        Ok(GenerateParams {
            max_tokens,
            stop,
            sampling: SamplingParams {
                temperature,
                top_k: self.top_k.unwrap_or(defaults.top_k),
                top_p,
                repeat_penalty,
                repeat_last_n: defaults.repeat_last_n,
                seed: self.seed.unwrap_or_else(rand_seed),
            },
        })
    }
}

/// A seed for requests that do not fix one.
fn rand_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

fn finish_reason(f: Finish) -> &'static str {
    match f {
        Finish::Stop | Finish::Cancelled => "stop",
        Finish::Length => "length",
    }
}

fn usage(g: &Generation) -> Value {
    json!({
        "prompt_tokens": g.prompt_tokens,
        "completion_tokens": g.completion_tokens,
        "total_tokens": g.prompt_tokens + g.completion_tokens,
    })
}

/// The two response dialects.
#[derive(Clone, Copy)]
enum Dialect {
    Chat,
    Text,
}

pub async fn chat_completions(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: ChatRequest = parse(body)?;
    req.sampling.check_model(&state)?;
    if req.messages.is_empty() {
        return Err(invalid("messages", "messages must not be empty"));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in req.messages {
        if !matches!(
            m.role.as_str(),
            "system" | "developer" | "user" | "assistant"
        ) {
            return Err(invalid(
                "messages",
                format!("unsupported role `{}`", m.role),
            ));
        }
        let content = match m.content {
            None => String::new(),
            Some(Content::Text(t)) => t,
            Some(Content::Parts(parts)) => {
                let mut text = String::new();
                for p in parts {
                    match (p.kind.as_str(), p.text) {
                        ("text", Some(t)) => text.push_str(&t),
                        (kind, _) => {
                            return Err(invalid(
                                "messages",
                                format!("content parts of type `{kind}` are not supported"),
                            ))
                        }
                    }
                }
                text
            }
        };
        messages.push(ChatMessage {
            role: m.role,
            content,
        });
    }
    let params = req.sampling.params(state.engine.context_tokens(), false)?;
    let include_usage = req.sampling.stream_options.is_some_and(|o| o.include_usage);
    run(
        state,
        Prompt::Chat(messages),
        params,
        req.sampling.stream,
        include_usage,
        Dialect::Chat,
    )
    .await
}

pub async fn completions(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CompletionRequest = parse(body)?;
    req.sampling.check_model(&state)?;
    let prompt = match req.prompt {
        PromptField::One(p) => p,
        PromptField::Many(mut v) if v.len() == 1 => v.remove(0),
        PromptField::Many(_) => return Err(invalid("prompt", "send one prompt per request")),
    };
    let params = req
        .sampling
        .params(state.engine.context_tokens(), req.echo)?;
    if req.echo {
        if params.max_tokens != 0 || req.sampling.stream {
            return Err(invalid(
                "echo",
                "echo is supported for scoring only: max_tokens = 0, no streaming",
            ));
        }
        return echo(state, prompt, req.logprobs).await;
    }
    let include_usage = req.sampling.stream_options.is_some_and(|o| o.include_usage);
    run(
        state,
        Prompt::Text(prompt),
        params,
        req.sampling.stream,
        include_usage,
        Dialect::Text,
    )
    .await
}

/// `echo` with `max_tokens = 0`: the prompt's own tokens with their log-probabilities, the
/// way lm-evaluation-harness scores continuations through an API.
async fn echo(
    state: Arc<AppState>,
    prompt: String,
    logprobs: Option<usize>,
) -> Result<Response, ApiError> {
    let engine = state.engine.clone();
    let text = prompt.clone();
    let scored = state
        .limits
        .stages()
        .whole(tokio::task::spawn_blocking(move || {
            engine.echo_logprobs(&text)
        }))
        .await?
        .map_err(|e| Error::Model(format!("scoring task failed: {e}")))??;
    let logprobs_obj = logprobs.map(|_| {
        json!({
            "tokens": scored.tokens,
            "token_logprobs": scored.logprobs,
            "text_offset": scored.offsets,
            "top_logprobs": scored.top.iter().zip(&scored.logprobs).map(|(t, lp)| match (t, lp) {
                (Some(t), Some(_)) => json!({ t: Value::Null }),
                _ => Value::Null,
            }).collect::<Vec<_>>(),
        })
    });
    let n = scored.tokens.len();
    Ok(Json(json!({
        "id": request_id("cmpl"),
        "object": "text_completion",
        "created": now(),
        "model": state.engine.model_id(),
        "choices": [{"index": 0, "text": prompt, "logprobs": logprobs_obj, "finish_reason": "length"}],
        "usage": {"prompt_tokens": n, "completion_tokens": 0, "total_tokens": n},
    }))
    .into_response())
}

enum Item {
    Text(String),
    Done(crate::Result<Generation>),
}

async fn run(
    state: Arc<AppState>,
    prompt: Prompt,
    params: GenerateParams,
    stream: bool,
    include_usage: bool,
    dialect: Dialect,
) -> Result<Response, ApiError> {
    let (tx, mut rx) = mpsc::channel::<Item>(64);
    let engine = state.engine.clone();
    let stages = state.limits.stages();
    let route = match dialect {
        Dialect::Chat => "/v1/chat/completions",
        Dialect::Text => "/v1/completions",
    };
    tokio::task::spawn_blocking(move || {
        let result = engine.generate(&prompt, &params, &mut |text| {
            // a closed receiver means the client went away: cancel
            tx.blocking_send(Item::Text(text.to_string())).is_ok()
        });
        if let Ok(g) = &result {
            super::metrics::metrics().record_generation(route, g);
        }
        let _ = tx.blocking_send(Item::Done(result));
    });
    let id = request_id(match dialect {
        Dialect::Chat => "chatcmpl",
        Dialect::Text => "cmpl",
    });
    let model = state.engine.model_id();
    let created = now();
    if !stream {
        let mut text = String::new();
        while let Some(item) = stages.next(&mut rx).await? {
            match item {
                Item::Text(t) => text.push_str(&t),
                Item::Done(result) => {
                    let g = result?;
                    let choice = match dialect {
                        Dialect::Chat => json!({
                            "index": 0,
                            "message": {"role": "assistant", "content": g.text},
                            "finish_reason": finish_reason(g.finish),
                        }),
                        Dialect::Text => json!({
                            "index": 0, "text": g.text, "logprobs": null,
                            "finish_reason": finish_reason(g.finish),
                        }),
                    };
                    let object = match dialect {
                        Dialect::Chat => "chat.completion",
                        Dialect::Text => "text_completion",
                    };
                    return Ok(Json(json!({
                        "id": id, "object": object, "created": created, "model": model,
                        "choices": [choice], "usage": usage(&g),
                    }))
                    .into_response());
                }
            }
        }
        return Err(Error::Model("generation ended without a result".into()).into());
    }
    // Errors known before the first token (busy, prompt too long) get a proper status.
    let first = stages
        .first(&mut rx)
        .await?
        .ok_or_else(|| Error::Model("generation ended without a result".into()))?;
    let first = match first {
        Item::Done(Err(e)) => return Err(e.into()),
        other => other,
    };
    let chunk = move |delta: Value, finish: Option<&str>| -> Value {
        match dialect {
            Dialect::Chat => json!({
                "id": id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }),
            Dialect::Text => json!({
                "id": id, "object": "text_completion", "created": created, "model": model,
                "choices": [{"index": 0, "text": delta.get("content").cloned().unwrap_or(json!("")),
                             "logprobs": null, "finish_reason": finish}],
            }),
        }
    };
    let mut opening = Vec::new();
    if matches!(dialect, Dialect::Chat) {
        opening.push(chunk(json!({"role": "assistant", "content": ""}), None));
    }
    let to_chunks = move |item: Item| -> Vec<Value> {
        match item {
            Item::Text(t) => vec![chunk(json!({"content": t}), None)],
            Item::Done(Ok(g)) => {
                let mut out = vec![chunk(json!({}), Some(finish_reason(g.finish)))];
                if include_usage {
                    let mut u = chunk(json!({}), None);
                    u["choices"] = json!([]);
                    u["usage"] = usage(&g);
                    out.push(u);
                }
                out
            }
            Item::Done(Err(e)) => {
                vec![json!({"error": {"message": e.to_string(), "type": e.kind()}})]
            }
        }
    };
    let events = stream::iter(opening)
        .chain(
            stream::iter([Ok(first)])
                .chain(stages.stream(rx))
                .map(|item| item.unwrap_or_else(|e| Item::Done(Err(e))))
                .flat_map(move |item| stream::iter(to_chunks(item))),
        )
        .map(|v| Ok::<_, Infallible>(Event::default().data(v.to_string())))
        .chain(stream::iter([Ok(Event::default().data("[DONE]"))]));
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[derive(Debug, Deserialize)]
struct EmbeddingRequest {
    input: PromptField,
    model: String,
    #[serde(default)]
    encoding_format: Option<String>,
}

/// Inputs embedded per request at most.
const MAX_EMBED_INPUTS: usize = 256;

pub async fn embeddings(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: EmbeddingRequest = parse(body)?;
    if req.model != state.embedding_model {
        return Err(ApiError {
            error: Error::NotFound(format!(
                "the embedding model `{}` does not exist; this server serves `{}`",
                req.model, state.embedding_model
            )),
            param: Some("model"),
        });
    }
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(invalid(
                "encoding_format",
                format!("unknown encoding `{other}`; use float or base64"),
            ))
        }
    };
    let inputs = match req.input {
        PromptField::One(s) => vec![s],
        PromptField::Many(v) => v,
    };
    if inputs.is_empty() || inputs.len() > MAX_EMBED_INPUTS {
        return Err(invalid(
            "input",
            format!("send 1 to {MAX_EMBED_INPUTS} inputs"),
        ));
    }
    let embedder = state.embedder;
    // e5 embeds with a role prefix: inputs written as "query: …" are embedded as queries, all
    // others as passages
    let work = tokio::task::spawn_blocking(move || -> crate::Result<_> {
        let mut vectors = Vec::with_capacity(inputs.len());
        let mut tokens = 0;
        for text in &inputs {
            let v = match text.strip_prefix("query: ") {
                Some(q) => embedder.embed_queries(&[q])?,
                None => embedder.embed_passages(&[text])?,
            };
            tokens += embedder.count_tokens(text)?;
            vectors.extend(v);
        }
        Ok((vectors, tokens))
    });
    let (vectors, tokens) = state
        .limits
        .stages()
        .whole(work)
        .await?
        .map_err(|e| Error::Model(format!("embedding task failed: {e}")))??;
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let embedding = if base64 {
                // little-endian f32s, as OpenAI sends them
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD,
                    bytes
                ))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    Ok(Json(json!({
        "object": "list",
        "data": data,
        "model": state.embedding_model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }))
    .into_response())
}

#[derive(Debug, Deserialize)]
struct TokenizeRequest {
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    add_special_tokens: bool,
}

/// `/tokenize` in vLLM's shape (llama.cpp's `content` field is accepted too).
pub async fn tokenize(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: TokenizeRequest = parse(body)?;
    let text = req
        .prompt
        .or(req.content)
        .ok_or_else(|| invalid("prompt", "send the text to tokenize as `prompt`"))?;
    let llm = state.engine.llm();
    let tokens = llm.tokenizer.encode(
        &text,
        req.add_special_tokens && llm.tokenizer.special().add_bos,
        false,
    )?;
    Ok(Json(json!({
        "tokens": tokens,
        "count": tokens.len(),
        "max_model_len": state.engine.context_tokens(),
    }))
    .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_checks_answer_any_bytes_without_panicking() {
        let valid = [
            (
                "/api/ask",
                r#"{"question":"건강진단은?","history":[{"question":"a","answer":"b"}],"stream":false}"#,
            ),
            (
                "/v1/chat/completions",
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"max_tokens":5,"stop":["a","b"],"temperature":0.5,"top_p":0.9}"#,
            ),
            (
                "/v1/completions",
                r#"{"model":"m","prompt":["x"],"echo":true,"logprobs":1,"max_tokens":0}"#,
            ),
            (
                "/v1/embeddings",
                r#"{"model":"m","input":["query: a","b"],"encoding_format":"base64"}"#,
            ),
            (
                "/tokenize",
                r#"{"content":"가나다","add_special_tokens":true}"#,
            ),
        ];
        for (route, body) in valid {
            check_request(route, body.as_bytes()).unwrap_or_else(|e| panic!("{route}: {e}"));
        }
        assert!(check_request(
            "/v1/completions",
            br#"{"model":"m","prompt":"x","max_tokens":4096}"#
        )
        .is_err());
        assert!(check_request(
            "/v1/chat/completions",
            br#"{"model":"m","messages":[],"temperature":-1}"#
        )
        .is_err());
        assert!(check_request(
            "/v1/completions",
            br#"{"model":"m","prompt":"x","repetition_penalty":1e39}"#
        )
        .is_err());
        // deterministic byte mutations of the valid bodies: errors or Ok, never a panic
        let mut state = 0x5eed_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut refused = 0;
        for round in 0..4000 {
            let (route, body) = valid[round % valid.len()];
            let mut bytes = body.as_bytes().to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => {
                        let pool = b"{}[]\":,0-9en\\\x00\xff";
                        bytes[at] = pool[(next() as usize) % pool.len()];
                    }
                    1 => bytes.truncate(at.max(1)),
                    _ => {
                        let pool = b"\"[{-1e999";
                        bytes.insert(at, pool[(next() as usize) % pool.len()]);
                    }
                }
            }
            if check_request(route, &bytes).is_err() {
                refused += 1;
            }
        }
        assert!(refused > 1000, "{refused}");
    }
}
