//! The public, unauthenticated TUF routes: metadata under `/tuf/metadata/`, target files
//! under `/tuf/targets/`, laid out as any TUF 1.0 client with consistent snapshots expects.

use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::paths::{MetadataFile, TargetFile, target_files};
use super::store::{self, RoleName};
use crate::api::extract::Path;
use crate::error::{ApiError, ApiResult};
use crate::http::{CachePolicy, Entity, Source, respond};
use crate::state::AppState;

/// Public routes under `/tuf/metadata/` and `/tuf/targets/`.
pub(super) fn routes() -> OpenApiRouter<AppState> {
    // Target names contain slashes: axum needs a catch-all, OpenAPI a plain parameter.
    let (_, target_paths, target_router) = routes!(target);
    let mut router = OpenApiRouter::new()
        .routes(routes!(metadata))
        .route("/tuf/targets/{*path}", target_router);
    router.get_openapi_mut().paths.merge(target_paths);
    router
}

/// A TUF metadata file: `N.root.json`, `root.json` (newest), `timestamp.json`,
/// `N.snapshot.json`, `N.targets.json`, with offline release signing `N.release.json` and
/// `N.deltas.json`, and each without `N.` (newest, for clients without consistent
/// snapshots). Public; supports `ETag`/`If-None-Match`, `Range`.
#[utoipa::path(get, path = "/tuf/metadata/{file}", tag = "tuf",
    params(("file" = String, Path, description = "e.g. `timestamp.json`, `3.snapshot.json`",
        example = "timestamp.json"),
        ("Range" = Option<String>, Header, description = "one byte range, e.g. `bytes=100-`",
            example = "bytes=0-99"),
        ("If-None-Match" = Option<String>, Header, description = "an `ETag` from an earlier answer"),
    ),
    responses(
        (status = 200, description = "Signed TUF metadata", content_type = "application/json"),
        (status = 206, description = "The requested byte range", content_type = "application/json"),
        (status = 304, description = "Unchanged (If-None-Match)"),
        (status = 404, description = "No such metadata file", body = crate::error::ErrorBody),
        (status = 416, description = "Range outside the file", body = crate::error::ErrorBody),
    ))]
async fn metadata(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> ApiResult<Response> {
    let not_found = || ApiError::NotFound(format!("no TUF metadata file {file:?}"));
    let wanted = MetadataFile::parse(&file).ok_or_else(not_found)?;
    let db = state.db.pool();
    let body = match wanted {
        MetadataFile::Root(version) => store::root(db, version).await?.map(|(_, body)| body),
        MetadataFile::Timestamp => latest(db, RoleName::Timestamp, None).await?,
        MetadataFile::Snapshot(v) => latest(db, RoleName::Snapshot, v).await?,
        MetadataFile::Targets(v) => latest(db, RoleName::Targets, v).await?,
        MetadataFile::Release(v) => latest(db, RoleName::Release, v).await?,
        MetadataFile::Deltas(v) => latest(db, RoleName::Deltas, v).await?,
    }
    .ok_or_else(not_found)?;
    let bytes = Bytes::from(body);
    let entity = Entity {
        len: bytes.len() as u64,
        sha256: Sha256::digest(&bytes).into(),
        content_type: "application/json",
        cache: if wanted.is_versioned() {
            CachePolicy::Immutable
        } else {
            CachePolicy::Revalidate
        },
        source: Source::Bytes(bytes),
    };
    respond(&method, &headers, entity).await
}

async fn latest(
    db: &sqlx::AnyPool,
    role: RoleName,
    version: Option<u64>,
) -> Result<Option<String>, super::TufError> {
    Ok(store::metadata(db, role, version).await?.map(|m| m.body))
}

/// A target file: `dir/HASH.file` (consistent snapshot, as the TUF spec and python-tuf name
/// it), `HASH.dir/file` (as tough names it), or the plain target name (whatever the target
/// currently is). Only release images and delta patches are served. Public; supports
/// `ETag`/`If-None-Match`, `Range`/`If-Range` for resumable downloads.
#[utoipa::path(get, path = "/tuf/targets/{path}", tag = "tuf",
    params(("path" = String, Path,
        description = "target path, e.g. `firmware/acme-1/HASH.1.2.0.img`",
        example = "firmware/acme-1/1.2.0.img"),
        ("Range" = Option<String>, Header, description = "one byte range, e.g. `bytes=100-`",
            example = "bytes=0-99"),
        ("If-None-Match" = Option<String>, Header, description = "an `ETag` from an earlier answer"),
        ("If-Range" = Option<String>, Header,
            description = "the `ETag` the download started with: a changed file is sent whole"),
    ),
    responses(
        (status = 200, description = "The target file", content_type = "application/octet-stream"),
        (status = 206, description = "The requested byte range", content_type = "application/octet-stream"),
        (status = 304, description = "Unchanged (If-None-Match)"),
        (status = 404, description = "No such target", body = crate::error::ErrorBody),
        (status = 416, description = "Range outside the file", body = crate::error::ErrorBody),
    ))]
async fn target(
    State(state): State<AppState>,
    method: Method,
    headers: HeaderMap,
    Path(path): Path<String>,
) -> ApiResult<Response> {
    for file in target_files(&path) {
        let (name, wanted, cache) = match &file {
            TargetFile::Current(name) => (name, None, CachePolicy::Revalidate),
            TargetFile::Prefixed { name, sha256 } => (name, Some(sha256), CachePolicy::Immutable),
        };
        let Some((sha256_hex, length)) = store::target_file(state.db.pool(), name).await? else {
            continue;
        };
        let mut sha256 = [0u8; 32];
        hex::decode_to_slice(&sha256_hex, &mut sha256).map_err(|_| {
            ApiError::internal(format_args!("target {name}: bad sha256 {sha256_hex:?}"))
        })?;
        if wanted.is_some_and(|w| *w != sha256) {
            continue;
        }
        let entity = Entity {
            len: u64::try_from(length).map_err(ApiError::internal)?,
            sha256,
            content_type: "application/octet-stream",
            cache,
            source: Source::Blob(state.blobs.clone()),
        };
        return respond(&method, &headers, entity).await;
    }
    Err(ApiError::NotFound(format!("no TUF target file {path:?}")))
}
