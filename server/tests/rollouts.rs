//! Staged rollouts through the API and the device protocol, on SQLite and PostgreSQL: the
//! state machine (409s with the engine's messages), device tags, policy checks, the
//! director (no newest-wins; buckets, dynamic cohorts, canaries, pause and abort), reports
//! as member states, auto-pause, auto-advance by the ticker, one active rollout per cohort.

mod common;

use common::{ProtocolDevice, TestServer, databases, expect_error, insert_release};
use otter_keys::rollout::{BasisPoints, bucket};
use otter_keys::wire::Event;
use otter_server::auth::Scope;
use serde_json::{Value, json};

const BOARD: &str = "acme-r";

fn v(text: &str) -> otter_boot::image::Version {
    text.parse().unwrap()
}

/// A create request for `release_id` with `stages` (percent, soak) to everyone of the board.
fn create_body(release_id: &str, stages: &[(&str, &str)]) -> Value {
    json!({
        "release_id": release_id,
        "cohort": {"tags": []},
        "stages": stages.iter().map(|(p, s)| json!({"percent": p, "soak": s})).collect::<Vec<_>>(),
        "failure_threshold": {"max": "10%", "min_devices": 2},
        "rate_limit_per_minute": null,
        "device_timeout": "24h",
        "reason": "test rollout",
    })
}

