//! The agent on a hostile network, through the fault proxy: a server that stalls after the
//! headers, trickles, or sends an endless JSON body fails the step in bounded time with an
//! error that says what happened; a target served past its signed length keeps the bytes
//! still needed; a `206` from the wrong offset is refused with nothing appended; resuming
//! never downloads a byte twice; a cut `timestamp.json` is fetched again within the cycle;
//! and the update finishes once the network heals.

mod common;

use std::time::Duration;

use common::proxy::{Fault, Proxy, Route};
use common::{Device, Fleet, firmware};
use otter_agent::cycle::{CycleError, Outcome};
use otter_agent::{AfterBoot, Agent};
use otter_boot::layout::Slot;
use otter_keys::keyset::{KeySet, Role};

const SIZE: usize = 256 * 1024;

/// Bounds a step that must fail on its own; a hang fails the test instead of blocking it.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(120), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not end by itself"))
}

/// A fleet with two unrelated releases (so only the full image applies), a proxy, and a
/// device behind it on 1.0.0 with short HTTP limits.
async fn setup(serial: &str) -> (Fleet, Proxy, Device, Vec<u8>) {
    let fleet = Fleet::start().await;
    let v1 = fleet.image("1.0.0", &firmware(SIZE, 11));
    let v2 = fleet.image("1.1.0", &firmware(SIZE, 12));
    fleet.publish(v1.clone()).await;
    fleet.publish(v2.clone()).await;
    let director = KeySet::open(&fleet.state.keys.dir)
        .unwrap()
        .role_key(Role::Director)
        .unwrap();
    let proxy = Proxy::start(&fleet.url, director).await;
    let mut device = fleet.device(serial, &proxy.url, &v1).await;
    let http = &mut device.config.http;
    http.idle_timeout = Duration::from_secs(1);
    http.request_timeout = Duration::from_secs(3);
    device.config.download.min_speed = 2000;
    device.config.download.min_speed_window = Duration::from_secs(1);
    (fleet, proxy, device, v2)
}

fn agent(device: &Device, attempts: u32) -> Agent {
    let mut config = device.config.clone();
    config.download.attempts = attempts;
    Agent::open(config)
        .unwrap()
        .with_reboot_hook(std::sync::Arc::new(|| Ok(true)))
}

async fn fails(agent: &Agent, stage: &str, needle: &str) -> CycleError {
    let err = bounded(needle, agent.check()).await.unwrap_err();
    assert_eq!(err.stage, stage, "{err}");
    assert!(
        err.to_string().contains(needle),
        "wanted {needle:?} in: {err}"
    );
    err
}

fn installed(device: &Device, outcome: &Outcome, image: &[u8]) {
    assert!(matches!(outcome, Outcome::Installed { .. }), "{outcome:?}");
    assert_eq!(&device.slot_bytes(Slot::B)[..image.len()], image);
}

