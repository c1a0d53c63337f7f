//! The adversarial harness: a real agent on a simulated device updates from a real server
//! through a hostile mirror ([`common::hostile`]) or from a server whose online keys are
//! stolen. Each attack of the TUF list (spec 1.0 §1.5.2) and of the Uptane director list is
//! played against the device; every one must be refused with its reason reported to the
//! server, leave the running slot byte-identical and request no trial. Where the attack
//! stops, the network heals: the device must then install the genuine update, so no attack
//! leaves poisoned state behind. Each test prints a table of attack → outcome.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::hostile::{Exchange, Mirror, Reply};
use common::smuggle::{list_release, sha256, smuggle_release};
use common::{BOARD, Device, Fleet, firmware, next_release, sign_with};
use otter_agent::cycle::Outcome;
use otter_keys::keyset::{KeySet, Role};
use otter_keys::signer::{FileKey, Signer};
use otter_keys::wire::{Assignment, Signed};
use serde_json::{Value, json};

const SIZE: usize = 64 * 1024;

/// One attack's line in the printed table.
struct Row {
    attack: &'static str,
    outcome: String,
    failures: Vec<String>,
}

/// What a refusal must look like.
struct Expect {
    stage: &'static str,
    needle: &'static str,
    /// Whether the device must install the genuine update once the attack stops.
    heals: bool,
}

impl Expect {
    /// Refused at `stage` with a reason containing `needle`; healed, the update installs.
    fn heals(stage: &'static str, needle: &'static str) -> Self {
        Self {
            stage,
            needle,
            heals: true,
        }
    }

    /// Refused, and the attack persists (nothing to heal: the server itself is hostile).
    fn stays(stage: &'static str, needle: &'static str) -> Self {
        Self {
            stage,
            needle,
            heals: false,
        }
    }
}

fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}: {} attacks", rows.len());
    println!("| attack | outcome | verdict |");
    println!("|---|---|---|");
    for row in rows {
        let verdict = if row.failures.is_empty() {
            "refused, slot intact".to_owned()
        } else {
            format!("BROKEN: {}", row.failures.join("; "))
        };
        println!("| {} | {} | {verdict} |", row.attack, row.outcome);
    }
    let broken: Vec<&str> = rows
        .iter()
        .filter(|r| !r.failures.is_empty())
        .map(|r| r.attack)
        .collect();
    assert!(broken.is_empty(), "attacks not refused: {broken:?}");
}

/// Runs one cycle under attack and checks the refusal; then, if `heal` is given, lets the
/// network heal and checks that the genuine update installs.
async fn attempt(
    attack: &'static str,
    fleet: &Fleet,
    device: &Device,
    expect: Expect,
    heal: impl FnOnce(),
) -> Row {
    let running = device.agent().device().status().unwrap().running();
    let before = device.slot_bytes(running);
    let mut failures = Vec::new();
    let outcome = match device.agent().check().await {
        Ok(outcome) => {
            failures.push(format!("accepted: {outcome}"));
            format!("accepted: {outcome}")
        }
        Err(e) => {
            let reason = e.to_string();
            if std::env::var_os("ATTACKS_VERBOSE").is_some() {
                println!("{attack}: {reason}");
            }
            if e.stage != expect.stage || !reason.contains(expect.needle) {
                failures.push(format!(
                    "expected a refusal at {} containing {:?}",
                    expect.stage, expect.needle
                ));
            }
            format!(
                "refused at {}: {}",
                e.stage,
                one_line(&e.source.to_string())
            )
        }
    };
    if device.slot_bytes(running) != before {
        failures.push("running slot changed".into());
    }
    let status = device.agent().device().status().unwrap();
    if status.trial.is_some() {
        failures.push(format!("trial requested: {:?}", status.trial));
    }
    let last = fleet.timeline(&device.id()).await.pop();
    if last.as_deref() != Some("failed") {
        failures.push(format!("refusal not reported (last event {last:?})"));
    }
    heal();
    if expect.heals {
        match device.agent().check().await {
            Ok(Outcome::Installed { .. }) => {}
            other => failures.push(format!("after healing: {other:?}")),
        }
    }
    Row {
        attack,
        outcome,
        failures,
    }
}

fn one_line(text: &str) -> String {
    let flat = text.replace('\n', " ");
    match flat.char_indices().nth(110) {
        Some((at, _)) => format!("{}…", &flat[..at]),
        None => flat,
    }
}