async fn post(s: &TestServer, token: &str, path: &str, body: &Value) -> reqwest::Response {
    s.client
        .post(s.at(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn get(s: &TestServer, token: &str, path: &str) -> Value {
    let r = s
        .client
        .get(s.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Creates a rollout with a signed policy (`ceiling`) and starts it; its id.
async fn started(s: &TestServer, fleet: &str, mut body: Value, ceiling: &str) -> String {
    let id = otter_server::db::new_id("rol");
    let release = body["release_id"].as_str().unwrap().to_owned();
    body["policy"] = serde_json::to_value(s.sign_policy(&id, &release, ceiling).await).unwrap();
    let r = post(s, fleet, "/api/v1/rollouts", &body).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    s.rollout_command(fleet, &id, "start").await;
    id
}

async fn devices(s: &TestServer, n: usize, prefix: &str) -> Vec<ProtocolDevice> {
    let mut out = Vec::new();
    for i in 0..n {
        out.push(ProtocolDevice::register(s, BOARD, &format!("{prefix}-{i}")).await);
    }
    out
}

#[tokio::test]
async fn the_state_machine_over_http_answers_illegal_moves_with_409() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let release = insert_release(&s, BOARD, "2.0.0", &"22".repeat(32)).await;

        // A draft without a policy: the server picks its id; it can not start.
        let r = post(
            &s,
            &fleet,
            "/api/v1/rollouts",
            &create_body(&release, &[("100%", "0s")]),
        )
        .await;
        assert_eq!(r.status(), 201);
        let draft: Value = r.json().await.unwrap();
        let id = draft["id"].as_str().unwrap().to_owned();
        assert!(id.starts_with("rol_"), "{id}");
        assert_eq!(draft["state"], "draft");
        assert_eq!(draft["waiting"]["kind"], "policy");
        assert_eq!(draft["created_by"], "test");
        let path = |a: &str| format!("/api/v1/rollouts/{id}/{a}");
        let message = expect_error(
            post(&s, &fleet, &path("start"), &json!({"reason": "go"})).await,
            409,
            "conflict",
        )
        .await;
        assert!(message.contains("no signed policy"), "{message}");
        assert!(message.contains("otter-keys sign-rollout"), "{message}");
        for (action, expect) in [
            (
                "pause",
                "a draft rollout can not become paused (start it first)",
            ),
            (
                "resume",
                "can not resume a draft rollout: only a paused one",
            ),
            (
                "advance",
                "only a running rollout can advance; this one is draft",
            ),
        ] {
            let m = expect_error(
                post(&s, &fleet, &path(action), &json!({})).await,
                409,
                "conflict",
            )
            .await;
            assert_eq!(m, expect, "{action}");
        }

        // Its policy uploaded, it starts, and every move follows the state machine.
        let policy = s.sign_policy(&id, &release, "100%").await;
        let r = s
            .client
            .put(s.at(&path("policy")))
            .bearer_auth(&fleet)
            .json(&json!({"policy": policy, "reason": "signed offline"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        let running = s.rollout_command(&fleet, &id, "start").await;
        assert_eq!(running["state"], "running");
        assert_eq!(running["stage"], 1);
        assert_eq!(running["ceiling"], "100%");
        let m = expect_error(
            post(&s, &fleet, &path("start"), &json!({})).await,
            409,
            "conflict",
        )
        .await;
        assert_eq!(m, "can not start a running rollout: only a draft one");
        let m = expect_error(
            post(&s, &fleet, &path("advance"), &json!({})).await,
            409,
            "conflict",
        )
        .await;
        assert_eq!(
            m,
            "stage 1 is the last stage; there is nothing to advance to"
        );
        assert_eq!(
            s.rollout_command(&fleet, &id, "pause").await["state"],
            "paused"
        );
        let m = expect_error(
            post(&s, &fleet, &path("pause"), &json!({})).await,
            409,
            "conflict",
        )
        .await;
        assert!(m.contains("(it already is)"), "{m}");
        assert_eq!(
            s.rollout_command(&fleet, &id, "resume").await["state"],
            "running"
        );
        let aborted = s.rollout_command(&fleet, &id, "abort").await;
        assert_eq!(aborted["state"], "aborted");
        let m = expect_error(
            post(&s, &fleet, &path("resume"), &json!({})).await,
            409,
            "conflict",
        )
        .await;
        assert_eq!(m, "can not resume a aborted rollout: only a paused one");
        let m = expect_error(
            post(&s, &fleet, &path("abort"), &json!({})).await,
            409,
            "conflict",
        )
        .await;
        assert!(m.contains("(it is final)"), "{m}");

        // The timeline says who did what and why, in order.
        let shown = get(&s, &fleet, &format!("/api/v1/rollouts/{id}")).await;
        let changes: Vec<&str> = (shown["timeline"].as_array().unwrap().iter())
            .map(|e| e["change"].as_str().unwrap())
            .collect();
        assert_eq!(
            changes,
            [
                "created, waiting for a signed policy",
                "policy: ceiling 100%",
                "draft -> running",
                "running -> paused",
                "paused -> running",
                "running -> aborted"
            ]
        );
        assert_eq!(shown["timeline"][1]["reason"], "signed offline");
        assert_eq!(shown["timeline"][2]["actor"], "test");
        // A final rollout takes no new policy.
        let r = s
            .client
            .put(s.at(&path("policy")))
            .bearer_auth(&fleet)
            .json(&json!({"policy": policy}))
            .send()
            .await
            .unwrap();
        expect_error(r, 409, "conflict").await;

        // Unknown rollout, unknown action, missing scope.
        let r = post(&s, &fleet, "/api/v1/rollouts/rol_nope/start", &json!({})).await;
        expect_error(r, 404, "not_found").await;
        let r = post(&s, &fleet, &path("explode"), &json!({})).await;
        expect_error(r, 400, "bad_request").await;
        let publish = s.token(&[Scope::Publish]).await;
        let r = s
            .client
            .get(s.at("/api/v1/rollouts"))
            .bearer_auth(&publish)
            .send()
            .await
            .unwrap();
        expect_error(r, 403, "forbidden").await;
        let listed = get(&s, &fleet, "/api/v1/rollouts?limit=10").await;
        assert_eq!(listed.as_array().unwrap().len(), 1);
        s.stop().await;
    }
}

#[tokio::test]
async fn tags_are_added_shown_removed_and_validated() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let d = ProtocolDevice::register(&s, BOARD, "SN-T").await;
        let path = format!("/api/v1/devices/{}/tags", d.id);
        let r = post(&s, &fleet, &path, &json!({"tags": ["eu", "canary", "eu"]})).await;
        assert_eq!(r.status(), 200);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["tags"], json!(["canary", "eu"]));
        let shown = get(&s, &fleet, &format!("/api/v1/devices/{}", d.id)).await;
        assert_eq!(shown["tags"], json!(["canary", "eu"]));
        let r = s
            .client
            .delete(s.at(&path))
            .bearer_auth(&fleet)
            .json(&json!({"tags": ["canary", "never-had"]}))
            .send()
            .await
            .unwrap();
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["tags"], json!(["eu"]));
        for (bad, why) in [
            (json!({"tags": []}), "1 to 32"),
            (json!({"tags": ["has space"]}), "only letters"),
            (json!({"tags": ["x".repeat(65)]}), "1 to 64"),
        ] {
            let m = expect_error(post(&s, &fleet, &path, &bad).await, 422, "unprocessable").await;
            assert!(m.contains(why), "{m}");
        }
        let r = post(
            &s,
            &fleet,
            "/api/v1/devices/dev_nope/tags",
            &json!({"tags": ["eu"]}),
        )
        .await;
        expect_error(r, 404, "not_found").await;
        let provision = s.token(&[Scope::Provision]).await;
        let r = post(&s, &provision, &path, &json!({"tags": ["eu"]})).await;
        expect_error(r, 403, "forbidden").await;
        s.stop().await;
    }
}

#[tokio::test]
async fn policies_and_specs_are_checked_on_create_and_upload() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let release = insert_release(&s, BOARD, "2.0.0", &"22".repeat(32)).await;
        let other = insert_release(&s, BOARD, "3.0.0", &"33".repeat(32)).await;
        let with_policy = |policy: Value| {
            let mut body = create_body(&release, &[("10%", "1h"), ("100%", "0s")]);
            body["policy"] = policy;
            body
        };

        // Signed by a key the server does not trust.
        let mut forged = s.sign_policy("rol_forged", &release, "100%").await;
        let mallory_dir = tempfile::tempdir().unwrap();
        let mallory =
            otter_keys::signer::FileKey::generate_at(&mallory_dir.path().join("k")).unwrap();
        forged = otter_keys::wire::Signed::sign(forged.message, &mallory).unwrap();
        let r = post(
            &s,
            &fleet,
            "/api/v1/rollouts",
            &with_policy(serde_json::to_value(&forged).unwrap()),
        )
        .await;
        let m = expect_error(r, 422, "unprocessable").await;
        assert!(m.contains("not signed by any"), "{m}");
        // Altered after signing.
        let mut altered = s.sign_policy("rol_altered", &release, "10%").await;
        altered.message.ceiling = BasisPoints::FULL;
        let r = post(
            &s,
            &fleet,
            "/api/v1/rollouts",
            &with_policy(serde_json::to_value(&altered).unwrap()),
        )
        .await;
        expect_error(r, 422, "unprocessable").await;
        // For another release's image.
        let wrong_image = s.sign_policy("rol_img", &other, "100%").await;
        let r = post(
            &s,
            &fleet,
            "/api/v1/rollouts",
            &with_policy(serde_json::to_value(&wrong_image).unwrap()),
        )
        .await;
        let m = expect_error(r, 422, "unprocessable").await;
        assert!(m.contains("the rollout policy is for image"), "{m}");
        // The first stage above the signed ceiling.
        let narrow = s.sign_policy("rol_narrow", &release, "5%").await;
        let r = post(
            &s,
            &fleet,
            "/api/v1/rollouts",
            &with_policy(serde_json::to_value(&narrow).unwrap()),
        )
        .await;
        let m = expect_error(r, 422, "unprocessable").await;
        assert!(m.contains("above the signed ceiling"), "{m}");
        // A good one: the rollout takes the policy's id; the same id again is a conflict.
        let good = serde_json::to_value(s.sign_policy("rol_good", &release, "10%").await).unwrap();
        let r = post(&s, &fleet, "/api/v1/rollouts", &with_policy(good.clone())).await;
        assert_eq!(r.status(), 201);
        let created: Value = r.json().await.unwrap();
        assert_eq!(created["id"], "rol_good");
        assert_eq!(created["ceiling"], "10%");
        let r = post(&s, &fleet, "/api/v1/rollouts", &with_policy(good)).await;
        let m = expect_error(r, 409, "conflict").await;
        assert!(m.contains("already exists"), "{m}");

        // A policy from another rollout is refused on upload.
        let r = post(
            &s,
            &fleet,
            "/api/v1/rollouts",
            &create_body(&release, &[("100%", "0s")]),
        )
        .await;
        let draft: Value = r.json().await.unwrap();
        let draft_id = draft["id"].as_str().unwrap();
        let foreign = s.sign_policy("rol_good", &release, "100%").await;
        let r = s
            .client
            .put(s.at(&format!("/api/v1/rollouts/{draft_id}/policy")))
            .bearer_auth(&fleet)
            .json(&json!({"policy": foreign}))
            .send()
            .await
            .unwrap();
        let m = expect_error(r, 422, "unprocessable").await;
        assert!(m.contains("rollout id"), "{m}");

        // Bad specs: each refused with its reason.
        let cases: Vec<(Value, &str)> = vec![
            (create_body("rel_nope", &[("100%", "0s")]), "no release"),
            (
                create_body(&release, &[("150%", "0s")]),
                "stages[1].percent",
            ),
            (create_body(&release, &[("10%", "soon")]), "stages[1].soak"),
            (create_body(&release, &[]), "at least one stage"),
            (
                create_body(&release, &[("50%", "0s"), ("20%", "0s")]),
                "must be above",
            ),
            (
                {
                    let mut b = create_body(&release, &[("100%", "0s")]);
                    b["device_timeout"] = json!("0s");
                    b
                },
                "device timeout must be positive",
            ),
            (
                {
                    let mut b = create_body(&release, &[("100%", "0s")]);
                    b["rate_limit_per_minute"] = json!(0);
                    b
                },
                "rate_limit_per_minute",
            ),
            (
                {
                    let mut b = create_body(&release, &[("100%", "0s")]);
                    b["cohort"] = json!({"devices": []});
                    b
                },
                "explicit cohort needs at least one device",
            ),
            (
                {
                    let mut b = create_body(&release, &[("100%", "0s")]);
                    b["cohort"] = json!({"tags": ["bad tag"]});
                    b
                },
                "cohort: tag",
            ),
        ];
        for (body, why) in cases {
            let m = expect_error(
                post(&s, &fleet, "/api/v1/rollouts", &body).await,
                422,
                "unprocessable",
            )
            .await;
            assert!(m.contains(why), "{why}: {m}");
        }
        s.stop().await;
    }
}