fn partial_len(device: &Device) -> u64 {
    let dir = device.state_dir().join("downloads");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_trickling_or_endless_checkin_fails_in_bounded_time() {
    let (fleet, proxy, device, v2) = setup("SN-net-1").await;
    let agent = agent(&device, 1);
    proxy.inject(Route::CheckIn, Fault::Stall(0), 1);
    fails(&agent, "checkin", "no complete answer").await;
    proxy.inject(
        Route::CheckIn,
        Fault::Trickle(Duration::from_millis(300)),
        1,
    );
    fails(&agent, "checkin", "no complete answer").await;
    proxy.inject(Route::CheckIn, Fault::Endless, 1);
    fails(&agent, "checkin", "larger than the 1048576-byte limit").await;
    proxy.inject(Route::CheckIn, Fault::Status(503), 1);
    fails(&agent, "checkin", "server answered 503 Service Unavailable").await;
    // The network heals: the update goes through.
    let outcome = bounded("a healed cycle", agent.check()).await.unwrap();
    installed(&device, &outcome, &v2);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cut_or_stalled_timestamp_is_retried_within_the_cycle_then_fails_clearly() {
    let (fleet, proxy, device, v2) = setup("SN-net-2").await;
    let agent = agent(&device, 1);
    // Every try of timestamp.json is cut, then every one stalls: the cycle fails, saying so.
    proxy.inject(Route::Timestamp, Fault::Cut(10), 3);
    fails(&agent, "tuf", "connection cut after 10 bytes").await;
    proxy.inject(Route::Timestamp, Fault::Stall(0), 3);
    fails(&agent, "tuf", "no complete answer").await;
    // One cut is retried within the cycle, which then installs.
    proxy.inject(Route::Timestamp, Fault::Cut(10), 1);
    let before = proxy.log().len();
    let outcome = bounded("a cycle with one cut", agent.check())
        .await
        .unwrap();
    installed(&device, &outcome, &v2);
    let timestamps = proxy.log()[before..]
        .iter()
        .filter(|l| l.ends_with("timestamp.json"))
        .count();
    assert_eq!(timestamps, 2, "{:?}", proxy.log());
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_or_trickling_download_is_dropped_then_finishes_once_the_network_heals() {
    let (fleet, proxy, device, v2) = setup("SN-net-3").await;
    let agent = agent(&device, 1);
    proxy.inject(Route::Full, Fault::Stall(0), 1);
    fails(&agent, "download", "no complete answer").await;
    proxy.inject(Route::Full, Fault::Trickle(Duration::from_millis(20)), 1);
    fails(&agent, "download", "below the minimum of 2000 bytes/s").await;
    proxy.inject(Route::Full, Fault::Status(503), 1);
    fails(
        &agent,
        "download",
        "server answered 503 Service Unavailable",
    )
    .await;
    proxy.inject(Route::Full, Fault::Cut(0), 1);
    fails(&agent, "download", "connection cut after 0 bytes").await;
    let kept = partial_len(&device);
    assert!(kept > 0, "the trickled bytes are kept");
    let sent_before = proxy.target_bytes_sent();
    let outcome = bounded("a healed cycle", agent.check()).await.unwrap();
    installed(&device, &outcome, &v2);
    assert_eq!(
        proxy.target_bytes_sent() - sent_before,
        v2.len() as u64 - kept,
        "the resume fetches exactly the missing bytes"
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_chunk_past_the_signed_length_keeps_the_bytes_still_needed() {
    let (fleet, proxy, device, v2) = setup("SN-net-4").await;
    let agent = agent(&device, 5);
    // Cut 3 928 bytes short, then answer the resume with the tail plus junk in one chunk.
    proxy.inject(Route::Full, Fault::Cut(v2.len() - 3928), 1);
    proxy.inject(Route::Full, Fault::Extra(1000), 1);
    let outcome = bounded("the cycle", agent.check()).await.unwrap();
    installed(&device, &outcome, &v2);
    assert_eq!(proxy.target_bytes_sent(), v2.len() as u64);
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_range_from_the_wrong_offset_is_refused_and_nothing_appended() {
    let (fleet, proxy, device, v2) = setup("SN-net-5").await;
    let agent = agent(&device, 1);
    proxy.inject(Route::Full, Fault::Cut(100_000), 1);
    proxy.inject(Route::Full, Fault::ShiftRange(1000), 1);
    fails(
        &agent,
        "download",
        "asked for bytes 100000- but the server answered Content-Range \"bytes 101000-",
    )
    .await;
    assert_eq!(partial_len(&device), 100_000, "nothing appended");
    let outcome = bounded("a healed cycle", agent.check()).await.unwrap();
    installed(&device, &outcome, &v2);
    let ranges: Vec<String> = proxy
        .log()
        .into_iter()
        .filter(|l| l.contains("/tuf/targets/"))
        .collect();
    assert!(
        ranges.last().unwrap().ends_with("bytes=100000-"),
        "{ranges:?}"
    );
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn resuming_through_cuts_and_5xx_never_downloads_a_byte_twice() {
    let (fleet, proxy, device, v2) = setup("SN-net-6").await;
    let agent = agent(&device, 3);
    proxy.inject(Route::Full, Fault::Cut(50_000), 1);
    proxy.inject(Route::Full, Fault::Status(503), 2);
    proxy.inject(Route::Full, Fault::Cut(30_000), 1);
    proxy.inject(Route::Full, Fault::Cut(0), 2);
    let outcome = bounded("the cycle", agent.check()).await.unwrap();
    installed(&device, &outcome, &v2);
    assert_eq!(
        proxy.target_bytes_sent(),
        v2.len() as u64,
        "no byte sent twice"
    );
    drop(agent);
    let boot = device.reset();
    assert_eq!((boot.slot, boot.trial), (Slot::B, true));
    assert_eq!(
        device.agent().after_boot().await.unwrap(),
        AfterBoot::Confirmed("1.1.0".parse().unwrap())
    );
    fleet.stop().await;
}
