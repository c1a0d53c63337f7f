//! The fleet dashboard at `/ui`: server-rendered HTML (maud), no script, for fleet managers.
//!
//! [`session`] (token login, the session cookie, CSRF), [`layout`] (the page shell),
//! `login` (log in and out), `rollouts` (each rollout's progress and buttons), `pages`
//! (overview, devices and a device's timeline, anomaly flags). Every page
//! needs a session; every form is a POST checked for CSRF; every response carries a strict
//! Content-Security-Policy (nothing but this server's own stylesheet, no frames).

pub mod layout;
mod login;
mod pages;
mod rollouts;
pub mod session;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::routing::{get, post};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::state::AppState;

/// The stylesheet, served from the binary.
const STYLE: &str = include_str!("style.css");

/// What every dashboard response says about itself to the browser.
const SECURITY_HEADERS: [(HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; \
         base-uri 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CACHE_CONTROL, "no-store"),
];

/// The dashboard's routes.
pub fn routes() -> Router<AppState> {
    let mut router = Router::new()
        .route("/ui", get(pages::overview))
        .route("/ui/rollouts", get(rollouts::list))
        .route("/ui/rollouts/{id}", get(rollouts::show))
        .route("/ui/rollouts/{id}/{command}", post(rollouts::command))
        .route("/ui/devices", get(pages::devices))
        .route("/ui/devices/{id}", get(pages::device))
        .route("/ui/anomalies", get(pages::anomalies))
        .route("/ui/anomalies/{id}/acknowledge", post(pages::acknowledge))
        .route("/ui/login", get(login::form).post(login::submit))
        .route("/ui/logout", post(login::logout))
        .route(
            "/ui/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE) }),
        );
    for (name, value) in SECURITY_HEADERS {
        router = router.layer(SetResponseHeaderLayer::overriding(
            name,
            HeaderValue::from_static(value),
        ));
    }
    router
}
