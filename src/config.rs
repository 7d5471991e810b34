//! Configuration: one typed struct loaded from `anjeon.toml` with working defaults, every
//! key overridable by an `ANJEON_<SECTION>_<KEY>` (or `ANJEON_<KEY>` at top level) variable.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which lexical fields BM25 searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LexicalFields {
    /// Morphemes from mecab-ko-dic only.
    Morph,
    /// Hangul character bigrams only.
    Bigram,
    /// Both, scores summed in one BM25 query.
    Both,
}

/// How `search` ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SearchMode {
    Bm25,
    Dense,
    Hybrid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where indexes and the manifest live.
    pub data_dir: PathBuf,
    /// Where downloaded and converted models and dictionaries are cached.
    pub cache_dir: PathBuf,
    pub index: IndexConfig,
    pub search: SearchConfig,
    pub embed: EmbedConfig,
    pub qdrant: QdrantConfig,
    pub llm: LlmConfig,
    pub answer: AnswerConfig,
    pub auth: AuthConfig,
    pub eval: EvalConfig,
    pub web: WebConfig,
    pub server: ServerConfig,
}

/// The web pages: see `src/web/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Folder of eval runs (`anjeon eval --out DIR` folders); empty: `<data_dir>/eval`.
    pub eval_dir: String,
    /// Gate the eval page checks runs against; empty: `<eval_dir>/gate.toml` when it
    /// exists, else the built-in `eval/gate.toml`.
    pub eval_gate: String,
    /// Largest upload (all files of one request), in bytes.
    pub max_upload_bytes: u64,
    /// Most files one upload may hold.
    pub max_upload_files: usize,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            eval_dir: String::new(),
            eval_gate: String::new(),
            max_upload_bytes: 64 * 1024 * 1024,
            max_upload_files: 50,
        }
    }
}

impl WebConfig {
    /// Where eval runs are looked for.
    pub fn eval_path(&self, data_dir: &Path) -> PathBuf {
        if self.eval_dir.is_empty() {
            data_dir.join("eval")
        } else {
            PathBuf::from(&self.eval_dir)
        }
    }
}

