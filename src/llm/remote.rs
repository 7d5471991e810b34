//! A [`Generator`] backed by a remote OpenAI-compatible server (vLLM, TGI, llama.cpp's
//! llama-server, or another anjeon), for deployments whose model outgrows one machine.
//! Plain HTTP/1.1 inside the deployment's network; streaming by SSE; scoring through
//! `/v1/completions` with `echo` and `logprobs`, as lm-evaluation-harness does.

use super::generator::{Generator, Prompt, Scored};
use super::{Finish, GenerateParams, Generation};
use crate::error::{Error, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use std::time::Instant;

/// Context assumed when the server does not say.
const DEFAULT_CONTEXT: usize = 4096;

pub struct RemoteGenerator {
    base: String,
    model: String,
    api_key: Option<String>,
    context: usize,
    runtime: tokio::runtime::Runtime,
    client: Client<HttpConnector, Full<Bytes>>,
}

fn upstream(what: impl std::fmt::Display) -> Error {
    Error::Upstream(what.to_string())
}

impl RemoteGenerator {
    /// Connects to `base_url` (e.g. `http://gpu-box:8000`) and picks `model`, or the first
    /// model the server lists.
    pub fn connect(base_url: &str, model: Option<&str>, api_key: Option<&str>) -> Result<Self> {
        let base = base_url
            .trim_end_matches('/')
            .trim_end_matches("/v1")
            .to_string();
        if !base.starts_with("http://") {
            return Err(Error::Config(format!(
                "{base_url}: only http:// URLs are supported for a remote model (put TLS in front with a proxy)"
            )));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| {
                Error::Config(format!("cannot start a runtime for the remote model: {e}"))
            })?;
        let client = Client::builder(TokioExecutor::new()).build_http();
        let mut this = RemoteGenerator {
            base,
            model: String::new(),
            api_key: api_key.map(str::to_string),
            context: DEFAULT_CONTEXT,
            runtime,
            client,
        };
        let listing = this.call("GET", "/v1/models", None)?;
        let models = listing["data"].as_array().cloned().unwrap_or_default();
        let chosen = match model {
            Some(m) => models
                .iter()
                .find(|e| e["id"] == m)
                .cloned()
                .ok_or_else(|| {
                    Error::NotFound(format!("{base_url} does not serve the model `{m}`"))
                })?,
            None => models
                .first()
                .cloned()
                .ok_or_else(|| upstream(format!("{base_url} lists no models")))?,
        };
        this.model = chosen["id"].as_str().unwrap_or_default().to_string();
        // vLLM and anjeon say `max_model_len`; llama.cpp says `meta.n_ctx`, the context it
        // was started with (`-c`), which may be less than the model's `n_ctx_train`
        this.context = chosen["max_model_len"]
            .as_u64()
            .or_else(|| chosen["meta"]["n_ctx"].as_u64())
            .or_else(|| chosen["meta"]["n_ctx_train"].as_u64())
            .map_or(DEFAULT_CONTEXT, |c| c as usize);
        Ok(this)
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Request<Full<Bytes>>> {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(key) = &self.api_key {
            builder = builder.header("authorization", format!("Bearer {key}"));
        }
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        builder
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| upstream(format!("bad request to {path}: {e}")))
    }

    /// Sends `request`; an answer with an error status becomes an error here, otherwise
    /// its body is returned to be read.
    async fn send(
        &self,
        path: &str,
        request: Request<Full<Bytes>>,
    ) -> Result<hyper::body::Incoming> {
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| upstream(format!("{}{path}: {e}", self.base)))?;
        let status = response.status();
        let body = response.into_body();
        if status.is_success() {
            return Ok(body);
        }
        let bytes = body.collect().await.map_err(upstream)?.to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Err(remote_error(status.as_u16(), &value))
    }

    /// One request and its whole JSON answer.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let request = self.request(method, path, body)?;
        self.runtime.block_on(async {
            let bytes = self
                .send(path, request)
                .await?
                .collect()
                .await
                .map_err(|e| upstream(format!("{path}: {e}")))?
                .to_bytes();
            serde_json::from_slice(&bytes).map_err(|e| upstream(format!("{path}: not JSON ({e})")))
        })
    }
}

