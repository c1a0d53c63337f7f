//! The page shell every dashboard page shares: title, navigation, logout, styles.

use maud::{DOCTYPE, Markup, html};

use super::session::Session;

/// The dashboard's pages, for the navigation bar.
const NAV: [(&str, &str); 4] = [
    ("/ui", "Overview"),
    ("/ui/rollouts", "Rollouts"),
    ("/ui/devices", "Devices"),
    ("/ui/anomalies", "Anomalies"),
];

/// A full page titled `title`, for `session` (None on the login page), around `body`.
/// `refresh` reloads the page every so many seconds (live views; no script needed).
pub fn page(title: &str, session: Option<&Session>, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(seconds) = refresh {
                    meta http-equiv="refresh" content=(seconds);
                }
                title { (title) " · Otter" }
                link rel="stylesheet" href="/ui/style.css";
            }
            body {
                header {
                    span.brand { "Otter" }
                    @if let Some(session) = session {
                        nav {
                            @for (href, label) in NAV {
                                a href=(href) { (label) }
                            }
                        }
                        form.logout method="post" action="/ui/logout" {
                            (csrf_field(session))
                            button type="submit" { "Log out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// The hidden CSRF field every form carries.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A Unix time as UTC text ("never" for none).
pub fn time(unix: Option<i64>) -> String {
    match unix.and_then(|t| jiff::Timestamp::from_second(t).ok()) {
        Some(t) => t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        None => "never".into(),
    }
}

/// A bar of `part` out of `whole`, with its numbers (a `<progress>`: no inline style,
/// which the page's Content-Security-Policy forbids).
pub fn bar(part: u64, whole: u64, class: &str) -> Markup {
    html! {
        progress class=(class) value=(part) max=(whole.max(1)) {}
        " " (part) "/" (whole)
    }
}
