//! Who is calling: the [`Caller`] extractor (a bearer token or the login cookie, else the
//! public) and the sign-in routes that set and clear that cookie.

use super::{ApiError, AppState};
use crate::auth::Caller;
use crate::error::Error;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;

/// The cookie the web login sets: HttpOnly (scripts never see the token) and SameSite=Strict
/// (other sites cannot make the browser send it).
pub const COOKIE: &str = "anjeon_token";
/// How long a web login lasts, in seconds.
const COOKIE_MAX_AGE: u32 = 12 * 60 * 60;

/// The token a request presents: `Authorization: Bearer …` first, else the login cookie.
fn presented_token(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))?;
        return Some(token.trim());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = presented_token(&parts.headers) else {
            return Ok(Caller::public());
        };
        if token.is_empty() {
            return Ok(Caller::public());
        }
        // argon2 is deliberately slow: keep it off the async workers.
        let (state, token) = (state.clone(), token.to_string());
        tokio::task::spawn_blocking(move || state.tokens.authenticate(&token))
            .await
            .map_err(|e| Error::Config(format!("token check failed: {e}")))?
            .map_err(ApiError::from)
    }
}

#[derive(Deserialize)]
struct LoginBody {
    token: String,
}

/// `POST /api/login {"token": …}`: checks the token and sets the login cookie.
pub async fn login(
    State(state): State<Arc<AppState>>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body: LoginBody = super::openai::parse(body)?;
    if body.token.is_empty()
        || !body
            .token
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';')
    {
        return Err(Error::Unauthorized("알 수 없는 토큰입니다".into()).into());
    }
    let token = body.token.clone();
    let worker = state.clone();
    let caller = tokio::task::spawn_blocking(move || worker.tokens.authenticate(&token))
        .await
        .map_err(|e| Error::Config(format!("token check failed: {e}")))??;
    state.audit.record(&caller, "login", Vec::new())?;
    let cookie = format!(
        "{COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={COOKIE_MAX_AGE}",
        body.token
    );
    let mut response = Json(&caller).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| Error::InvalidInput(e.to_string()))?,
    );
    Ok(response)
}

/// `POST /api/logout`: clears the login cookie.
pub async fn logout() -> Response {
    let mut response = Json(Caller::public()).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("anjeon_token=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    response
}

/// `GET /api/me`: who the server takes the caller for.
pub async fn me(caller: Caller) -> Json<Caller> {
    Json(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_wins_over_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; anjeon_token=fromcookie"),
        );
        assert_eq!(presented_token(&headers), Some("fromcookie"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer fromheader"),
        );
        assert_eq!(presented_token(&headers), Some("fromheader"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert_eq!(presented_token(&headers), None);
        assert_eq!(presented_token(&HeaderMap::new()), None);
    }
}