/// Who may sign in: see `src/auth.rs`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// `"role:name:argon2-hash"` per token holder (role official or admin); make one with
    /// `anjeon token new --role official --name NAME`. As a variable, separate lines by
    /// whitespace: `ANJEON_AUTH_TOKENS="official:kim:$argon2id$… admin:lee:$argon2id$…"`.
    pub tokens: Vec<String>,
    /// The audit log (admin actions and reads of internal documents); empty:
    /// `<data_dir>/audit.jsonl`.
    pub audit_log: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexConfig {
    /// Longest passage, in characters, before the chunker splits it.
    pub chunk_max_chars: usize,
    /// Files per crash-safe batch (one tantivy commit and one vector flush per batch).
    pub batch_files: usize,
    /// Largest file accepted, in bytes.
    pub max_file_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SearchConfig {
    pub top_k: usize,
    pub mode: SearchMode,
    /// Which fields BM25 searches (both are always indexed).
    pub lexical: LexicalFields,
    /// Candidates taken from each side before fusion.
    pub candidates: usize,
    /// The k of reciprocal-rank fusion: score = Σ 1 / (rrf_k + rank).
    pub rrf_k: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmbedConfig {
    /// Passages per forward pass.
    pub batch_size: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct QdrantConfig {
    /// gRPC URL of a Qdrant server or cluster (e.g. `http://localhost:6334`). Empty: the
    /// embedded engine under `data_dir/qdrant`.
    pub url: String,
    pub api_key: String,
    pub collection: String,
    /// Score the BM25 side of searches in Qdrant, from the sparse vectors every passage
    /// carries there, instead of in tantivy: with a server, the cluster then holds the whole
    /// search index (tantivy still keeps the passages' text and highlights).
    pub lexical: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// A GGUF checkpoint. Empty: the default model (gemma-3-270m Q4_K_M) from the cache.
    pub model: String,
    /// Threads of the engine (0: one per core).
    pub threads: usize,
    /// sha256 of `model`, checked before it is loaded (empty: not checked; the default model
    /// is always checked against its pinned hash).
    pub sha256: String,
    /// Where the model computes: `cpu` (our own kernels, the default), or `cuda` / `cuda:N`
    /// (candle's kernels on a GPU; needs a build with `--features cuda`).
    pub device: String,
}

/// `anjeon eval`'s inputs that belong to a deployment rather than to one run.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EvalConfig {
    /// The RAG suite's question set (dev.jsonl format) when `--qa` is not given. Empty: the
    /// suite needs `--qa`.
    pub qa: String,
}

/// How answers are made: see `src/answer/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum AnswerMode {
    /// Quote the passage sentences that best match the question, with citations.
    Extractive,
    /// Let the language model write the answer from the passages; then verify it.
    Generative,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnswerConfig {
    pub mode: AnswerMode,
    /// A prompt set folder with a `manifest.toml` (empty: the built-in `prompts/v1`).
    pub prompts_dir: String,
    /// Hybrid search candidates scored and reranked per question. Few: the rerank sees only
    /// coverage and cosine, so a deep list lets a passage that both searches ranked low
    /// overtake the one they agree on (dev set: 20 → 10 raised coverage 0.73 → 0.81).
    pub candidates: usize,
    /// Rerank candidates by relevance (else keep the fused search order).
    pub rerank: bool,
    /// Weight of question-term coverage in relevance; the rest is dense similarity.
    pub coverage_weight: f32,
    /// e5 cosines mapped to 0..1 between these two values.
    pub cosine_floor: f32,
    pub cosine_ceiling: f32,
    /// When the question asks what a term means or whether something counts as it, added
    /// to the relevance of a passage that defines a term the question names ("“화장품”이란
    /// …을 말한다"; the answer then quotes that definition).
    pub definition_weight: f32,
    /// When the question asks who or where (누가, 어디에 보고, 어디서 허가), this times the
    /// question coverage of a passage's best sentence that names a body in the asked role
    /// ("…한국의약품안전관리원에 보고하시기 바람") is added to its relevance; the answer then
    /// quotes such a sentence.
    pub agent_weight: f32,
    /// For such a question, hybrid search hits up to this rank also compete (beyond
    /// `candidates`) when a sentence of theirs names a body in the asked role.
    pub agent_candidates: usize,
    /// Refuse when the best passage's match (coverage and similarity, without the definition
    /// and body bonuses) is below this.
    pub min_relevance: f32,
    /// Passages numbered [1]..[k] in the context.
    pub context_passages: usize,
    /// Token budget of the passages in the prompt.
    pub context_tokens: usize,
    /// A claim is supported when its score against a cited passage reaches this.
    pub min_support: f32,
    /// Weight of embedding similarity in claim support (0: lexical only).
    pub support_embedding_weight: f32,
    /// Most sentences an extractive answer quotes.
    pub max_quotes: usize,
    /// A further quote must score at least this share of the best one.
    pub quote_ratio: f32,
    /// Best-ranked passages whose sentences compete for quotation.
    pub quote_passages: usize,
    /// Weight of a sentence's own question coverage against its passage's relevance.
    pub sentence_weight: f32,
    /// Tokens the model may write (generative mode).
    pub max_tokens: usize,
}

impl Default for AnswerConfig {
    fn default() -> Self {
        AnswerConfig {
            mode: AnswerMode::Extractive,
            prompts_dir: String::new(),
            candidates: 10,
            rerank: true,
            coverage_weight: 0.5,
            cosine_floor: 0.75,
            cosine_ceiling: 0.92,
            definition_weight: 0.1,
            agent_weight: 0.3,
            agent_candidates: 50,
            min_relevance: 0.6,
            context_passages: 4,
            context_tokens: 1536,
            min_support: 0.6,
            support_embedding_weight: 0.0,
            max_quotes: 2,
            quote_ratio: 0.9,
            quote_passages: 1,
            sentence_weight: 0.6,
            max_tokens: 160,
        }
    }
}

/// Limits of `anjeon serve`: what one request may carry, what one client may ask, how much
/// runs at once, and how long each stage may take (see `src/server/limits.rs`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Largest request body, in bytes (413 above).
    pub max_body_bytes: usize,
    /// Longest question of `/api/ask` or query of `/api/search`, in characters (422 above).
    pub max_question_chars: usize,
    /// Most earlier turns in `/api/ask`'s history (422 above).
    pub max_turns: usize,
    /// Most characters of a whole `/api/ask` conversation (history and question; 422 above).
    pub max_conversation_chars: usize,
    /// Requests per second each client address may sustain on `/api/*`, `/v1/*` and
    /// `/tokenize` (0: no per-client limit).
    pub rate_per_second: f64,
    /// Requests a client may send at once before the rate applies.
    pub rate_burst: f64,
    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Requests served at once; others wait in a queue (0: one per core).
    pub max_concurrent: usize,
    /// Requests that may wait for a slot; beyond it the server answers 503.
    pub max_queued: usize,
    /// Longest wait for a slot before 503, in seconds.
    pub queue_timeout_secs: f64,
    /// Until the first answer text or result (retrieval, reranking, first sentence).
    pub retrieval_timeout_secs: f64,
    /// Whole generation of one request, streamed or not.
    pub generation_timeout_secs: f64,
    /// A stream that sends nothing for this long is ended.
    pub sse_idle_timeout_secs: f64,
    /// On SIGTERM/Ctrl-C, running streams get this long to finish.
    pub shutdown_grace_secs: f64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_body_bytes: 1024 * 1024,
            max_question_chars: 2000,
            max_turns: 32,
            max_conversation_chars: 32_000,
            rate_per_second: 5.0,
            rate_burst: 30.0,
            trust_forwarded_for: false,
            max_concurrent: 0,
            max_queued: 256,
            queue_timeout_secs: 30.0,
            retrieval_timeout_secs: 30.0,
            generation_timeout_secs: 300.0,
            sse_idle_timeout_secs: 60.0,
            shutdown_grace_secs: 30.0,
        }
    }
}