#[tokio::test]
async fn the_director_assigns_only_through_rollouts_by_bucket_and_stage() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let release = insert_release(&s, BOARD, "2.0.0", &"22".repeat(32)).await;
        let mut fleet_devices = devices(&s, 12, "SN-D").await;

        // Published but in no rollout: nobody gets it (no more newest-wins).
        for d in &mut fleet_devices {
            assert_eq!(d.assigned_version(&s).await, None);
        }

        // Stage 1 is 50 %, under a 50 % ceiling: exactly the devices whose bucket is below.
        let body = create_body(&release, &[("50%", "0s"), ("100%", "0s")]);
        let id = started(&s, &fleet, body, "50%").await;
        let half = BasisPoints::new(5000).unwrap();
        let mut inside = 0;
        for d in &mut fleet_devices {
            let expected = half.admits(bucket(&d.id, &id)).then(|| "2.0.0".to_owned());
            inside += usize::from(expected.is_some());
            assert_eq!(d.assigned_version(&s).await, expected, "{}", d.id);
            // Asking again changes nothing.
            assert_eq!(d.assigned_version(&s).await, expected, "{}", d.id);
        }
        let shown = get(&s, &fleet, &format!("/api/v1/rollouts/{id}")).await;
        assert_eq!(shown["per_stage"][0]["admitted"], inside);
        assert_eq!(shown["per_stage"][0]["states"]["assigned"], inside);
        assert_eq!(shown["per_stage"][1]["admitted"], 0);
        // Stage 2 goes past the signed ceiling: a manual advance is refused.
        let r = post(
            &s,
            &fleet,
            &format!("/api/v1/rollouts/{id}/advance"),
            &json!({}),
        )
        .await;
        let m = expect_error(r, 409, "conflict").await;
        assert!(m.contains("above the signed ceiling 50%"), "{m}");
        // A wider policy lets it advance; then everyone is in.
        let wide = s.sign_policy(&id, &release, "100%").await;
        let r = s
            .client
            .put(s.at(&format!("/api/v1/rollouts/{id}/policy")))
            .bearer_auth(&fleet)
            .json(&json!({"policy": wide, "reason": "stage 1 is fine"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        s.rollout_command(&fleet, &id, "advance").await;
        for d in &mut fleet_devices {
            assert_eq!(d.assigned_version(&s).await.as_deref(), Some("2.0.0"));
        }
        let shown = get(&s, &fleet, &format!("/api/v1/rollouts/{id}")).await;
        assert_eq!(shown["per_stage"][0]["admitted"], inside);
        assert_eq!(
            shown["per_stage"][1]["admitted"],
            12 - inside,
            "members keep their stage"
        );

        // Another board is outside the cohort.
        let mut stranger = ProtocolDevice::register(&s, "other-board", "SN-O").await;
        assert_eq!(stranger.assigned_version(&s).await, None);
        s.stop().await;
    }
}

#[tokio::test]
async fn cohorts_are_dynamic_canaries_explicit_and_pause_and_abort_admit_nobody() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let release = insert_release(&s, BOARD, "2.0.0", &"22".repeat(32)).await;

        // Tagged cohort: only tagged devices, including one registered and tagged later.
        let mut early = devices(&s, 2, "SN-E").await;
        let tag = |d: &ProtocolDevice| format!("/api/v1/devices/{}/tags", d.id);
        post(&s, &fleet, &tag(&early[0]), &json!({"tags": ["eu"]})).await;
        let mut body = create_body(&release, &[("100%", "0s")]);
        body["cohort"] = json!({"tags": ["eu"]});
        let tagged = started(&s, &fleet, body, "100%").await;
        assert_eq!(
            early[0].assigned_version(&s).await.as_deref(),
            Some("2.0.0")
        );
        assert_eq!(early[1].assigned_version(&s).await, None, "untagged");
        let mut late = ProtocolDevice::register(&s, BOARD, "SN-LATE").await;
        assert_eq!(late.assigned_version(&s).await, None);
        post(&s, &fleet, &tag(&late), &json!({"tags": ["eu", "x"]})).await;
        assert_eq!(
            late.assigned_version(&s).await.as_deref(),
            Some("2.0.0"),
            "joins"
        );

        // Paused: members keep the release, nobody new joins.
        s.rollout_command(&fleet, &tagged, "pause").await;
        let mut later = ProtocolDevice::register(&s, BOARD, "SN-LATER").await;
        post(&s, &fleet, &tag(&later), &json!({"tags": ["eu"]})).await;
        assert_eq!(
            later.assigned_version(&s).await,
            None,
            "paused admits nobody"
        );
        assert_eq!(
            late.assigned_version(&s).await.as_deref(),
            Some("2.0.0"),
            "member keeps it"
        );

        // Aborted: nothing, not even to members.
        s.rollout_command(&fleet, &tagged, "abort").await;
        assert_eq!(late.assigned_version(&s).await, None);
        assert_eq!(early[0].assigned_version(&s).await, None);

        // A canary list: exactly the devices named.
        let mut body = create_body(&release, &[("100%", "0s")]);
        body["cohort"] = json!({"devices": [early[1].id]});
        started(&s, &fleet, body, "100%").await;
        assert_eq!(
            early[1].assigned_version(&s).await.as_deref(),
            Some("2.0.0")
        );
        assert_eq!(later.assigned_version(&s).await, None);
        // The aborted rollout's member still gets nothing: older rollouts are not consulted.
        assert_eq!(late.assigned_version(&s).await, None);
        s.stop().await;
    }
}