fn is_tuf(x: &Exchange<'_>) -> bool {
    x.path.starts_with("/tuf/")
}

fn is_target(x: &Exchange<'_>) -> bool {
    x.path.starts_with("/tuf/targets/")
}

fn is_checkin(x: &Exchange<'_>) -> bool {
    x.path.ends_with("/checkin")
}

/// `doc` with its `signed` part re-signed by `signers` (canonical JSON, as TUF signs).
fn sign_doc(mut doc: Value, signers: &[&FileKey]) -> Bytes {
    let signed = canonical(&doc["signed"]);
    let signatures: Vec<Value> = signers
        .iter()
        .map(|k| {
            json!({
                "keyid": hex::encode(&*otter_keys::tuf::tuf_key_id(*k).unwrap()),
                "sig": hex::encode(k.sign(&signed).unwrap()),
            })
        })
        .collect();
    doc["signatures"] = Value::Array(signatures);
    Bytes::from(serde_json::to_vec(&doc).unwrap())
}

fn canonical(value: &Value) -> Vec<u8> {
    use serde::Serialize;
    let mut out = Vec::new();
    let mut ser =
        serde_json::Serializer::with_formatter(&mut out, olpc_cjson::CanonicalFormatter::new());
    value.serialize(&mut ser).unwrap();
    out
}

fn json_of(bytes: &Bytes) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

fn key(fleet: &Fleet, role: Role) -> FileKey {
    KeySet::open(&fleet.state.keys.dir)
        .unwrap()
        .role_key(role)
        .unwrap()
}

fn mallory(dir: &tempfile::TempDir, name: &str) -> FileKey {
    FileKey::generate_at(&dir.path().join(name)).unwrap()
}

