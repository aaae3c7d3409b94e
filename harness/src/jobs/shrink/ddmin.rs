//! Delta debugging (Zeller and Hildebrandt, "Simplifying and Isolating Failure-Inducing
//! Input", 2002) over a schedule's steps, as a state machine with no clock and no runs: it
//! proposes a round of chunks to drop, and is told which one (if any) still reproduced. It
//! starts by dropping halves and ends at single steps; what it returns is 1-minimal — no single
//! step of it can be dropped — when it runs to the end.
//!
//! Only complements are tried (the schedule without one chunk), not the chunks alone: a loss
//! needs several faults together (a partition, then a kill), so a lone chunk almost never
//! reproduces and would cost a replay each. At two chunks the two are the same thing.

/// The reduction's state: the steps still kept (their ids, in order) and the number of chunks
/// they are cut into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ddmin {
    kept: Vec<usize>,
    chunks: usize,
}

impl Ddmin {
    pub fn new(kept: Vec<usize>) -> Ddmin {
        Ddmin { kept, chunks: 2 }
    }

    /// Starts at the finest cut: one item a chunk.
    pub fn singles(kept: Vec<usize>) -> Ddmin {
        let chunks = kept.len().max(2);
        Ddmin { kept, chunks }
    }

    #[cfg(test)]
    pub fn kept(&self) -> &[usize] {
        &self.kept
    }

    /// True when every single step has been tried and none could go (or one step is left:
    /// a schedule keeps at least one).
    pub fn done(&self) -> bool {
        self.kept.len() <= 1 || self.chunks > self.kept.len()
    }

    /// The chunks to try dropping this round, in order: the kept steps cut into `chunks`
    /// nearly equal runs. Empty when done.
    pub fn round(&self) -> Vec<Vec<usize>> {
        if self.done() {
            return Vec::new();
        }
        let (len, n) = (self.kept.len(), self.chunks);
        (0..n)
            .map(|i| self.kept[i * len / n..(i + 1) * len / n].to_vec())
            .filter(|chunk| !chunk.is_empty())
            .collect()
    }

    /// Dropping `chunk` still reproduced: keep the rest, with one chunk fewer (at least two).
    pub fn dropped(&mut self, chunk: &[usize]) {
        self.kept.retain(|id| !chunk.contains(id));
        self.chunks = (self.chunks - 1).max(2);
    }

    /// No chunk of this round could go: cut finer, up to one step a chunk; past that, done.
    pub fn none_dropped(&mut self) {
        self.chunks = if self.chunks >= self.kept.len() {
            self.kept.len() + 1
        } else {
            (self.chunks * 2).min(self.kept.len())
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the reduction against `reproduces` (taking the first chunk whose removal still
    /// reproduces, as the shrink does); returns what is kept and how many candidates it tried.
    fn reduce(n: usize, reproduces: impl Fn(&[usize]) -> bool) -> (Vec<usize>, usize) {
        let mut d = Ddmin::new((0..n).collect());
        let mut tried = 0;
        for _ in 0..10_000 {
            if d.done() {
                break;
            }
            let mut dropped = None;
            for chunk in d.round() {
                tried += 1;
                let rest: Vec<usize> = d
                    .kept()
                    .iter()
                    .copied()
                    .filter(|id| !chunk.contains(id))
                    .collect();
                if reproduces(&rest) {
                    dropped = Some(chunk);
                    break;
                }
            }
            match dropped {
                Some(chunk) => d.dropped(&chunk),
                None => d.none_dropped(),
            }
        }
        assert!(d.done(), "the reduction must end");
        (d.kept().to_vec(), tried)
    }

    #[test]
    fn finds_the_two_steps_a_loss_needs_among_forty() {
        let (kept, tried) = reduce(40, |s| s.contains(&11) && s.contains(&29));
        assert_eq!(kept, [11, 29]);
        assert!(tried < 60, "{tried} candidates");
    }

    #[test]
    fn a_result_is_one_minimal() {
        // Needs step 3, and either 7 or 8.
        let needs = |s: &[usize]| s.contains(&3) && (s.contains(&7) || s.contains(&8));
        let (kept, _) = reduce(12, needs);
        assert!(needs(&kept));
        for i in 0..kept.len() {
            let mut less = kept.clone();
            less.remove(i);
            assert!(
                !needs(&less),
                "{kept:?} without {} still reproduces",
                kept[i]
            );
        }
    }

    #[test]
    fn nothing_droppable_ends_after_trying_every_single_step() {
        let (kept, tried) = reduce(5, |s| s.len() == 5);
        assert_eq!(kept, [0, 1, 2, 3, 4]);
        // Halves, quarters (4 chunks), then singles (5).
        assert_eq!(tried, 2 + 4 + 5);
    }

    #[test]
    fn rounds_start_with_halves_and_end_with_single_steps() {
        let mut d = Ddmin::new(vec![10, 11, 12, 13, 14]);
        assert_eq!(d.round(), [vec![10, 11], vec![12, 13, 14]]);
        d.none_dropped();
        assert_eq!(d.round().len(), 4);
        d.none_dropped();
        assert_eq!(d.round(), [[10], [11], [12], [13], [14]]);
        d.dropped(&[12]);
        assert_eq!(d.kept(), [10, 11, 13, 14]);
        assert_eq!(d.round().len(), 4);
        d.none_dropped();
        assert!(d.done());
        assert!(d.round().is_empty());
        assert!(Ddmin::new(vec![1]).done());
        let singles = Ddmin::singles(vec![4, 5, 6]);
        assert_eq!(singles.round(), [[4], [5], [6]]);
    }
}
