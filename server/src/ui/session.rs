//! Dashboard sessions: logging in with an API token, the session cookie, and the CSRF check
//! every form goes through.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page
//! sends it), scoped to `/ui`, and `Secure` when the server or its proxy speaks HTTPS. Only
//! its SHA-256 is stored. A session is worth what its token is: it needs the `fleet` scope,
//! and revoking the token ends it. Forms carry the session's own CSRF secret, compared in
//! constant time; a request the browser marks as cross-site is refused before that.

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::{Scope, token};
use crate::db::{Db, now};
use crate::error::ApiError;
use crate::state::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "otter_ui";

/// How long a session lasts.
pub const LIFETIME_SECS: i64 = 8 * 3600;

/// A logged-in fleet manager.
#[derive(Clone, Debug)]
pub struct Session {
    /// The token they logged in with.
    pub token_id: String,
    /// Its label: who they are in rollout timelines and acknowledgements.
    pub operator: String,
    /// The secret every form must send back.
    pub csrf: String,
}

/// Why a login failed; shown on the login page.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown, malformed or revoked token.
    #[error("that token is not valid (unknown, mistyped or revoked)")]
    BadToken,
    /// A valid token without the fleet scope.
    #[error("that token lacks the fleet scope; the dashboard is for fleet managers")]
    NoFleetScope,
    /// The database failed.
    #[error("the server could not check the token; try again")]
    Db(#[from] sqlx::Error),
}

fn random_hex() -> String {
    let mut raw = [0u8; 32];
    // Without randomness there is no safe session: fail the login rather than guess.
    if getrandom::fill(&mut raw).is_err() {
        return String::new();
    }
    hex::encode(raw)
}

fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Checks `presented` (an API token) and opens a session for it; returns the cookie value.
pub async fn login(db: &Db, presented: &str) -> Result<String, LoginError> {
    let checked = token::check(db, presented.trim())
        .await?
        .ok_or(LoginError::BadToken)?;
    let token_id = checked.id;
    if !checked.scopes.contains(&Scope::Fleet) && !checked.scopes.contains(&Scope::Admin) {
        return Err(LoginError::NoFleetScope);
    }
    let (secret, csrf) = (random_hex(), random_hex());
    if secret.is_empty() || csrf.is_empty() {
        return Err(LoginError::Db(sqlx::Error::Protocol(
            "no randomness for a session".into(),
        )));
    }
    let created = now();
    sqlx::query("DELETE FROM ui_sessions WHERE expires_at <= $1")
        .bind(created)
        .execute(db.pool())
        .await?;
    sqlx::query(
        "INSERT INTO ui_sessions (secret_sha256, token_id, csrf, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(digest(&secret))
    .bind(&token_id)
    .bind(&csrf)
    .bind(created)
    .bind(created + LIFETIME_SECS)
    .execute(db.pool())
    .await?;
    Ok(secret)
}

/// The live session behind `secret`: not expired, its token not revoked.
pub async fn load(db: &Db, secret: &str) -> Result<Option<Session>, sqlx::Error> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT s.token_id, t.label, s.csrf FROM ui_sessions s JOIN tokens t ON t.id = s.token_id \
         WHERE s.secret_sha256 = $1 AND s.expires_at > $2 AND t.revoked_at IS NULL",
    )
    .bind(digest(secret))
    .bind(now())
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(token_id, operator, csrf)| Session {
        token_id,
        operator,
        csrf,
    }))
}

/// Ends the session behind `secret`.
pub async fn logout(db: &Db, secret: &str) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM ui_sessions WHERE secret_sha256 = $1")
        .bind(digest(secret))
        .execute(db.pool())
        .await?;
    Ok(())
}

/// The session cookie for `value`: a browser-session cookie; the server ends the session
/// itself after [`LIFETIME_SECS`].
pub fn cookie(value: String, secure: bool) -> Cookie<'static> {
    Cookie::build((COOKIE, value))
        .path("/ui")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build()
}

/// Whether the request reached us over HTTPS (directly, or as the proxy says).
pub fn is_https(state: &AppState, headers: &HeaderMap) -> bool {
    state.config.tls.is_some()
        || headers
            .get("x-forwarded-proto")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// Whether the browser says the request comes from another site (`Sec-Fetch-Site` other
/// than `same-origin` or `none`; browsers that do not send it rely on SameSite and CSRF).
pub fn is_cross_site(headers: &HeaderMap) -> bool {
    let site = headers.get("sec-fetch-site").map(|v| v.as_bytes());
    matches!(site, Some(s) if s != b"same-origin" && s != b"none")
}

/// Refuses a form post that is not from this dashboard: one the browser marks as coming
/// from another site, or whose CSRF field is not this session's secret.
pub fn check_form(session: &Session, headers: &HeaderMap, csrf: &str) -> Result<(), ApiError> {
    if is_cross_site(headers) {
        return Err(ApiError::Forbidden(
            "refused: the browser says this form was sent from another site".into(),
        ));
    }
    let equal: bool = csrf.as_bytes().ct_eq(session.csrf.as_bytes()).into();
    if csrf.is_empty() || !equal {
        return Err(ApiError::Forbidden(
            "refused: the form's CSRF token is missing or not this session's; reload the page"
                .into(),
        ));
    }
    Ok(())
}

/// The session of a dashboard request; without one, the browser is sent to the login page.
impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(secret) = jar.get(COOKIE).map(|c| c.value().to_owned()) else {
            return Err(Redirect::to("/ui/login").into_response());
        };
        match load(&state.db, &secret).await {
            Ok(Some(session)) => Ok(session),
            Ok(None) => Err(Redirect::to("/ui/login").into_response()),
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn session() -> Session {
        Session {
            token_id: "tok_1".into(),
            operator: "ops".into(),
            csrf: "abc123".into(),
        }
    }

    #[test]
    fn a_form_needs_this_sessions_csrf_secret() {
        let headers = HeaderMap::new();
        assert!(check_form(&session(), &headers, "abc123").is_ok());
        assert!(check_form(&session(), &headers, "abc124").is_err());
        assert!(check_form(&session(), &headers, "").is_err());
        assert!(check_form(&session(), &headers, "abc1234").is_err());
    }

    #[test]
    fn a_cross_site_form_is_refused_even_with_the_secret() {
        for (site, ok) in [
            ("same-origin", true),
            ("none", true),
            ("same-site", false),
            ("cross-site", false),
        ] {
            let mut headers = HeaderMap::new();
            headers.insert("sec-fetch-site", HeaderValue::from_static(site));
            assert_eq!(
                check_form(&session(), &headers, "abc123").is_ok(),
                ok,
                "{site}"
            );
        }
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_scoped_to_the_dashboard() {
        let text = cookie("s3cret".into(), true).to_string();
        for part in [
            "otter_ui=s3cret",
            "HttpOnly",
            "SameSite=Strict",
            "Path=/ui",
            "Secure",
        ] {
            assert!(text.contains(part), "{text}");
        }
        assert!(!cookie("x".into(), false).to_string().contains("Secure"));
    }
}