/// Check-in answers rewritten by `f` and re-signed with the (stolen) director key.
fn redirect(
    director: FileKey,
    f: impl Fn(&mut Assignment) + Send + Sync + 'static,
) -> impl Fn(&Exchange<'_>) -> Option<Reply> + Send + Sync + 'static {
    move |x| {
        if !is_checkin(x) || x.status != 200 {
            return None;
        }
        let mut answer: Signed<Assignment> = serde_json::from_slice(x.body).unwrap();
        f(&mut answer.message);
        let resigned = Signed::sign(answer.message, &director).unwrap();
        Some(Reply::Body(
            200,
            Bytes::from(serde_json::to_vec(&resigned).unwrap()),
        ))
    }
}

/// The metadata an attacker recorded: timestamp, snapshot and targets as served now.
async fn record_repository(fleet: &Fleet, mirror: &Mirror) -> (Bytes, Bytes) {
    let get = |path: String| {
        let client = fleet.client.clone();
        let url = format!("{}{path}", mirror.url);
        async move { client.get(url).send().await.unwrap().bytes().await.unwrap() }
    };
    let timestamp = get("/tuf/metadata/timestamp.json".into()).await;
    let snapshot_version = json_of(&timestamp)["signed"]["meta"]["snapshot.json"]["version"]
        .as_u64()
        .unwrap();
    let snapshot = get(format!("/tuf/metadata/{snapshot_version}.snapshot.json")).await;
    let targets_version = json_of(&snapshot)["signed"]["meta"]["targets.json"]["version"]
        .as_u64()
        .unwrap();
    let targets = get(format!("/tuf/metadata/{targets_version}.targets.json")).await;
    (timestamp, targets)
}

/// A fleet with 1.0.0 published, the attacker's recording of its repository, then 1.1.0
/// (the genuine update every device should end up with).
async fn scene(fleet: &Fleet, mirror: &Mirror) -> (Vec<u8>, (Bytes, Bytes)) {
    let v1 = fleet.image("1.0.0", &firmware(SIZE, 1));
    fleet.publish(v1.clone()).await;
    let recorded = record_repository(fleet, mirror).await;
    let v2 = fleet.image("1.1.0", &next_release(&firmware(SIZE, 1), 2));
    fleet.publish(v2).await;
    (v1, recorded)
}

/// The TUF attack list, played by a malicious mirror that holds no keys.
#[tokio::test(flavor = "multi_thread")]
async fn a_hostile_mirror_cannot_install_freeze_or_roll_back() {
    let fleet = Fleet::start().await;
    let mirror = Mirror::start(&fleet.url).await;
    let (v1, (old_timestamp, old_targets)) = scene(&fleet, &mirror).await;
    let attackers = tempfile::tempdir().unwrap();
    let mut rows = Vec::new();
    let mut serial = 0;
    let mut device = async || {
        serial += 1;
        fleet
            .device(&format!("SN-M{serial}"), &mirror.url, &v1)
            .await
    };

    // Arbitrary installation: other bytes in place of every target (delta and image).
    let evil = sign_with(
        &mallory(&attackers, "m1"),
        BOARD,
        "1.1.0",
        1,
        &firmware(SIZE, 66),
    );
    mirror.tamper(move |x| {
        is_target(x).then(|| {
            let mut body = evil.clone();
            body.resize(x.body.len(), 0);
            Reply::Body(200, Bytes::from(body))
        })
    });
    let d = device().await;
    let expect = Expect::heals("download", "signed sha256");
    rows.push(
        attempt(
            "arbitrary installation (other bytes for the target)",
            &fleet,
            &d,
            expect,
            || mirror.honest(),
        )
        .await,
    );

    // Endless data: a timestamp.json that never ends, then targets that never end.
    mirror.tamper(|x| (x.path == "/tuf/metadata/timestamp.json").then_some(Reply::Endless));
    let d = device().await;
    let expect = Expect::heals("tuf", "larger than the");
    rows.push(
        attempt("endless data (metadata)", &fleet, &d, expect, || {
            mirror.honest()
        })
        .await,
    );
    mirror.tamper(|x| is_target(x).then_some(Reply::Endless));
    let d = device().await;
    let expect = Expect::heals("download", "signed sha256");
    rows.push(
        attempt("endless data (target)", &fleet, &d, expect, || {
            mirror.honest()
        })
        .await,
    );

    // Fast-forward without the key: a timestamp with a huge version, signature kept.
    mirror.tamper(|x| {
        (x.path == "/tuf/metadata/timestamp.json").then(|| {
            let mut doc = json_of(x.body);
            doc["signed"]["version"] = json!(1u64 << 40);
            Reply::Body(200, Bytes::from(serde_json::to_vec(&doc).unwrap()))
        })
    });
    let d = device().await;
    let expect = Expect::heals("tuf", "Signature threshold");
    rows.push(
        attempt("fast-forward (forged version)", &fleet, &d, expect, || {
            mirror.honest()
        })
        .await,
    );

    // Every metadata file re-signed by a key the root does not name.
    let outsider = mallory(&attackers, "m2");
    mirror.tamper(move |x| {
        let role = x.path.ends_with("timestamp.json")
            || x.path.ends_with(".snapshot.json")
            || x.path.ends_with(".targets.json");
        role.then(|| Reply::Body(200, sign_doc(json_of(x.body), &[&outsider])))
    });
    let d = device().await;
    let expect = Expect::heals("tuf", "Signature threshold");
    rows.push(
        attempt(
            "arbitrary installation (metadata signed by an outsider)",
            &fleet,
            &d,
            expect,
            || mirror.honest(),
        )
        .await,
    );

    // Malicious mirror preventing updates: garbage for every TUF file.
    mirror.tamper(|x| is_tuf(x).then(|| Reply::Body(200, Bytes::from_static(b"{\"signed\":{}}"))));
    let d = device().await;
    let expect = Expect::heals("tuf", "Failed to parse");
    rows.push(
        attempt(
            "malicious mirror preventing updates",
            &fleet,
            &d,
            expect,
            || mirror.honest(),
        )
        .await,
    );

    // Mix-and-match: today's snapshot with the targets metadata recorded before 1.1.0.
    let old = old_targets.clone();
    mirror.tamper(move |x| {
        (x.path.ends_with(".targets.json") && x.body != &old).then(|| Reply::Body(200, old.clone()))
    });
    let d = device().await;
    let expect = Expect::heals("tuf", "Hash mismatch");
    rows.push(
        attempt(
            "mix-and-match (old targets, new snapshot)",
            &fleet,
            &d,
            expect,
            || mirror.honest(),
        )
        .await,
    );

    // Wrong software installation: the (stolen) director key assigns another board's
    // release, which TUF does list.
    let foreign = fleet.image_for("other-board", "2.0.0", 1, &firmware(4096, 9));
    let release = fleet.publish(foreign.clone()).await;
    let name = release["target_name"].as_str().unwrap().to_owned();
    let (sha, len) = (sha256(&foreign), foreign.len() as u64);
    mirror.tamper(redirect(key(&fleet, Role::Director), move |a| {
        a.target = Some(otter_keys::wire::AssignedTarget {
            name: name.clone(),
            version: "2.0.0".parse().unwrap(),
            sha256: sha,
            length: len,
            policy: None,
        });
    }));
    let d = device().await;
    // No rollout key signed that: the device refuses before TUF is asked (with the rollout
    // key too, TUF's board check refuses it: agent_cycle.rs).
    let expect = Expect::heals("policy", "without a signed rollout policy");
    rows.push(
        attempt(
            "wrong software installation (another board's image)",
            &fleet,
            &d,
            expect,
            || mirror.honest(),
        )
        .await,
    );

    // Rollback: a device that trusts today's metadata is offered the timestamp recorded
    // before 1.1.0 once 1.2.0 is out.
    let d = device().await;
    assert!(matches!(
        d.agent().check().await.unwrap(),
        Outcome::Installed { .. }
    ));
    d.reset();
    d.agent().after_boot().await.unwrap();
    let v3 = fleet.image(
        "1.2.0",
        &next_release(&next_release(&firmware(SIZE, 1), 2), 3),
    );
    fleet.publish(v3).await;
    let old = old_timestamp.clone();
    mirror.tamper(move |x| {
        (x.path == "/tuf/metadata/timestamp.json").then(|| Reply::Body(200, old.clone()))
    });
    let expect = Expect::heals("tuf", "previously fetched version");
    rows.push(
        attempt(
            "rollback (replayed older timestamp)",
            &fleet,
            &d,
            expect,
            || mirror.honest(),
        )
        .await,
    );

    print_table("TUF attacks by a mirror without keys", &rows);
    fleet.stop().await;
}

/// Indefinite freeze: the mirror keeps serving a timestamp that has since expired.
#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_mirror_is_refused_once_its_metadata_expires() {
    let fleet =
        Fleet::start_with(|config, _| config.timestamp_expiry = Duration::from_secs(3)).await;
    let mirror = Mirror::start(&fleet.url).await;
    let (v1, (old_timestamp, _)) = scene(&fleet, &mirror).await;
    let d = fleet.device("SN-F1", &mirror.url, &v1).await;
    let expires = json_of(&old_timestamp)["signed"]["expires"]
        .as_str()
        .unwrap()
        .to_owned();
    let expires: jiff::Timestamp = expires.parse().unwrap();
    while jiff::Timestamp::now() <= expires {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    mirror.tamper(move |x| {
        (x.path == "/tuf/metadata/timestamp.json").then(|| Reply::Body(200, old_timestamp.clone()))
    });
    let expect = Expect::heals("tuf", "expired");
    let row = attempt(
        "indefinite freeze (expired timestamp replayed)",
        &fleet,
        &d,
        expect,
        || mirror.honest(),
    )
    .await;
    print_table("freeze", &[row]);
    fleet.stop().await;
}

/// Key compromise below the threshold: one of three root keys (threshold 2) is stolen and
/// signs a new root that hands the timestamp role to the attacker.
#[tokio::test(flavor = "multi_thread")]
async fn one_stolen_root_key_of_a_two_of_three_root_cannot_replace_the_root() {
    let fleet = Fleet::start_with(|config, dir| {
        let keys = dir.join("vendor-keys");
        let set = KeySet::create(&keys, 3, 2).unwrap();
        let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 365);
        otter_keys::tuf::write_initial_root(&set, expires).unwrap();
        config.keys_dir = Some(keys);
    })
    .await;
    let mirror = Mirror::start(&fleet.url).await;
    let (v1, _) = scene(&fleet, &mirror).await;
    let set = KeySet::open(&fleet.state.keys.dir).unwrap();
    let stolen = set.root_keys().unwrap().remove(0);
    let attackers = tempfile::tempdir().unwrap();
    let thief = mallory(&attackers, "timestamp");
    let root = std::fs::read(fleet.state.keys.dir.join("1.root.json")).unwrap();
    let mut doc: Value = serde_json::from_slice(&root).unwrap();
    let thief_id = hex::encode(&*otter_keys::tuf::tuf_key_id(&thief).unwrap());
    doc["signed"]["version"] = json!(2);
    doc["signed"]["keys"][&thief_id] =
        serde_json::to_value(otter_keys::tuf::tuf_key(&thief)).unwrap();
    doc["signed"]["roles"]["timestamp"]["keyids"] = json!([thief_id]);
    let forged = sign_doc(doc, &[&stolen, &thief]);
    mirror.tamper(move |x| {
        (x.path == "/tuf/metadata/2.root.json").then(|| Reply::Body(200, forged.clone()))
    });
    let d = fleet.device("SN-K1", &mirror.url, &v1).await;
    let expect = Expect::heals("tuf", "threshold of 2 not met");
    let row = attempt(
        "key compromise below the threshold (1 of 2 root keys)",
        &fleet,
        &d,
        expect,
        || mirror.honest(),
    )
    .await;
    print_table("root threshold", &[row]);
    fleet.stop().await;
}

