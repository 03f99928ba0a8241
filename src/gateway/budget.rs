//! A task's budget under concurrency. A model request's cost is known only when its answer
//! has ended, so charging at the end and checking at the start lets any number of parallel
//! requests through on the same remainder. Instead each request reserves its worst case when
//! it starts; it is admitted only while that fits beside what is spent and reserved, or when
//! it would be the task's only request in flight (a task is never starved by a worst case
//! larger than its whole budget). When it ends, its reservation is replaced by its metered
//! cost (nothing, when it failed). So the metered cost ends at most one request's cost above
//! the budget, whatever the concurrency: only a request alone may cross it.

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Budget {
    pub max: Option<f64>,
    pub spent: f64,
    reserved: f64,
    in_flight: u32,
    /// Reported once, when `spent` first reaches `max`.
    reached: bool,
}

/// What a request that asks to reserve gets.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    Admit,
    /// Others in flight hold what is left: ask again when one ends.
    Wait,
    /// The budget is spent: (spent, max).
    Spent(f64, f64),
}

impl Budget {
    pub fn new(max: Option<f64>) -> Self {
        Self {
            max,
            ..Default::default()
        }
    }

    /// (spent, max) once the budget is spent.
    pub fn spent_out(&self) -> Option<(f64, f64)> {
        self.max.filter(|m| self.spent >= *m).map(|m| (self.spent, m))
    }

    /// Asks to start a request whose worst case is `worst` USD.
    pub fn reserve(&mut self, worst: f64) -> Decision {
        if let Some((spent, max)) = self.spent_out() {
            return Decision::Spent(spent, max);
        }
        let fits = self
            .max
            .is_none_or(|max| self.spent + self.reserved + worst <= max);
        if !fits && self.in_flight > 0 {
            return Decision::Wait;
        }
        self.in_flight += 1;
        self.reserved += worst;
        Decision::Admit
    }

    /// A request that reserved `worst` ended having cost `cost`. Says (spent, max) the first
    /// time the budget is reached.
    pub fn settle(&mut self, worst: f64, cost: f64) -> Option<(f64, f64)> {
        self.in_flight = self.in_flight.saturating_sub(1);
        // Sums of floats drift: with nothing in flight nothing is reserved.
        self.reserved = if self.in_flight == 0 {
            0.0
        } else {
            (self.reserved - worst).max(0.0)
        };
        self.spent += cost;
        let out = self.spent_out()?;
        (!std::mem::replace(&mut self.reached, true)).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_burst_against_two_requests_worth_is_held_to_it() {
        // The acceptance case: 10 at once, $0.0006 each, against $0.001.
        let mut b = Budget::new(Some(0.001));
        let admitted = (0..10).filter(|_| b.reserve(0.0006) == Decision::Admit).count();
        assert_eq!(admitted, 1, "the second would not fit beside the first");
        assert_eq!(b.reserve(0.0006), Decision::Wait);
        assert_eq!(b.settle(0.0006, 0.0006), None);
        // Alone again, with $0.0004 left: one more may go, and may cross.
        assert_eq!(b.reserve(0.0006), Decision::Admit);
        assert_eq!(b.reserve(0.0001), Decision::Wait, "no room beside it");
        assert_eq!(b.settle(0.0006, 0.0006), Some((0.0012, 0.001)));
        assert!(matches!(b.reserve(0.0001), Decision::Spent(..)));
        assert_eq!(b.settle(0.0, 0.0), None, "reported once");
    }

    #[test]
    fn small_requests_run_in_parallel_and_a_failure_gives_its_reservation_back() {
        let mut b = Budget::new(Some(1.0));
        for _ in 0..4 {
            assert_eq!(b.reserve(0.25), Decision::Admit);
        }
        assert_eq!(b.reserve(0.01), Decision::Wait);
        b.settle(0.25, 0.0); // failed upstream: nothing spent
        assert_eq!(b.reserve(0.25), Decision::Admit);
        assert_eq!(
            Budget::new(None).reserve(1e9),
            Decision::Admit,
            "no budget, no limit"
        );
    }

    #[test]
    fn a_worst_case_above_the_whole_budget_still_runs_alone() {
        let mut b = Budget::new(Some(0.01));
        assert_eq!(b.reserve(0.48), Decision::Admit);
        assert_eq!(b.reserve(0.48), Decision::Wait);
        assert_eq!(b.settle(0.48, 0.003), None);
        assert_eq!(b.reserve(0.48), Decision::Admit);
    }

    proptest! {
        /// Any interleaving of starts and ends, each request costing at most its worst case:
        /// the spend ends below the budget plus the dearest single request.
        #[test]
        fn the_overrun_is_at_most_one_request(
            steps in proptest::collection::vec((any::<bool>(), 1u32..100, 0u32..=100), 1..200),
            max in 1u32..500,
        ) {
            let max = max as f64 / 1000.0;
            let mut b = Budget::new(Some(max));
            let mut live: Vec<(f64, f64)> = Vec::new();
            let mut dearest: f64 = 0.0;
            for (start, worst, share) in steps {
                let worst = worst as f64 / 1000.0;
                if start || live.is_empty() {
                    if b.reserve(worst) == Decision::Admit {
                        live.push((worst, worst * share as f64 / 100.0));
                    }
                } else {
                    let (w, c) = live.remove(0);
                    dearest = dearest.max(c);
                    b.settle(w, c);
                }
            }
            for (w, c) in live.drain(..) {
                dearest = dearest.max(c);
                b.settle(w, c);
            }
            prop_assert!(b.spent <= max + dearest + 1e-12, "spent {} max {} dearest {}", b.spent, max, dearest);
        }
    }
}
