//! Who is calling: scoped bearer tokens for the vendor, fleet and provisioning APIs. Device
//! routes authenticate by the device's signature instead; TUF files are public by design.

mod scope;
pub mod token;

pub use scope::Scope;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated caller of a bearer-token route.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's id (for logs and audit; never the secret).
    pub token_id: String,
    /// The token's label: who acts, as recorded in rollout timelines.
    pub label: String,
    scopes: Vec<Scope>,
}

impl Caller {
    /// Succeeds if the token has `scope` (or `admin`), else 403.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "this token lacks the {scope:?} scope",
                scope = scope.as_str()
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthorized("missing `Authorization: Bearer` token".into())
        })?;
        let presented = header.to_str().ok().and_then(bearer_token).ok_or_else(|| {
            ApiError::Unauthorized("expected `Authorization: Bearer <token>`".into())
        })?;
        match token::check(&state.db, presented).await? {
            Some(checked) => Ok(Self {
                token_id: checked.id,
                label: checked.label,
                scopes: checked.scopes,
            }),
            None => Err(ApiError::Unauthorized("unknown or revoked token".into())),
        }
    }
}

/// The token of an `Authorization` value `Bearer <token>`; the scheme is case-insensitive
/// (RFC 9110 §11.1), the token non-empty.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme_matches_in_any_case() {
        for value in [
            "Bearer tok_a.b",
            "bearer tok_a.b",
            "BEARER  tok_a.b ",
            "bEaReR\ttok_a.b",
        ] {
            assert_eq!(bearer_token(value), Some("tok_a.b"), "{value:?}");
        }
        for value in [
            "Basic tok_a.b",
            "Bearertok_a.b",
            "Bearer",
            "Bearer   ",
            "tok_a.b",
        ] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
