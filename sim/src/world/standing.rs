//! How each group stands in honest peers' eyes, each hour: the mean score honest observers
//! give the members they know of (have dealt with, or read of on a chain), and how well
//! those scores separate honest peers from its members (the AUC). Observers are a fixed sample of the honest peers present (the first of every
//! stride, at most [`OBSERVERS_MAX`]), so the measurement costs the same at any size and
//! never touches the trace.

use super::World;
use cryptosphere::kernel::strategy::Strategy;
use cryptosphere::kernel::PeerId;

/// Honest peers whose scores are read each hour.
pub const OBSERVERS_MAX: usize = 24;

/// One group's standing in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Standing {
    /// Mean score the observers give its members (0 when no observer saw one).
    pub reputation_mean: f64,
    /// Scores that mean is over (0: no observer saw a member).
    pub observed: u64,
    /// P(an honest peer scores above a member) + ½ P(tie), over the observers (mean of
    /// each observer's AUC); 0.5 when there is nothing to compare.
    pub auc: f64,
}

/// A peer that is not any kind of adversary.
pub fn honest(strategy: &Strategy) -> bool {
    !strategy.storage_freeloader
        && !strategy.bandwidth_freeloader
        && strategy.drop_fraction == 0.0
        && !strategy.liar
        && strategy.fork_at_us.is_none()
        && strategy.defect_at_us.is_none()
        && !strategy.stranger_only
        && strategy.praise_bytes == 0
        && !strategy.serves_only_accomplices
        && !strategy.omits_others_records
}

/// The AUC of `high` against `low`: P(h > l) + ½ P(h = l), by sorting. 0.5 if either is empty.
pub fn auc(high: &[f64], low: &[f64]) -> f64 {
    if high.is_empty() || low.is_empty() {
        return 0.5;
    }
    let mut low = low.to_vec();
    low.sort_by(f64::total_cmp);
    let mut wins = 0.0;
    for h in high {
        let below = low.partition_point(|l| l < h);
        let equal = low[below..].partition_point(|l| l <= h);
        wins += below as f64 + 0.5 * equal as f64;
    }
    wins / (high.len() as f64 * low.len() as f64)
}

impl World {
    /// Every group's standing now (indexed by group; the last entry is "all").
    pub(super) fn standing(&self) -> Vec<Standing> {
        let groups = self.groups.len();
        let is_honest: Vec<bool> = self
            .groups
            .iter()
            .map(|g| honest(&g.config.strategy))
            .collect();
        let candidates: Vec<u32> = (0..self.peers.len() as u32)
            .filter(|i| is_honest[usize::from(self.peers[*i as usize].group)] && self.alive(*i))
            .collect();
        let stride = candidates.len().div_ceil(OBSERVERS_MAX).max(1);
        let observers: Vec<u32> = candidates.iter().step_by(stride).copied().collect();
        let present: Vec<u32> = (0..self.peers.len() as u32)
            .filter(|i| !self.peers[*i as usize].departed)
            .collect();
        // The present peers in id order, to meet each observer's known peers (in id order).
        let mut by_id: Vec<(PeerId, u32)> = present
            .iter()
            .map(|i| (self.peers[*i as usize].peer.id(), *i))
            .collect();
        by_id.sort_unstable();
        let mut sums = vec![(0.0f64, 0u64); groups + 1];
        let mut aucs = vec![(0.0f64, 0u64); groups + 1];
        let mut seen: Vec<Option<f64>> = vec![None; self.peers.len()];
        for observer in &observers {
            let reputation = &self.peers[*observer as usize].peer.reputation;
            // Only peers it knows of: of the rest it can tell nothing, and says so (the
            // stranger's score).
            let mut targets = by_id.iter().peekable();
            reputation.each_known(|peer, score| {
                while targets.next_if(|(p, _)| *p < peer).is_some() {}
                if let Some((_, target)) = targets.next_if(|(p, _)| *p == peer) {
                    seen[*target as usize] = Some(score);
                }
            });
            // Taken in the order of the peers, as the sums below have always run.
            let mut by_group: Vec<Vec<f64>> = vec![Vec::new(); groups];
            for target in present.iter().filter(|t| *t != observer) {
                if let Some(score) = seen[*target as usize].take() {
                    by_group[usize::from(self.peers[*target as usize].group)].push(score);
                }
            }
            seen[*observer as usize] = None;
            let honest_scores: Vec<f64> = by_group
                .iter()
                .zip(&is_honest)
                .filter(|(_, h)| **h)
                .flat_map(|(s, _)| s.iter().copied())
                .collect();
            // The "all" row: honest peers against every adversary at once.
            let adversaries: Vec<f64> = by_group
                .iter()
                .zip(&is_honest)
                .filter(|(_, h)| !**h)
                .flat_map(|(s, _)| s.iter().copied())
                .collect();
            if !adversaries.is_empty() {
                aucs[groups].0 += auc(&honest_scores, &adversaries);
                aucs[groups].1 += 1;
            }
            for (g, scores) in by_group.iter().enumerate() {
                if scores.is_empty() {
                    continue;
                }
                for slot in [g, groups] {
                    sums[slot].0 += scores.iter().sum::<f64>();
                    sums[slot].1 += scores.len() as u64;
                }
                aucs[g].0 += auc(&honest_scores, scores);
                aucs[g].1 += 1;
            }
        }
        (0..=groups)
            .map(|g| Standing {
                reputation_mean: if sums[g].1 > 0 {
                    sums[g].0 / sums[g].1 as f64
                } else {
                    0.0
                },
                observed: sums[g].1,
                auc: if aucs[g].1 > 0 {
                    aucs[g].0 / aucs[g].1 as f64
                } else {
                    0.5
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::auc;

    #[test]
    fn auc_counts_wins_and_half_ties() {
        assert_eq!(auc(&[0.9, 0.8], &[0.1, 0.2]), 1.0);
        assert_eq!(auc(&[0.1], &[0.9]), 0.0);
        assert_eq!(auc(&[0.5], &[0.5]), 0.5);
        assert_eq!(auc(&[0.5, 0.9], &[0.5, 0.1]), (1.5 + 2.0) / 4.0);
        assert_eq!(auc(&[], &[0.5]), 0.5);
    }
}
