//! Bearer tokens: `tok_<id>.<secret>`. The database keeps the id and the SHA-256 of the
//! secret; a presented token is found by id and its secret hash compared in constant time,
//! so neither a database dump nor response timing reveals a usable token.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::scope::{self, Scope};
use crate::db::{Db, new_id, now};

/// A token that was just created; the secret is shown once and never stored.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct NewToken {
    /// Token id (safe to log and to show).
    pub id: String,
    /// The full bearer token, `tok_<id>.<secret>`.
    pub token: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// Free-text label.
    pub label: String,
}

/// Why a token could not be created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The OS random source failed.
    #[error("no randomness for the token secret: {0}")]
    Random(getrandom::Error),
    /// No scope given.
    #[error("a token needs at least one scope")]
    NoScope,
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Creates a token with `scopes`, returning the only copy of its secret.
pub async fn create(db: &Db, scopes: &[Scope], label: &str) -> Result<NewToken, TokenError> {
    if scopes.is_empty() {
        return Err(TokenError::NoScope);
    }
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(TokenError::Random)?;
    let secret = hex::encode(secret);
    let id = new_id("tok");
    sqlx::query(
        "INSERT INTO tokens (id, secret_sha256, scopes, label, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&id)
    .bind(hash(&secret))
    .bind(scope::join(scopes))
    .bind(label)
    .bind(now())
    .execute(db.pool())
    .await?;
    Ok(NewToken {
        token: format!("{id}.{secret}"),
        id,
        scopes: scopes.to_vec(),
        label: label.to_owned(),
    })
}

/// Whether any live token has the admin scope (the first start creates one if not).
pub async fn has_admin(db: &Db) -> Result<bool, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as("SELECT scopes FROM tokens WHERE revoked_at IS NULL")
        .fetch_all(db.pool())
        .await?;
    Ok(rows
        .iter()
        .any(|(stored,)| scope::split(stored).contains(&Scope::Admin)))
}

/// A live token as presented: its id, label and scopes.
#[derive(Clone, Debug)]
pub struct Checked {
    /// Token id.
    pub id: String,
    /// Its label (who it was made for: the operator named in rollout timelines).
    pub label: String,
    /// Its scopes.
    pub scopes: Vec<Scope>,
}

/// The presented token, or `None` if it is unknown, revoked or wrong.
pub async fn check(db: &Db, presented: &str) -> Result<Option<Checked>, sqlx::Error> {
    let Some((id, secret)) = presented.split_once('.') else {
        return Ok(None);
    };
    let row: Option<(String, String, String)> = sqlx::query_as(
        "SELECT secret_sha256, scopes, label FROM tokens WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    // Hash even when the id is unknown, so both paths cost the same.
    let presented_hash = hash(secret);
    let (stored_hash, scopes, label) =
        row.unwrap_or_else(|| (String::new(), String::new(), String::new()));
    let equal: bool = presented_hash
        .as_bytes()
        .ct_eq(stored_hash.as_bytes())
        .into();
    Ok(equal.then(|| Checked {
        id: id.to_owned(),
        label,
        scopes: scope::split(&scopes),
    }))
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// What is shown of a token: never its secret (which is not stored anyway).
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct TokenInfo {
    /// Token id.
    pub id: String,
    /// Granted scopes.
    pub scopes: Vec<Scope>,
    /// Free-text label.
    pub label: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// Revocation time, Unix seconds; absent while the token is live.
    #[schema(required = false)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

/// Every token, oldest first, revoked ones included.
pub async fn list(db: &Db) -> Result<Vec<TokenInfo>, sqlx::Error> {
    let rows: Vec<(String, String, String, i64, Option<i64>)> = sqlx::query_as(
        "SELECT id, scopes, label, created_at, revoked_at FROM tokens ORDER BY created_at, id",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, scopes, label, created_at, revoked_at)| TokenInfo {
            id,
            scopes: scope::split(&scopes),
            label,
            created_at,
            revoked_at,
        })
        .collect())
}

/// Revokes token `id`; every later request with it is refused. `false` if no such token
/// exists (revoking a revoked token again succeeds and keeps the first time).
pub async fn revoke(db: &Db, id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now())
        .bind(id)
        .execute(db.pool())
        .await?;
    let exists: Option<(String,)> = sqlx::query_as("SELECT id FROM tokens WHERE id = $1")
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    Ok(exists.is_some())
}