#[tokio::test]
async fn only_one_rollout_per_board_and_cohort_is_active() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let v2 = insert_release(&s, BOARD, "2.0.0", &"22".repeat(32)).await;
        let v3 = insert_release(&s, BOARD, "3.0.0", &"33".repeat(32)).await;
        let first = started(&s, &fleet, create_body(&v2, &[("100%", "0s")]), "100%").await;
        s.rollout_command(&fleet, &first, "pause").await;
        let id = otter_server::db::new_id("rol");
        let mut body = create_body(&v3, &[("100%", "0s")]);
        body["policy"] = serde_json::to_value(s.sign_policy(&id, &v3, "100%").await).unwrap();
        assert_eq!(
            post(&s, &fleet, "/api/v1/rollouts", &body).await.status(),
            201
        );
        let r = post(
            &s,
            &fleet,
            &format!("/api/v1/rollouts/{id}/start"),
            &json!({}),
        )
        .await;
        let m = expect_error(r, 409, "conflict").await;
        assert!(m.contains("already running or paused"), "{m}");
        // Another cohort of the same board may run at the same time.
        let mut canary = create_body(&v3, &[("100%", "0s")]);
        canary["cohort"] = json!({"tags": ["canary"]});
        started(&s, &fleet, canary, "100%").await;
        // Once the first is aborted, the second starts.
        s.rollout_command(&fleet, &first, "abort").await;
        s.rollout_command(&fleet, &id, "start").await;
        s.stop().await;
    }
}

