//! The HTTP server (`anjeon serve`): routes, shared state, and the one place where errors
//! become HTTP responses. Handlers are thin; the work happens in the library modules.

mod ask;
pub mod auth;
mod openai;

pub(crate) use openai::parse as parse_json;

use crate::answer::{Answerer, Prompts};
use crate::auth::{AuditLog, Tokens};
use crate::config::{AnswerConfig, Config};
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::llm::engine::{Engine, EngineLimits};
use crate::llm::{Generator, Llm};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
pub struct AppState {
    pub index: Index,
    pub prompts: Prompts,
    pub answer: AnswerConfig,
    pub engine: Arc<Engine>,
    pub embedder: Arc<Embedder>,
    /// The id of the embedding model in `/v1/models` and `/v1/embeddings`.
    pub embedding_model: String,
    pub tokens: Tokens,
    pub audit: AuditLog,
    /// The web pages' own state (feedback, upload jobs).
    pub web: crate::web::WebState,
}

impl AppState {
    /// Loads the configured model and the embedding model and starts the engine.
    pub fn load(config: &Config) -> Result<Self> {
        let path = config.llm.model_path(&config.cache_dir)?;
        let llm = Llm::load(&path, config.llm.threads)?;
        let engine = Engine::start(llm, EngineLimits::default())?;
        let embedder = Embedder::from_cache(&config.cache_dir)?;
        Ok(AppState {
            index: Index::open(config)?,
            prompts: Answerer::load_prompts(&config.answer)?,
            answer: config.answer.clone(),
            engine: Arc::new(engine),
            embedder: Arc::new(embedder),
            embedding_model: "multilingual-e5-small".into(),
            tokens: Tokens::parse(&config.auth.tokens)?,
            audit: AuditLog::open(&config.auth.audit_path(&config.data_dir))?,
            web: crate::web::WebState::open(config)?,
        })
    }

    pub fn generator(&self) -> &dyn Generator {
        self.engine.as_ref()
    }
}

/// The application's routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/models", get(openai::models))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/tokenize", post(openai::tokenize))
        .route("/api/ask", post(ask::ask))
        .route("/api/login", post(auth::login))
        .route("/api/logout", post(auth::logout))
        .route("/api/me", get(auth::me))
        .route("/healthz", get(|| async { "ok" }))
        .merge(crate::web::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Binds `addr`, prints the address actually bound (port 0 picks a free one), and serves
/// until Ctrl-C or SIGTERM, letting running streams finish.
pub fn serve(config: &Config, addr: SocketAddr) -> Result<()> {
    let state = Arc::new(AppState::load(config)?);
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::Config(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Config(format!("{e}")))?;
        println!("anjeon listening on http://{bound}");
        axum::serve(listener, router(state))
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(|e| Error::Config(format!("server error: {e}")))
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// An error on its way to the client, in OpenAI's error shape.
pub struct ApiError {
    pub error: Error,
    pub param: Option<&'static str>,
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        ApiError { error, param: None }
    }
}

/// Seconds a client told "busy" should wait.
const RETRY_AFTER_SECONDS: &str = "2";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.error.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!("{}", self.error);
        }
        let message = match &self.error {
            // internal details stay in the log
            e if status.is_server_error() && !matches!(e, Error::Upstream(_)) => {
                "internal error; see the server log".to_string()
            }
            e => e.to_string(),
        };
        let code = match &self.error {
            Error::NotFound(_) if self.param == Some("model") => Some("model_not_found"),
            Error::InvalidInput(m) if m.contains("context") => Some("context_length_exceeded"),
            _ => None,
        };
        let body = serde_json::json!({
            "error": {
                "message": message,
                "type": self.error.kind(),
                "param": self.param,
                "code": code,
            }
        });
        let mut response = (status, axum::Json(body)).into_response();
        if matches!(self.error, Error::Busy(_)) {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}
