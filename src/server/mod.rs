//! The HTTP server (`anjeon serve`): routes, shared state, and the one place where errors
//! become HTTP responses. Handlers are thin; the work happens in the library modules.

mod ask;
pub mod auth;
pub mod limits;
pub mod metrics;
mod openai;
mod ops;
mod search;

pub use openai::{check_request, JSON_ROUTES};

pub(crate) use openai::parse as parse_json;

use crate::answer::{Answerer, Prompts};
use crate::auth::{AuditLog, Tokens};
use crate::config::{AnswerConfig, Config, SearchConfig};
use crate::embed::Embedder;
use crate::error::{Error, Result};
use crate::index::Index;
use crate::llm::engine::{Engine, EngineLimits};
use crate::llm::Generator;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest request body accepted by default, in bytes (`server.max_body_bytes`).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach.
pub struct AppState {
    pub index: Index,
    pub prompts: Prompts,
    pub answer: AnswerConfig,
    pub engine: Arc<Engine>,
    pub embedder: &'static Embedder,
    /// The id of the embedding model in `/v1/models` and `/v1/embeddings`.
    pub embedding_model: String,
    pub tokens: Tokens,
    pub audit: AuditLog,
    /// The web pages' own state (feedback, upload jobs).
    pub web: crate::web::WebState,
    pub search: SearchConfig,
    /// Per-client rates, the concurrency limit and stage time limits.
    pub limits: limits::Limits,
}

impl AppState {
    /// Loads the configured model and the embedding model and starts the engine.
    pub fn load(config: &Config) -> Result<Self> {
        let llm = config.llm.load(&config.cache_dir, None, None)?;
        let engine = Engine::start(llm, EngineLimits::default())?;
        let embedder = Embedder::shared(&config.cache_dir)?;
        Ok(AppState {
            index: Index::open(config)?,
            prompts: Answerer::load_prompts(&config.answer)?,
            answer: config.answer.clone(),
            engine: Arc::new(engine),
            embedder,
            embedding_model: "multilingual-e5-small".into(),
            tokens: Tokens::parse(&config.auth.tokens)?,
            audit: AuditLog::open(&config.auth.audit_path(&config.data_dir))?,
            web: crate::web::WebState::open(config)?,
            search: config.search.clone(),
            limits: limits::Limits::new(&config.server),
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
        .route("/api/search", get(search::search))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(metrics::scrape))
        .merge(crate::web::routes())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            ops::admit,
        ))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(axum::extract::DefaultBodyLimit::max(
            state.limits.config().max_body_bytes,
        ))
        .with_state(state)
}

/// Binds `addr`, prints the address actually bound (port 0 picks a free one), and serves
/// until Ctrl-C or SIGTERM: then new requests are refused, running streams get
/// `server.shutdown_grace_secs` to finish, and the process returns.
pub fn serve(config: &Config, addr: SocketAddr) -> Result<()> {
    let state = Arc::new(AppState::load(config)?);
    let grace = std::time::Duration::from_secs_f64(config.server.shutdown_grace_secs.max(0.0));
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|e| Error::Config(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::Config(format!("{e}")))?;
        println!("anjeon listening on http://{bound}");
        tracing::info!(%bound, "listening");
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let draining = state.clone();
        let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            shutdown_signal().await;
            tracing::info!("shutting down: refusing new requests, finishing running ones");
            draining.limits.start_draining();
            let _ = stop_tx.send(true);
        });
        let mut stop_rx = stop_rx;
        let deadline = async move {
            let _ = stop_rx.wait_for(|stopped| *stopped).await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = server => result.map_err(|e| Error::Config(format!("server error: {e}"))),
            _ = deadline => {
                tracing::warn!("streams still running after {grace:?}; stopping anyway");
                Ok(())
            }
        }
    })?;
    // blocking tasks of abandoned streams notice their closed channels and end; do not wait
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(())
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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.error.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!("{}", self.error);
        }
        metrics::metrics().errors.inc(&[self.error.kind()]);
        let message = match &self.error {
            // internal details stay in the log
            e if status.is_server_error()
                && !matches!(
                    e,
                    Error::Upstream(_) | Error::Overloaded { .. } | Error::Timeout(_)
                ) =>
            {
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
        if let Some(secs) = self.error.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