impl LlmConfig {
    /// The configured model file, fetching the default one when none is configured.
    pub fn model_path(&self, cache_dir: &Path) -> Result<PathBuf> {
        if self.model.is_empty() {
            return crate::llm::ensure_default_model(cache_dir);
        }
        let path = PathBuf::from(&self.model);
        if !self.sha256.is_empty() {
            crate::llm::assets::verify_model(&path, &self.sha256)?;
        }
        Ok(path)
    }

    /// Loads `path` (or the configured model) with `threads` (or the configured number) on
    /// the configured device.
    pub fn load(
        &self,
        cache_dir: &Path,
        path: Option<PathBuf>,
        threads: Option<usize>,
    ) -> Result<crate::llm::Llm> {
        let placement = crate::llm::device::Placement::parse(&self.device)?;
        let device = placement.device()?;
        let path = match path {
            Some(p) => p,
            None => self.model_path(cache_dir)?,
        };
        let mut llm = crate::llm::Llm::load(&path, threads.unwrap_or(self.threads))?;
        if let Some(device) = device {
            llm.model.to_device(&device)?;
        }
        Ok(llm)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            cache_dir: default_cache_dir(),
            index: IndexConfig::default(),
            search: SearchConfig::default(),
            embed: EmbedConfig::default(),
            qdrant: QdrantConfig {
                collection: "anjeon".into(),
                ..Default::default()
            },
            llm: LlmConfig::default(),
            answer: AnswerConfig::default(),
            auth: AuthConfig::default(),
            eval: EvalConfig::default(),
            web: WebConfig::default(),
            server: ServerConfig::default(),
        }
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            chunk_max_chars: 800,
            batch_files: 32,
            max_file_bytes: 64 * 1024 * 1024,
        }
    }
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig {
            top_k: 10,
            mode: SearchMode::Hybrid,
            lexical: LexicalFields::Both,
            candidates: 100,
            rrf_k: 60.0,
        }
    }
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig { batch_size: 16 }
    }
}

fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from(".cache"))
        .join("anjeon")
}

impl AuthConfig {
    /// Where the audit log is kept.
    pub fn audit_path(&self, data_dir: &Path) -> PathBuf {
        if self.audit_log.is_empty() {
            data_dir.join("audit.jsonl")
        } else {
            PathBuf::from(&self.audit_log)
        }
    }
}

