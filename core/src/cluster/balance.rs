//! Load balancing among the replicas eligible for a read: the [`Balancer`] trait and its two
//! implementations, [`RoundRobin`] and [`LeastInFlight`].

use std::sync::atomic::{AtomicUsize, Ordering};

/// A replica that may serve a read, as a [`Balancer`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// The host's position in [`DatabaseConfig::hosts`](crate::config::DatabaseConfig::hosts).
    pub host: usize,
    /// Sessions open on the host now.
    pub in_flight: usize,
    /// The host's configured weight (at least 1).
    pub weight: u32,
}

/// Chooses which eligible replica serves the next read. Implement it to balance otherwise and
/// pass it to [`Db::with_balancer`](crate::Db::with_balancer).
pub trait Balancer: Send + Sync + std::fmt::Debug {
    /// The index into `candidates` (never empty) of the replica to try first.
    fn pick(&self, candidates: &[Candidate]) -> usize;
}

/// Each eligible replica in turn.
#[derive(Debug, Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Balancer for RoundRobin {
    fn pick(&self, candidates: &[Candidate]) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % candidates.len().max(1)
    }
}

/// The eligible replica with the fewest open sessions per unit of weight (ties: the first).
#[derive(Debug, Default)]
pub struct LeastInFlight;

impl Balancer for LeastInFlight {
    fn pick(&self, candidates: &[Candidate]) -> usize {
        // Compare in_flight / weight without division: a.in_flight * b.weight vs. b's.
        let load = |c: &Candidate, other: &Candidate| c.in_flight as u64 * u64::from(other.weight);
        candidates
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| load(a, b).cmp(&load(b, a)))
            .map_or(0, |(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(host: usize, in_flight: usize, weight: u32) -> Candidate {
        Candidate {
            host,
            in_flight,
            weight,
        }
    }

    #[test]
    fn round_robin_takes_turns() {
        let rr = RoundRobin::default();
        let hosts = [c(1, 0, 1), c(2, 0, 1)];
        let picks: Vec<usize> = (0..4).map(|_| rr.pick(&hosts)).collect();
        assert_eq!(picks, [0, 1, 0, 1]);
    }

    #[test]
    fn least_in_flight_weighs_load() {
        let l = LeastInFlight;
        assert_eq!(l.pick(&[c(1, 3, 1), c(2, 1, 1)]), 1);
        // 3 sessions on weight 4 is less load than 1 on weight 1.
        assert_eq!(l.pick(&[c(1, 1, 1), c(2, 3, 4)]), 1);
        assert_eq!(l.pick(&[c(1, 0, 1), c(2, 0, 1)]), 0);
    }
}
