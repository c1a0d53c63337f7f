//! Creating, listing and revoking bearer tokens over the API (admin scope). The CLI
//! `otter-server token create|list|revoke` does the same directly on the database.

use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Json, Path};
use crate::auth::token::{self, NewToken, TokenError, TokenInfo};
use crate::auth::{Caller, Scope};
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::logsafe::untrusted;
use crate::state::AppState;

pub(super) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
}

/// A token request.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    /// Scopes to grant (at least one).
    #[schema(min_items = 1)]
    scopes: Vec<Scope>,
    /// What the token is for.
    #[serde(default)]
    label: String,
}

/// Creates a token; its secret is in this response only.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    request_body = TokenRequest,
    responses((status = 201, body = NewToken), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)))]
async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Json(request): Json<TokenRequest>,
) -> ApiResult<(StatusCode, axum::Json<NewToken>)> {
    caller.require(Scope::Admin)?;
    let created = token::create(&state.db, &request.scopes, &request.label)
        .await
        .map_err(|e| match e {
            TokenError::NoScope => ApiError::Unprocessable(e.to_string()),
            other => ApiError::internal(other),
        })?;
    tracing::info!(by = %caller.token_id, id = %created.id, scopes = ?created.scopes, "token created");
    Ok((StatusCode::CREATED, axum::Json(created)))
}

/// Lists every token (revoked ones too), without secrets.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens", security(("bearer" = [])),
    responses((status = 200, body = Vec<TokenInfo>), (status = 401, body = ErrorBody),
              (status = 403, body = ErrorBody)))]
async fn list_tokens(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<axum::Json<Vec<TokenInfo>>> {
    caller.require(Scope::Admin)?;
    Ok(axum::Json(token::list(&state.db).await?))
}

/// Revokes a token: every request with it is refused from now on.
#[utoipa::path(delete, path = "/api/v1/tokens/{id}", tag = "tokens", security(("bearer" = [])),
    params(("id" = String, Path, description = "Token id (`tok_...`, the part before the dot)")),
    responses((status = 204, description = "revoked (or already revoked)"),
              (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
async fn revoke_token(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require(Scope::Admin)?;
    if !token::revoke(&state.db, &id).await? {
        return Err(ApiError::NotFound(format!("no token {id:?}")));
    }
    tracing::info!(by = %caller.token_id, id = %untrusted(&id), "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
