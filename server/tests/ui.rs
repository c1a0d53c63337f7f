//! The fleet dashboard: login with a fleet token, the session cookie's flags, CSRF and
//! cross-site refusals, escaping of device-supplied text, revocation ending the session; and
//! the same pages in a real browser (Chromium through chromedriver), with a screenshot.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ProtocolDevice, TestServer, databases};
use otter_server::auth::Scope;
use serde_json::Value;

/// A client that keeps no cookies and follows no redirects: each test says what it sends.
fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Logs in with `token`; the response.
async fn login(client: &reqwest::Client, s: &TestServer, token: &str) -> reqwest::Response {
    client
        .post(s.at("/ui/login"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

/// The `otter_ui=…` pair from a login response.
fn session_cookie(response: &reqwest::Response) -> String {
    let set = response.headers()["set-cookie"].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

async fn get(
    client: &reqwest::Client,
    s: &TestServer,
    path: &str,
    cookie: &str,
) -> reqwest::Response {
    client
        .get(s.at(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

/// The CSRF secret in a page's forms.
fn csrf_in(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a CSRF field")
        + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

async fn open_flags(s: &TestServer, token: &str) -> Vec<Value> {
    s.client
        .get(s.at("/api/v1/anomalies"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn login_session_csrf_and_revocation() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let client = plain_client();
        let fleet = s.token(&[Scope::Fleet]).await;
        let publish = s.token(&[Scope::Publish]).await;

        // Device-supplied text (a serial) is escaped, never markup.
        let mut device = ProtocolDevice::register(&s, "board-u", "<script>alert(1)</script>").await;
        device.check_in(&s, "1.0.0", [3; 32]).await; // an unknown image: one open flag

        // No session: the login page.
        let r = client.get(s.at("/ui")).send().await.unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(r.headers()["location"], "/ui/login");

        // A token without the fleet scope, or no token at all, does not log in.
        let r = login(&client, &s, &publish).await;
        assert_eq!(r.status(), 401);
        assert!(r.headers().get("set-cookie").is_none());
        assert!(r.text().await.unwrap().contains("lacks the fleet scope"));
        let r = login(&client, &s, "tok_nope.secret").await;
        assert_eq!(r.status(), 401);

        // Not from another site's page, even with a good token (login CSRF).
        let r = client
            .post(s.at("/ui/login"))
            .header("sec-fetch-site", "cross-site")
            .form(&[("token", fleet.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
        assert!(r.headers().get("set-cookie").is_none());

        // A fleet token does; the cookie is HttpOnly, SameSite=Strict, only for /ui.
        let r = login(&client, &s, &fleet).await;
        assert_eq!(r.status(), 303);
        let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        for part in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
            assert!(set.contains(part), "{set}");
        }
        let cookie = session_cookie(&r);

        let r = get(&client, &s, "/ui", &cookie).await;
        assert_eq!(r.status(), 200);
        let csp = r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        let html = r.text().await.unwrap();
        assert!(html.contains("id=\"device-count\">1<"), "{html}");

        let r = get(&client, &s, "/ui/devices", &cookie).await;
        let html = r.text().await.unwrap();
        assert!(
            !html.contains("<script>alert(1)"),
            "unescaped device text: {html}"
        );
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );

        // Acknowledging: only with this session's CSRF secret, never cross-site.
        let html = get(&client, &s, "/ui/anomalies", &cookie)
            .await
            .text()
            .await
            .unwrap();
        let csrf = csrf_in(&html);
        let flags = open_flags(&s, &fleet).await;
        assert_eq!(flags.len(), 1, "{flags:?}");
        let path = format!(
            "/ui/anomalies/{}/acknowledge",
            flags[0]["id"].as_str().unwrap()
        );
        let post = |form: Vec<(&'static str, String)>, site: Option<&'static str>| {
            let mut request = client
                .post(s.at(&path))
                .header("cookie", &cookie)
                .form(&form);
            if let Some(site) = site {
                request = request.header("sec-fetch-site", site);
            }
            request.send()
        };
        let refused = [
            (vec![("note", "x".to_string())], None),
            (vec![("csrf", "0".repeat(64)), ("note", "x".into())], None),
            (
                vec![("csrf", csrf.clone()), ("note", "x".into())],
                Some("cross-site"),
            ),
        ];
        for (form, site) in refused {
            let r = post(form, site).await.unwrap();
            assert_eq!(r.status(), 403);
        }
        assert_eq!(
            open_flags(&s, &fleet).await.len(),
            1,
            "nothing was acknowledged"
        );
        let form = vec![("csrf", csrf.clone()), ("note", "known lab unit".into())];
        let r = post(form, Some("same-origin")).await.unwrap();
        assert_eq!(r.status(), 303);
        assert!(open_flags(&s, &fleet).await.is_empty());

        // A session lives no longer than its token.
        let fleet_id = fleet.split('.').next().unwrap();
        let admin = s.admin_token.clone();
        let r = s
            .client
            .delete(s.at(&format!("/api/v1/tokens/{fleet_id}")))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let r = get(&client, &s, "/ui", &cookie).await;
        assert_eq!(r.status(), 303, "a revoked token's session still works");

        // Logging out ends the session.
        let fleet = s.token(&[Scope::Fleet]).await;
        let cookie = session_cookie(&login(&client, &s, &fleet).await);
        let html = get(&client, &s, "/ui", &cookie).await.text().await.unwrap();
        let r = client
            .post(s.at("/ui/logout"))
            .header("cookie", &cookie)
            .form(&[("csrf", csrf_in(&html))])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        assert_eq!(get(&client, &s, "/ui", &cookie).await.status(), 303);
        s.stop().await;
    }
}

/// chromedriver, or why the browser test cannot run.
fn chromedriver() -> Result<(Child, u16), String> {
    let Ok(path) = which("chromedriver") else {
        return Err("chromedriver is not installed (Debian: chromium chromium-driver)".into());
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("chromedriver: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("chromedriver did not start listening".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok((child, port))
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    let path = std::env::var_os("PATH").ok_or(())?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or(())
}

#[tokio::test]
async fn the_dashboard_works_in_a_real_browser() {
    let (mut driver, port) = match chromedriver() {
        Ok(found) => found,
        Err(why) if std::env::var("OTTER_REQUIRE_ALL").as_deref() == Ok("1") => {
            panic!("OTTER_REQUIRE_ALL=1: {why}")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let s = TestServer::start(common::DbKind::Sqlite).await;
    let fleet = s.token(&[Scope::Fleet]).await;
    for i in 0..3 {
        let mut d = ProtocolDevice::register(&s, "board-w", &format!("SN-W{i}")).await;
        d.check_in(&s, "2.0.0", [i; 32]).await;
    }
    // A running rollout of board-w 3.0.0 to all of them: two admitted, one healthy.
    let release = common::insert_release(&s, "board-w", "3.0.0", &"44".repeat(32)).await;
    let rollout = s.roll_out(&release).await;
    let mut members = Vec::new();
    for i in 0..2 {
        let mut d = ProtocolDevice::register(&s, "board-w", &format!("SN-R{i}")).await;
        assert!(d.assigned(&s).await.is_some());
        members.push(d);
    }
    let healthy = otter_keys::wire::Event::Healthy {
        version: "3.0.0".parse().unwrap(),
        image_sha256: [0x44; 32],
    };
    members[0].report(&s, healthy).await;
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", "--window-size=1280,900"]}),
    );
    let browser =
        fantoccini::ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
    let result = async {
        use fantoccini::Locator;
        browser.goto(&s.at("/ui")).await?;
        assert!(browser.current_url().await?.path().ends_with("/ui/login"));
        browser
            .find(Locator::Css("#token"))
            .await?
            .send_keys(&fleet)
            .await?;
        browser
            .find(Locator::Css("form button"))
            .await?
            .click()
            .await?;
        let count = browser
            .wait()
            .for_element(Locator::Css("#device-count"))
            .await?;
        assert_eq!(count.text().await?, "5");
        browser.goto(&s.at("/ui/anomalies")).await?;
        let rows = browser.find_all(Locator::Css("tr.flag-row")).await?;
        assert_eq!(rows.len(), 5, "five devices run images that are no release");
        let flags_screenshot = browser.screenshot().await?;
        let row = &rows[0];
        row.find(Locator::Css("input[name=note]"))
            .await?
            .send_keys("seen in the lab")
            .await?;
        row.find(Locator::Css("button")).await?.click().await?;
        // The old page has the same table: wait for the new one, which holds the note.
        browser
            .wait()
            .for_element(Locator::XPath(
                "//table[@id='acknowledged']//td[text()='seen in the lab']",
            ))
            .await?;
        let left = browser.find_all(Locator::Css("tr.flag-row")).await?;
        assert_eq!(left.len(), 4);

        // The rollout's page: the right counts, then the pause button.
        browser.goto(&s.at("/ui/rollouts")).await?;
        browser
            .find(Locator::LinkText(&rollout))
            .await?
            .click()
            .await?;
        let state = browser
            .wait()
            .for_element(Locator::Css("#rollout-state"))
            .await?;
        assert_eq!(state.text().await?, "running");
        let stage = browser.find(Locator::Css("tr[data-stage='1']")).await?;
        assert_eq!(
            stage
                .find(Locator::Css("td.admitted"))
                .await?
                .text()
                .await?,
            "2"
        );
        let healthy = stage.find(Locator::Css("td.healthy")).await?.text().await?;
        assert!(healthy.ends_with("1/2"), "{healthy}");
        let assigned = stage
            .find(Locator::Css("td.assigned"))
            .await?
            .text()
            .await?;
        assert!(assigned.ends_with("1/2"), "{assigned}");
        let screenshot = browser.screenshot().await?;
        browser
            .find(Locator::Css("button[value=pause]"))
            .await?
            .click()
            .await?;
        // The page before the click has a state too: wait for the one that says paused.
        browser
            .wait()
            .for_element(Locator::XPath(
                "//*[@id='rollout-state' and normalize-space(.)='paused']",
            ))
            .await?;
        let timeline = browser
            .find(Locator::Css("#timeline"))
            .await?
            .text()
            .await?;
        assert!(timeline.contains("running -> paused"), "{timeline}");
        Ok::<_, fantoccini::error::CmdError>((flags_screenshot, screenshot))
    }
    .await;
    let _ = browser.close().await;
    let _ = driver.kill();
    let (flags_screenshot, screenshot) = result.unwrap();
    for (name, png) in [
        ("ui-anomalies.png", flags_screenshot),
        ("ui-rollout.png", screenshot),
    ] {
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
        let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
        std::fs::write(&out, &png).unwrap();
        eprintln!("dashboard screenshot: {}", out.display());
    }
    let shown: Value = s
        .client
        .get(s.at(&format!("/api/v1/rollouts/{rollout}")))
        .bearer_auth(&fleet)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["state"], "paused", "{shown}");
    let acknowledged: Vec<Value> = s
        .client
        .get(s.at("/api/v1/anomalies?open=false"))
        .bearer_auth(&fleet)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let done: Vec<&Value> = acknowledged
        .iter()
        .filter(|f| f["acknowledged_note"] == "seen in the lab")
        .collect();
    assert_eq!(done.len(), 1, "{acknowledged:?}");
    s.stop().await;
}
