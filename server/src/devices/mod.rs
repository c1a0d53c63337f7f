//! Devices: registration (provisioning token), signed check-ins answered with a signed
//! director assignment, signed reports kept as a timeline, and the fleet's view of them.

mod assign;
mod checkin;
mod fleet;
mod register;
mod rejections;
mod reports;
mod store;
pub mod tags;
mod verify;

pub use assign::{AssignedRelease, Directed, direct, target_for};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::state::AppState;

/// Device and fleet routes under `/api/v1/devices`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register::register, fleet::list))
        .routes(routes!(fleet::show))
        .routes(routes!(checkin::checkin))
        .routes(routes!(reports::report))
        .routes(routes!(rejections::retry))
        .routes(routes!(tags::add, tags::remove))
}