#[tokio::test]
async fn reports_move_members_and_failures_over_the_threshold_pause_at_once() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let release = insert_release(&s, BOARD, "2.0.0", &"22".repeat(32)).await;
        let mut ds = devices(&s, 4, "SN-P").await;
        let id = started(&s, &fleet, create_body(&release, &[("100%", "0s")]), "100%").await;
        for d in &mut ds {
            assert!(d.assigned(&s).await.is_some());
        }
        let states = |shown: &Value| shown["per_stage"][0]["states"].clone();
        let path = format!("/api/v1/rollouts/{id}");
        let show = || get(&s, &fleet, &path);

        let downloading = Event::Downloading {
            target: "t".into(),
            bytes: 1,
            total: 2,
        };
        ds[0].report(&s, downloading.clone()).await;
        ds[0]
            .report(
                &s,
                Event::Installed {
                    version: v("2.0.0"),
                },
            )
            .await;
        ds[1]
            .report(
                &s,
                Event::Booted {
                    version: v("2.0.0"),
                    image_sha256: [0x22; 32],
                },
            )
            .await;
        ds[1]
            .report(
                &s,
                Event::Healthy {
                    version: v("2.0.0"),
                    image_sha256: [0x22; 32],
                },
            )
            .await;
        // Transient trouble and other versions change nothing.
        ds[2].report(&s, downloading).await;
        ds[2]
            .report(
                &s,
                Event::Failed {
                    stage: "download".into(),
                    reason: "timeout".into(),
                },
            )
            .await;
        ds[2]
            .report(
                &s,
                Event::Installed {
                    version: v("1.5.0"),
                },
            )
            .await;
        let shown = show().await;
        assert_eq!(
            states(&shown),
            json!({"assigned": 1, "downloading": 1, "installed": 1, "booted": 0,
                   "healthy": 1, "failed": 0, "rolled_back": 0})
        );
        assert_eq!(shown["state"], "running");
        assert_eq!(shown["waiting"]["kind"], "devices");

        // One failure among 4 is 25 % > 10 %, with min_devices 2 reached: paused at once,
        // by the engine, saying why.
        ds[3]
            .report(
                &s,
                Event::Failed {
                    stage: "health".into(),
                    reason: "crash".into(),
                },
            )
            .await;
        let shown = show().await;
        assert_eq!(shown["state"], "paused");
        assert_eq!(states(&shown)["failed"], 1);
        assert_eq!(shown["failure_rate"]["failures"], 1);
        assert_eq!(shown["failure_rate"]["rate"], "25%");
        assert_eq!(shown["failure_rate"]["over"], true);
        let last = shown["timeline"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["actor"], "engine");
        assert_eq!(last["change"], "running -> paused");
        assert!(
            last["reason"].as_str().unwrap().contains("1 of 4"),
            "{last}"
        );
        // A rollback is a failure too.
        ds[0]
            .report(&s, Event::RolledBack { from: v("2.0.0") })
            .await;
        assert_eq!(states(&show().await)["rolled_back"], 1);
        s.stop().await;
    }
}