/// The remote's error, keeping its meaning: a 4xx is the request's fault, 429 is busy.
fn remote_error(status: u16, body: &Value) -> Error {
    let message = body["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| body.to_string());
    match status {
        404 => Error::NotFound(message),
        429 => Error::Busy(message),
        400..=499 => Error::InvalidInput(message),
        _ => upstream(format!("HTTP {status}: {message}")),
    }
}

impl Generator for RemoteGenerator {
    fn model_id(&self) -> String {
        self.model.clone()
    }

    fn generate(
        &self,
        prompt: &Prompt,
        params: &GenerateParams,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<Generation> {
        let started = Instant::now();
        let mut body = json!({
            "model": self.model,
            "max_tokens": params.max_tokens,
            "temperature": params.sampling.temperature,
            "top_p": params.sampling.top_p,
            "top_k": params.sampling.top_k,
            "seed": params.sampling.seed,
            "stream": true,
            "stream_options": {"include_usage": true},
        });
        if params.sampling.repeat_penalty != 1.0 {
            body["repetition_penalty"] = json!(params.sampling.repeat_penalty);
        }
        if !params.stop.is_empty() {
            body["stop"] = json!(params.stop);
        }
        let (path, chat) = match prompt {
            Prompt::Text(text) => {
                body["prompt"] = json!(text);
                ("/v1/completions", false)
            }
            Prompt::Chat(messages) => {
                body["messages"] = json!(messages);
                ("/v1/chat/completions", true)
            }
        };
        let request = self.request("POST", path, Some(&body))?;
        self.runtime.block_on(async {
            let mut body = self.send(path, request).await?;
            let mut generation = Generation {
                text: String::new(),
                prompt_tokens: 0,
                completion_tokens: 0,
                reused_tokens: 0,
                finish: Finish::Length,
                ttft_ms: 0.0,
                total_ms: 0.0,
            };
            let mut pending = Vec::new();
            'stream: while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| upstream(format!("{path}: {e}")))?;
                let Some(data) = frame.data_ref() else {
                    continue;
                };
                pending.extend_from_slice(data);
                while let Some(end) = find_event_end(&pending) {
                    let event: Vec<u8> = pending.drain(..end).collect();
                    for line in String::from_utf8_lossy(&event).lines() {
                        let Some(payload) = line.strip_prefix("data:").map(str::trim) else {
                            continue;
                        };
                        if payload == "[DONE]" {
                            break 'stream;
                        }
                        let chunk: Value = serde_json::from_str(payload)
                            .map_err(|e| upstream(format!("{path}: bad stream chunk ({e})")))?;
                        if chunk.get("error").is_some() {
                            return Err(upstream(chunk["error"]["message"].to_string()));
                        }
                        if let Some(u) = chunk.get("usage").filter(|u| !u.is_null()) {
                            generation.prompt_tokens =
                                u["prompt_tokens"].as_u64().unwrap_or(0) as usize;
                            generation.completion_tokens =
                                u["completion_tokens"].as_u64().unwrap_or(0) as usize;
                        }
                        let Some(choice) = chunk["choices"].get(0) else {
                            continue;
                        };
                        let text = if chat {
                            choice["delta"]["content"].as_str()
                        } else {
                            choice["text"].as_str()
                        };
                        if let Some(text) = text.filter(|t| !t.is_empty()) {
                            if generation.text.is_empty() {
                                generation.ttft_ms = started.elapsed().as_secs_f64() * 1e3;
                            }
                            generation.text.push_str(text);
                            if !on_text(text) {
                                // dropping the body closes the connection: the server stops
                                generation.finish = Finish::Cancelled;
                                break 'stream;
                            }
                        }
                        match choice["finish_reason"].as_str() {
                            Some("stop") => generation.finish = Finish::Stop,
                            Some("length") => generation.finish = Finish::Length,
                            _ => {}
                        }
                    }
                }
            }
            generation.total_ms = started.elapsed().as_secs_f64() * 1e3;
            Ok(generation)
        })
    }

    fn loglikelihood(&self, context: &str, continuations: &[String]) -> Result<Vec<Scored>> {
        let context_chars = context.chars().count();
        continuations
            .iter()
            .map(|cont| {
                let answer = self.call(
                    "POST",
                    "/v1/completions",
                    Some(&json!({
                        "model": self.model,
                        "prompt": format!("{context}{cont}"),
                        "max_tokens": 0,
                        "echo": true,
                        "logprobs": 1,
                        "temperature": 0,
                    })),
                )?;
                let lp = &answer["choices"][0]["logprobs"];
                // llama.cpp's llama-server ignores `echo`: it answers with a generated token's
                // log-probability, which must not pass for the continuation's
                let offsets = lp["text_offset"].as_array().cloned().ok_or_else(|| {
                    upstream(format!(
                        "{}: the server does not return the prompt's log-probabilities \
                         (`echo` with `logprobs` on /v1/completions), which scoring needs; \
                         vLLM and anjeon do, llama.cpp's llama-server does not",
                        self.base
                    ))
                })?;
                let mut scored = Scored {
                    logprob: 0.0,
                    is_greedy: true,
                    tokens: 0,
                };
                for (i, offset) in offsets.iter().enumerate() {
                    if offset.as_u64().unwrap_or(0) < context_chars as u64 {
                        continue;
                    }
                    let value = lp["token_logprobs"][i].as_f64().ok_or_else(|| {
                        upstream("the server returned no log-probability for a continuation token")
                    })?;
                    scored.logprob += value;
                    scored.tokens += 1;
                    let token = lp["tokens"][i].as_str().unwrap_or_default();
                    scored.is_greedy &= lp["top_logprobs"][i]
                        .as_object()
                        .is_some_and(|top| top.keys().next().is_some_and(|t| t == token));
                }
                Ok(scored)
            })
            .collect()
    }

    fn count_tokens(&self, text: &str) -> Result<usize> {
        // vLLM and anjeon read `prompt`, llama.cpp reads `content`
        let answer = self.call(
            "POST",
            "/tokenize",
            Some(&json!({"model": self.model, "prompt": text, "content": text, "add_special_tokens": false})),
        )?;
        answer["tokens"]
            .as_array()
            .map(Vec::len)
            .ok_or_else(|| upstream("/tokenize returned no tokens"))
    }

    fn context_tokens(&self) -> usize {
        self.context
    }
}

/// End of the first complete SSE event (after its blank line), if one has arrived.
fn find_event_end(buf: &[u8]) -> Option<usize> {
    buf.windows(2)
        .position(|w| w == b"\n\n")
        .map(|p| p + 2)
        .or_else(|| buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4))
}
