//! `GET/POST /ui/login` and `POST /ui/logout`.

use axum::Form;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::page;
use super::session::{self, COOKIE, LoginError, Session};
use crate::error::ApiError;
use crate::state::AppState;

fn login_page(error: Option<&str>) -> Markup {
    page(
        "Log in",
        None,
        None,
        html! {
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            p { "Log in with an API token that has the " code { "fleet" } " scope ("
                code { "otter-server token create --scope fleet" } ")." }
            form method="post" action="/ui/login" {
                label for="token" { "Token " }
                input #token type="password" name="token" autocomplete="off" required;
                " "
                button type="submit" { "Log in" }
            }
        },
    )
}

/// The login form.
pub async fn form() -> Html<String> {
    Html(login_page(None).into_string())
}

/// What the login form sends.
#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

/// Opens a session for a valid fleet token and goes to the overview; otherwise the form
/// again, with why.
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<LoginForm>,
) -> Response {
    // Login CSRF: another site's page must not log this browser into a session of its
    // choosing (whose actions would then be recorded under that token).
    if session::is_cross_site(&headers) {
        let refused = login_page(Some("refused: this login form was sent from another site"));
        return (
            axum::http::StatusCode::FORBIDDEN,
            Html(refused.into_string()),
        )
            .into_response();
    }
    match session::login(&state.db, &form.token).await {
        Ok(secret) => {
            let cookie = session::cookie(secret, session::is_https(&state, &headers));
            tracing::info!("dashboard login");
            (jar.add(cookie), Redirect::to("/ui")).into_response()
        }
        Err(e) => {
            if let LoginError::Db(db) = &e {
                tracing::error!(error = %db, "dashboard login failed");
            }
            let status = match e {
                LoginError::Db(_) => axum::http::StatusCode::SERVICE_UNAVAILABLE,
                _ => axum::http::StatusCode::UNAUTHORIZED,
            };
            (status, Html(login_page(Some(&e.to_string())).into_string())).into_response()
        }
    }
}

/// What every dashboard form sends.
#[derive(Deserialize)]
pub struct CsrfForm {
    /// The session's CSRF secret.
    #[serde(default)]
    pub csrf: String,
}

/// Ends the session and goes back to the login page.
pub async fn logout(
    State(state): State<AppState>,
    session: Session,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<CsrfForm>,
) -> Result<Response, ApiError> {
    session::check_form(&session, &headers, &form.csrf)?;
    if let Some(secret) = jar.get(COOKIE).map(|c| c.value().to_owned()) {
        session::logout(&state.db, &secret).await?;
    }
    let gone = session::cookie(String::new(), session::is_https(&state, &headers));
    Ok((jar.remove(gone), Redirect::to("/ui/login")).into_response())
}