/// The Uptane director attacks: replayed and foreign assignments, and a director that
/// disagrees with TUF.
#[tokio::test(flavor = "multi_thread")]
async fn replayed_foreign_or_disagreeing_assignments_are_refused() {
    let fleet = Fleet::start().await;
    let mirror = Mirror::start(&fleet.url).await;
    let (v1, _) = scene(&fleet, &mirror).await;
    let mut rows = Vec::new();
    let broken_tuf = |x: &Exchange<'_>| is_tuf(x).then(|| Reply::Body(404, Bytes::new()));

    // Replay: the answer to this device's earlier check-in, served again.
    let d = fleet.device("SN-D1", &mirror.url, &v1).await;
    mirror.tamper(broken_tuf);
    d.agent().check().await.unwrap_err();
    let path = format!("/api/v1/devices/{}/checkin", d.id());
    let recorded = mirror.seen(&path).pop().unwrap();
    mirror.tamper(move |x| is_checkin(x).then(|| Reply::Body(200, recorded.clone())));
    let expect = Expect::heals("assignment", "counter mismatch");
    rows.push(
        attempt("replayed assignment", &fleet, &d, expect, || {
            mirror.honest()
        })
        .await,
    );

    // Foreign: another device's fresh answer.
    let other = fleet.device("SN-D2", &mirror.url, &v1).await;
    mirror.tamper(broken_tuf);
    other.agent().check().await.unwrap_err();
    let path = format!("/api/v1/devices/{}/checkin", other.id());
    let recorded = mirror.seen(&path).pop().unwrap();
    let d = fleet.device("SN-D3", &mirror.url, &v1).await;
    mirror.tamper(move |x| is_checkin(x).then(|| Reply::Body(200, recorded.clone())));
    let expect = Expect::heals("assignment", "wrong device");
    rows.push(
        attempt(
            "foreign assignment (another device's)",
            &fleet,
            &d,
            expect,
            || mirror.honest(),
        )
        .await,
    );

    // An assignment signed by a key that is not the director's.
    let attackers = tempfile::tempdir().unwrap();
    mirror.tamper(redirect(mallory(&attackers, "director"), |_| {}));
    let d = fleet.device("SN-D4", &mirror.url, &v1).await;
    let expect = Expect::heals("assignment", "bad signature");
    rows.push(
        attempt(
            "assignment signed by an outsider",
            &fleet,
            &d,
            expect,
            || mirror.honest(),
        )
        .await,
    );

    // The stolen director key: expired, and disagreeing with TUF on the hash.
    mirror.tamper(redirect(key(&fleet, Role::Director), |a| a.expires = 1));
    let d = fleet.device("SN-D5", &mirror.url, &v1).await;
    let expect = Expect::heals("assignment", "expired");
    rows.push(attempt("expired assignment", &fleet, &d, expect, || mirror.honest()).await);
    mirror.tamper(redirect(key(&fleet, Role::Director), |a| {
        if let Some(t) = a.target.as_mut() {
            t.sha256[0] ^= 1;
        }
    }));
    let d = fleet.device("SN-D6", &mirror.url, &v1).await;
    // The signed rollout policy names the real image (with the rollout key too, TUF
    // refuses the disagreement: agent_cycle.rs).
    let expect = Expect::heals("policy", "names image");
    rows.push(
        attempt("director and TUF disagree", &fleet, &d, expect, || {
            mirror.honest()
        })
        .await,
    );

    print_table("director attacks", &rows);
    fleet.stop().await;
}

