//! A device's bucket in a rollout, and the cutoff that admits it now.
//!
//! The bucket function is otter-keys' (the device computes the same number to check its
//! signed ceiling). Stage k admits the buckets below its cutoff, and never more than the
//! signed ceiling allows. Cutoffs only rise from stage to stage and a rollout's stage only
//! moves forward, and an admitted device is recorded with its stage, so a device never
//! leaves a stage it was admitted to.

pub use otter_keys::rollout::{BUCKETS, BasisPoints, Bucket, bucket};

/// The cutoff in force: the stage's, capped by the signed ceiling.
pub fn effective_cutoff(stage_cutoff: BasisPoints, ceiling: BasisPoints) -> BasisPoints {
    stage_cutoff.min(ceiling)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 10 000 simulated devices: the share each cumulative stage admits is within two
    /// percentage points of its cutoff, for several rollouts.
    #[test]
    fn buckets_spread_evenly_over_the_fleet() {
        let stages = [100u16, 1000, 2500, 5000, 10_000];
        for rollout in ["rol_a", "rol_b", "rol_0123456789abcdef"] {
            let buckets: Vec<Bucket> = (0..10_000)
                .map(|i| bucket(&format!("dev_{i:05}"), rollout))
                .collect();
            for points in stages {
                let cutoff = BasisPoints::new(points).unwrap();
                let admitted = buckets.iter().filter(|b| cutoff.admits(**b)).count();
                let share = admitted as f64 / 100.0;
                let target = f64::from(points) / 100.0;
                assert!(
                    (share - target).abs() <= 2.0,
                    "{rollout}: cutoff {cutoff} admitted {share}%"
                );
            }
        }
    }

    #[test]
    fn a_bucket_is_stable_across_calls() {
        let first: Vec<Bucket> = (0..100)
            .map(|i| bucket(&format!("dev_{i}"), "rol_a"))
            .collect();
        let again: Vec<Bucket> = (0..100)
            .map(|i| bucket(&format!("dev_{i}"), "rol_a"))
            .collect();
        assert_eq!(first, again);
        let other: Vec<Bucket> = (0..100)
            .map(|i| bucket(&format!("dev_{i}"), "rol_b"))
            .collect();
        assert_ne!(first, other, "another rollout shuffles the fleet anew");
    }

    #[test]
    fn the_ceiling_caps_the_stage_cutoff() {
        let ten = BasisPoints::new(1000).unwrap();
        let fifty = BasisPoints::new(5000).unwrap();
        assert_eq!(effective_cutoff(fifty, ten), ten);
        assert_eq!(effective_cutoff(ten, fifty), ten);
    }
}