#[tokio::test]
async fn the_ticker_advances_a_soaked_stage_and_completes_the_rollout() {
    for kind in databases() {
        let s = TestServer::start_with(kind, |c| {
            c.rollout_tick = std::time::Duration::from_millis(100);
        })
        .await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let release = insert_release(&s, BOARD, "2.0.0", &"22".repeat(32)).await;
        let mut ds = devices(&s, 3, "SN-K").await;
        // Stage 2 soaks 3 s, or it would complete before anyone checks in (a stage
        // nobody was admitted to is done once soaked).
        let body = create_body(&release, &[("1%", "1s"), ("100%", "3s")]);
        let id = started(&s, &fleet, body, "100%").await;
        let path = format!("/api/v1/rollouts/{id}");
        let show = || get(&s, &fleet, &path);
        // Whoever is in stage 1 becomes healthy; after the 1 s soak the ticker advances.
        for d in &mut ds {
            if d.assigned(&s).await.is_some() {
                d.report(
                    &s,
                    Event::Healthy {
                        version: v("2.0.0"),
                        image_sha256: [0x22; 32],
                    },
                )
                .await;
            }
        }
        let mut shown = show().await;
        for _ in 0..50 {
            if shown["stage"] == 2 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            shown = show().await;
        }
        assert_eq!(shown["stage"], 2, "{shown}");
        let advance = &shown["timeline"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(advance["actor"], "engine");
        assert_eq!(advance["change"], "stage 1 -> stage 2");
        // Every device joins stage 2; once all are healthy the rollout completes.
        for d in &mut ds {
            assert!(d.assigned(&s).await.is_some());
            d.report(
                &s,
                Event::Healthy {
                    version: v("2.0.0"),
                    image_sha256: [0x22; 32],
                },
            )
            .await;
        }
        for _ in 0..100 {
            if shown["state"] == "completed" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            shown = show().await;
        }
        assert_eq!(shown["state"], "completed", "{shown}");
        // Members of a completed rollout keep its release.
        assert_eq!(ds[0].assigned_version(&s).await.as_deref(), Some("2.0.0"));
        s.stop().await;
    }
}

#[tokio::test]
async fn evaluation_at_a_given_time_advances_only_after_the_soak() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let release = insert_release(&s, BOARD, "2.0.0", &"22".repeat(32)).await;
        let body = create_body(&release, &[("10%", "1h"), ("100%", "0s")]);
        let id = started(&s, &fleet, body, "100%").await;
        let db = &s.state.db;
        let now = jiff::Timestamp::now();
        let e = otter_server::rollouts::store::evaluate(db, &id, now)
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(e.waiting, Some(otter_server::rollouts::Wait::Soak { .. })),
            "{e:?}"
        );
        let shown = get(&s, &fleet, &format!("/api/v1/rollouts/{id}")).await;
        assert_eq!(shown["waiting"]["kind"], "soak");
        let later = now + jiff::SignedDuration::from_mins(61);
        otter_server::rollouts::store::evaluate(db, &id, later)
            .await
            .unwrap()
            .unwrap();
        let shown = get(&s, &fleet, &format!("/api/v1/rollouts/{id}")).await;
        assert_eq!(shown["stage"], 2);
        s.stop().await;
    }
}