/// A server whose online keys (targets, snapshot, timestamp, director) are stolen lists
/// what it likes. Only the vendor's offline signature stands between it and the fleet.
#[tokio::test(flavor = "multi_thread")]
async fn stolen_online_keys_cannot_install_downgrade_or_cross_boards() {
    let mut rows = Vec::new();
    let attackers = tempfile::tempdir().unwrap();

    // An image the vendor never signed, listed and assigned as 1.2.0.
    let (fleet, d) = compromised_scene("SN-C1").await;
    let evil = sign_with(
        &mallory(&attackers, "firmware"),
        BOARD,
        "1.2.0",
        1,
        &firmware(SIZE, 10),
    );
    smuggle_release(&fleet, "1.2.0", &evil).await;
    let expect = Expect::stays("verify", "untrusted key");
    rows.push(
        attempt(
            "arbitrary installation (image the vendor never signed)",
            &fleet,
            &d,
            expect,
            || {},
        )
        .await,
    );
    fleet.stop().await;

    // Downgrade: the vendor-signed 1.0.0 listed and assigned as 9.9.9 to a 1.1.0 device.
    let (fleet, d) = compromised_scene("SN-C2").await;
    let old = fleet.image("1.0.0", &firmware(SIZE, 1));
    smuggle_release(&fleet, "9.9.9", &old).await;
    let expect = Expect::stays("verify", "signed header");
    rows.push(
        attempt(
            "downgrade (old image relisted as 9.9.9)",
            &fleet,
            &d,
            expect,
            || {},
        )
        .await,
    );
    fleet.stop().await;

    // Another board's vendor-signed image listed under this board's name.
    let (fleet, d) = compromised_scene("SN-C3").await;
    let other = fleet.image_for("other-board", "1.2.0", 1, &firmware(SIZE, 11));
    smuggle_release(&fleet, "1.2.0", &other).await;
    let expect = Expect::stays("verify", "another board");
    rows.push(
        attempt(
            "wrong board (other board's image under this board's name)",
            &fleet,
            &d,
            expect,
            || {},
        )
        .await,
    );
    fleet.stop().await;

    // Extraneous software: the repository lists a vendor-signed 5.0.0 that the director
    // does not assign; the device installs what it is assigned and never fetches 5.0.0.
    let fleet = Fleet::start().await;
    let v1 = fleet.image("1.0.0", &firmware(SIZE, 1));
    let v2 = fleet.image("1.1.0", &next_release(&firmware(SIZE, 1), 2));
    fleet.publish(v1.clone()).await;
    fleet.publish(v2.clone()).await;
    let extra = fleet.image("5.0.0", &firmware(SIZE, 12));
    list_release(&fleet, "5.0.0", &extra).await;
    let mirror = Mirror::start(&fleet.url).await;
    let d = fleet.device("SN-C4", &mirror.url, &v1).await;
    let outcome = d.agent().check().await;
    let fetched_extra: Vec<String> = mirror
        .log()
        .into_iter()
        .filter(|l| l.contains("/tuf/targets/") && l.contains("5.0.0"))
        .collect();
    let mut failures = Vec::new();
    match &outcome {
        Ok(Outcome::Installed { version, .. }) if version.to_string() == "1.1.0" => {}
        other => failures.push(format!("expected 1.1.0 installed, got {other:?}")),
    }
    if !fetched_extra.is_empty() {
        failures.push(format!("fetched the unassigned target: {fetched_extra:?}"));
    }
    rows.push(Row {
        attack: "extraneous dependencies (unassigned 5.0.0 listed)",
        outcome: match outcome {
            Ok(o) => format!("{o}; 5.0.0 never fetched"),
            Err(e) => format!("failed: {e}"),
        },
        failures,
    });
    fleet.stop().await;

    print_table("compromised server (online keys stolen)", &rows);
}

/// A fleet with 1.0.0 and 1.1.0 published, and a device running 1.1.0 (up to date).
async fn compromised_scene(serial: &str) -> (Fleet, Device) {
    let fleet = Fleet::start().await;
    let v1 = fleet.image("1.0.0", &firmware(SIZE, 1));
    let v2 = fleet.image("1.1.0", &next_release(&firmware(SIZE, 1), 2));
    fleet.publish(v1).await;
    fleet.publish(v2.clone()).await;
    let device = fleet.device(serial, &fleet.url, &v2).await;
    (fleet, device)
}
