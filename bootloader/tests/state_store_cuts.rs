//! Probes `sequential-storage` itself under our flash model, with the shape of its
//! issue 136: two torn initial stores, then a clean store that must be readable by a
//! freshly constructed map.

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use otter_boot::sim::{PowerCut, SimFlash};
use sequential_storage::cache::Cache;
use sequential_storage::map::{MapConfig, MapStorage};

type Flash = SimFlash<1, 128>;

fn block_on<T>(f: impl Future<Output = T>) -> T {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn store(flash: &mut Flash, value: [u8; 8]) -> bool {
    let mut map =
        MapStorage::<u8, _, _>::new(&mut *flash, MapConfig::new(0..256), Cache::new_uncached());
    let mut buf = [0u8; 32];
    block_on(map.store_item(&mut buf, &0u8, &&value[..])).is_ok()
}

fn fetch(flash: &mut Flash) -> Option<Vec<u8>> {
    let mut map =
        MapStorage::<u8, _, _>::new(&mut *flash, MapConfig::new(0..256), Cache::new_uncached());
    let mut buf = [0u8; 32];
    block_on(map.fetch_item::<&[u8]>(&mut buf, &0u8))
        .ok()
        .flatten()
        .map(|v| v.to_vec())
}

fn cuts(op: u64, len: u32) -> Vec<PowerCut> {
    let mut v = vec![PowerCut::Before { op }];
    v.extend((1..len).map(|words| PowerCut::Prefix { op, words }));
    v.extend((0..len).map(|at| PowerCut::Inside {
        op,
        at,
        seed: op ^ u64::from(at),
    }));
    v
}

/// Every cut point of one store on `flash` (from a dry run).
fn cut_points(flash: &Flash, value: [u8; 8]) -> Vec<PowerCut> {
    let mut dry = flash.clone();
    let start = dry.ops();
    assert!(store(&mut dry, value));
    dry.op_log()[start as usize..]
        .iter()
        .enumerate()
        .flat_map(|(i, op)| cuts(start + i as u64, op.len))
        .collect()
}

const VALUES: [[u8; 8]; 5] = [
    [0; 8],
    [0xff; 8],
    [1, 2, 3, 4, 5, 6, 7, 8],
    [0xaa, 0x55, 0xaa, 0x55, 0, 0xff, 0, 0xff],
    [0x80, 0, 0, 0, 0, 0, 0, 1],
];

#[test]
fn an_acknowledged_store_survives_two_torn_initial_stores() {
    let mut points = 0;
    let mut checked = 0;
    let mut lost = Vec::new();
    let fresh = Flash::new(2);
    for v1 in VALUES {
        for v2 in VALUES {
            for v3 in VALUES {
                if v3 == v2 {
                    continue;
                }
                for first in cut_points(&fresh, v1) {
                    let mut f1 = fresh.clone();
                    f1.set_power_cut(Some(first));
                    store(&mut f1, v1);
                    f1.restore_power();
                    fetch(&mut f1); // a reboot reads the state first, and a read may repair
                    for second in cut_points(&f1, v2) {
                        let mut f2 = f1.clone();
                        f2.set_power_cut(Some(second));
                        store(&mut f2, v2);
                        f2.restore_power();
                        fetch(&mut f2);
                        points += 1;
                        let acked = store(&mut f2, v3);
                        checked += usize::from(acked);
                        if acked && fetch(&mut f2) != Some(v3.to_vec()) {
                            lost.push(format!(
                                "{v1:?} {first:?} then {v2:?} {second:?}, stored {v3:?}: fetched {:?}",
                                fetch(&mut f2)
                            ));
                        }
                    }
                }
            }
        }
    }
    println!(
        "{points} double cut points, {checked} acknowledged stores checked, {} lost",
        lost.len()
    );
    assert_eq!(
        checked, points,
        "every final store must be acknowledged to be checked"
    );
    for l in lost.iter().take(5) {
        println!("LOST {l}");
    }
    assert!(
        lost.is_empty(),
        "sequential-storage lost {} acknowledged stores",
        lost.len()
    );
}