impl Config {
    /// Loads `path` (or `anjeon.toml` in the working directory when it exists), then applies
    /// `ANJEON_*` variables from `env`.
    pub fn load(path: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let default_path = Path::new("anjeon.toml");
        let text = match path {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| Error::io(p, e))?),
            None if default_path.exists() => Some(
                std::fs::read_to_string(default_path).map_err(|e| Error::io(default_path, e))?,
            ),
            None => None,
        };
        let mut table =
            toml::Table::try_from(Config::default()).map_err(|e| Error::Config(e.to_string()))?;
        if let Some(text) = text {
            let file: toml::Table = text.parse().map_err(|e| Error::Config(format!("{e}")))?;
            merge(&mut table, file);
        }
        apply_env(&mut table, "ANJEON", &env)?;
        table
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(e.message().to_string()))
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(key, v);
            }
        }
    }
}

/// Overrides every known key from `<PREFIX>_<KEY>`; values parse as TOML scalars and fall
/// back to strings, so `ANJEON_SEARCH_TOP_K=5` and `ANJEON_DATA_DIR=/srv/anjeon` both work.
fn apply_env(
    table: &mut toml::Table,
    prefix: &str,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<()> {
    for (key, value) in table.iter_mut() {
        let name = format!("{prefix}_{}", key.to_ascii_uppercase());
        match value {
            toml::Value::Table(sub) => apply_env(sub, &name, env)?,
            current => {
                if let Some(raw) = env(&name) {
                    *current = parse_scalar(&raw, current).ok_or_else(|| {
                        Error::Config(format!("{name}={raw} is not a valid value"))
                    })?;
                }
            }
        }
    }
    Ok(())
}

fn parse_scalar(raw: &str, like: &toml::Value) -> Option<toml::Value> {
    use toml::Value;
    Some(match like {
        Value::String(_) => Value::String(raw.to_string()),
        Value::Integer(_) => Value::Integer(raw.trim().parse().ok()?),
        Value::Float(_) => Value::Float(raw.trim().parse().ok()?),
        Value::Boolean(_) => Value::Boolean(raw.trim().parse().ok()?),
        Value::Array(_) => Value::Array(
            raw.split_whitespace()
                .map(|s| Value::String(s.to_string()))
                .collect(),
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn defaults_work_without_a_file() {
        let cfg = Config::load(None, env_of(&[])).unwrap();
        assert_eq!(cfg.search.top_k, 10);
        assert_eq!(cfg.search.mode, SearchMode::Hybrid);
        assert!(cfg.qdrant.url.is_empty());
    }

    #[test]
    fn file_then_env_override() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anjeon.toml");
        std::fs::write(
            &path,
            "data_dir = \"/srv/a\"\n[search]\ntop_k = 3\nmode = \"bm25\"\n",
        )
        .unwrap();
        let cfg = Config::load(
            Some(&path),
            env_of(&[
                ("ANJEON_SEARCH_TOP_K", "7"),
                ("ANJEON_QDRANT_URL", "http://q:6334"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.data_dir, PathBuf::from("/srv/a"));
        assert_eq!(cfg.search.top_k, 7);
        assert_eq!(cfg.search.mode, SearchMode::Bm25);
        assert_eq!(cfg.qdrant.url, "http://q:6334");
        let cfg = Config::load(
            Some(&path),
            env_of(&[("ANJEON_AUTH_TOKENS", "official:a:$x$1,2 admin:b:$y$3")]),
        )
        .unwrap();
        assert_eq!(cfg.auth.tokens, ["official:a:$x$1,2", "admin:b:$y$3"]);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let err = Config::load(None, env_of(&[("ANJEON_SEARCH_TOP_K", "many")])).unwrap_err();
        assert!(err.to_string().contains("ANJEON_SEARCH_TOP_K"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("anjeon.toml");
        std::fs::write(&path, "[search]\ntop_kk = 3\n").unwrap();
        let err = Config::load(Some(&path), env_of(&[])).unwrap_err();
        assert!(err.to_string().contains("top_kk"), "{err}");
    }
}
