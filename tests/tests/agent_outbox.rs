//! Reports go through the agent's outbox: an event is kept in the state dir until the
//! server acknowledges it, survives a network cut and an agent restart, and arrives exactly
//! once (a retry whose first send was stored but whose answer was lost is answered as a
//! duplicate); a rollback is reported once per attempt, so three rollbacks are three events.

mod common;

use std::time::Duration;

use common::proxy::{Fault, Proxy, Route};
use common::{Fleet, firmware, next_release};
use otter_agent::AfterBoot;
use otter_agent::cycle::Outcome;
use otter_boot::layout::Slot;
use otter_keys::keyset::{KeySet, Role};

const SIZE: usize = 128 * 1024;

fn count(timeline: &[String], kind: &str) -> usize {
    timeline.iter().filter(|k| *k == kind).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn reports_survive_a_network_cut_and_a_restart_and_arrive_exactly_once() {
    let fleet = Fleet::start().await;
    let v1 = fleet.image("1.0.0", &firmware(SIZE, 21));
    let v2 = fleet.image("1.1.0", &next_release(&firmware(SIZE, 21), 22));
    fleet.publish(v1.clone()).await;
    fleet.publish(v2.clone()).await;
    let director = KeySet::open(&fleet.state.keys.dir)
        .unwrap()
        .role_key(Role::Director)
        .unwrap();
    let proxy = Proxy::start(&fleet.url, director).await;
    let mut device = fleet.device("SN-outbox-1", &proxy.url, &v1).await;
    device.config.http.request_timeout = Duration::from_secs(5);

    // The first report reaches the server but its answer is lost; every later one meets a
    // dead network. The update itself goes through.
    proxy.inject(Route::Reports, Fault::LoseAnswer, 1);
    proxy.inject(Route::Reports, Fault::Status(503), 1000);
    let agent = device.agent();
    assert!(matches!(
        agent.check().await.unwrap(),
        Outcome::Installed { .. }
    ));
    let pending = agent.outbox().pending().unwrap();
    assert!(pending.len() >= 2, "{pending:?}");
    let server_side = fleet.timeline(&device.id()).await;
    assert!(
        !server_side.contains(&"installed".to_owned()),
        "{server_side:?}"
    );
    drop(agent);

    // Power cycle: the trial boots, the network is back, a fresh agent confirms and sends
    // everything that waited, each event once.
    proxy.heal();
    let boot = device.reset();
    assert_eq!((boot.slot, boot.trial), (Slot::B, true));
    let agent = device.agent();
    assert_eq!(
        agent.after_boot().await.unwrap(),
        AfterBoot::Confirmed("1.1.0".parse().unwrap())
    );
    assert_eq!(agent.outbox().pending().unwrap(), []);
    let timeline = fleet.timeline(&device.id()).await;
    for kind in ["downloading", "installed", "booted", "healthy"] {
        assert_eq!(count(&timeline, kind), 1, "{kind} in {timeline:?}");
    }
    let at = |kind: &str| timeline.iter().position(|k| k == kind).unwrap();
    assert!(at("downloading") < at("installed") && at("installed") < at("booted"));
    assert!(at("booted") < at("healthy"), "{timeline:?}");
    fleet.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_rollbacks_give_three_rollback_events() {
    let fleet = Fleet::start().await;
    let v1 = fleet.image("1.0.0", &firmware(SIZE, 31));
    let v2 = fleet.image("1.1.0", &next_release(&firmware(SIZE, 31), 32));
    fleet.publish(v1.clone()).await;
    fleet.publish(v2.clone()).await;
    let mut device = fleet.device("SN-outbox-2", &fleet.url, &v1).await;
    device.config.health_checks = vec![otter_agent::config::HealthCheck {
        command: vec!["sh".into(), "-c".into(), "exit 3".into()],
        timeout: Duration::from_secs(10),
    }];
    assert!(matches!(
        device.agent().check().await.unwrap(),
        Outcome::Installed { .. }
    ));
    for attempt in 1..=3 {
        if attempt > 1 {
            // The operator asks for the same image again; its rollback erased slot B's
            // header, so it is written there again first.
            let agent = device.agent();
            let flash = agent.device();
            let mut sink = flash
                .slot_writer(&flash.writable(Slot::B).unwrap())
                .unwrap();
            sink.write(&v2).unwrap();
            sink.finish().unwrap();
            flash.sync().unwrap();
            otter_agent::sim::request_trial(flash, Slot::B).unwrap();
        }
        let mut boots = 0;
        while device.reset().slot == Slot::B {
            boots += 1;
            assert!(boots <= 10, "never rolled back");
            // Unhealthy the first time; from then on its image is on the rejected list.
            assert!(matches!(
                device.agent().after_boot().await.unwrap(),
                AfterBoot::Unhealthy(_) | AfterBoot::Rejected(_)
            ));
        }
        // Back on the confirmed image; each start reports the rollback at most once.
        for _ in 0..2 {
            assert_eq!(
                device.agent().after_boot().await.unwrap(),
                AfterBoot::Settled
            );
        }
        let timeline = fleet.timeline(&device.id()).await;
        assert_eq!(count(&timeline, "rolled_back"), attempt, "{timeline:?}");
    }
    fleet.stop().await;
}