#[tokio::test]
async fn the_rate_limit_holds_under_concurrent_checkins() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let release = insert_release(&s, BOARD, "2.0.0", &"22".repeat(32)).await;
        let ds = devices(&s, 8, "SN-RL").await;
        let mut body = create_body(&release, &[("100%", "0s")]);
        body["rate_limit_per_minute"] = json!(3);
        let id = started(&s, &fleet, body, "100%").await;
        let s = std::sync::Arc::new(s);
        let mut tasks = Vec::new();
        for mut d in ds {
            let s = s.clone();
            tasks.push(tokio::spawn(async move { d.assigned(&s).await.is_some() }));
        }
        let mut assigned = 0;
        for t in tasks {
            assigned += usize::from(t.await.unwrap());
        }
        assert_eq!(assigned, 3, "three admissions in the minute, not more");
        let shown = get(&s, &fleet, &format!("/api/v1/rollouts/{id}")).await;
        assert_eq!(shown["per_stage"][0]["admitted"], 3);
        let Ok(s) = std::sync::Arc::try_unwrap(s) else {
            panic!("server still shared")
        };
        s.stop().await;
    }
}

#[tokio::test]
async fn a_member_of_an_aborted_rollout_does_not_fall_back_to_an_older_one() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let v2 = insert_release(&s, BOARD, "2.0.0", &"22".repeat(32)).await;
        let v3 = insert_release(&s, BOARD, "3.0.0", &"33".repeat(32)).await;
        let mut d = ProtocolDevice::register(&s, BOARD, "SN-AB").await;
        started(&s, &fleet, create_body(&v2, &[("100%", "1h")]), "100%").await;
        assert_eq!(d.assigned_version(&s).await.as_deref(), Some("2.0.0"));
        post(
            &s,
            &fleet,
            &format!("/api/v1/devices/{}/tags", d.id),
            &json!({"tags": ["t"]}),
        )
        .await;
        let mut body = create_body(&v3, &[("100%", "1h")]);
        body["cohort"] = json!({"tags": ["t"]});
        let newer = started(&s, &fleet, body, "100%").await;
        assert_eq!(
            d.assigned_version(&s).await.as_deref(),
            Some("3.0.0"),
            "the newer rollout first"
        );
        s.rollout_command(&fleet, &newer, "abort").await;
        assert_eq!(d.assigned_version(&s).await, None, "it keeps what it runs");
        s.stop().await;
    }
}

