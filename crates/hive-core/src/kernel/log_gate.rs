//! Rate-limited logging for lines that would repeat on every call (a dependency outage, a
//! connection cap being hit): one line per kind at most every period, saying how many were
//! left out since the last one.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct LogGate {
    every: Duration,
    kinds: Mutex<HashMap<&'static str, Kind>>,
}

#[derive(Debug, Clone, Copy)]
struct Kind {
    logged_at: Instant,
    suppressed: u64,
}

impl LogGate {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// Whether a failure of `kind` happening `now` is logged: `Some(n)`, `n` failures of that
    /// kind having been left out since the last line; `None` to leave this one out.
    pub fn admit(&self, kind: &'static str, now: Instant) -> Option<u64> {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        match kinds.get_mut(kind) {
            Some(known) if now.saturating_duration_since(known.logged_at) < self.every => {
                known.suppressed += 1;
                None
            }
            Some(known) => {
                let suppressed = known.suppressed;
                *known = Kind {
                    logged_at: now,
                    suppressed: 0,
                };
                Some(suppressed)
            }
            None => {
                kinds.insert(
                    kind,
                    Kind {
                        logged_at: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_kind_and_period_with_the_count_left_out() {
        let gate = LogGate::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(gate.admit("put", t0), Some(0));
        for _ in 0..500 {
            assert_eq!(gate.admit("put", t0 + Duration::from_secs(3)), None);
        }
        // Another kind has its own period.
        assert_eq!(gate.admit("get", t0 + Duration::from_secs(3)), Some(0));
        assert_eq!(gate.admit("put", t0 + Duration::from_secs(10)), Some(500));
        assert_eq!(gate.admit("put", t0 + Duration::from_secs(11)), None);
        assert_eq!(gate.admit("put", t0 + Duration::from_secs(25)), Some(1));
    }
}