#[tokio::test]
async fn an_expired_policy_is_refused() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let release = insert_release(&s, BOARD, "2.0.0", &"22".repeat(32)).await;
        let mut policy = s.sign_policy("rol_old", &release, "100%").await.message;
        policy.expires = common::unix_now() - 1;
        let key = s.keyset().rollout_keys().unwrap().remove(0);
        let expired = otter_keys::wire::Signed::sign(policy, &key).unwrap();
        let mut body = create_body(&release, &[("100%", "0s")]);
        body["policy"] = serde_json::to_value(expired).unwrap();
        let r = post(&s, &fleet, "/api/v1/rollouts", &body).await;
        let m = expect_error(r, 422, "unprocessable").await;
        assert!(m.contains("expired"), "{m}");
        s.stop().await;
    }
}

#[tokio::test]
async fn nothing_is_assigned_once_the_policy_expires_not_even_to_members() {
    for kind in databases() {
        let s = TestServer::start(kind).await;
        let fleet = s.token(&[Scope::Fleet]).await;
        let release = insert_release(&s, BOARD, "2.0.0", &"22".repeat(32)).await;
        let id = otter_server::db::new_id("rol");
        let mut policy = s.sign_policy(&id, &release, "100%").await.message;
        let expires = common::unix_now() + 2;
        policy.expires = expires;
        let key = s.keyset().rollout_keys().unwrap().remove(0);
        let mut body = create_body(&release, &[("100%", "1h")]);
        body["policy"] =
            serde_json::to_value(otter_keys::wire::Signed::sign(policy, &key).unwrap()).unwrap();
        let r = post(&s, &fleet, "/api/v1/rollouts", &body).await;
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        s.rollout_command(&fleet, &id, "start").await;
        let mut member = ProtocolDevice::register(&s, BOARD, "SN-EXP-1").await;
        assert_eq!(member.assigned_version(&s).await.as_deref(), Some("2.0.0"));

        // Past the expiry every device would refuse the policy (and report a failure), so
        // the server hands it to nobody: neither the member nor a newcomer.
        while common::unix_now() < expires {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert_eq!(member.assigned_version(&s).await, None);
        let mut newcomer = ProtocolDevice::register(&s, BOARD, "SN-EXP-2").await;
        assert_eq!(newcomer.assigned_version(&s).await, None);
        let view = get(&s, &fleet, &format!("/api/v1/rollouts/{id}")).await;
        assert_eq!(view["per_stage"][0]["admitted"], 1, "{view}");
        assert_eq!(view["waiting"]["kind"], "policy_expired", "{view}");
        s.stop().await;
    }
}
