//! The open connections: how many each address holds and how many there are in all. A new
//! connection over a cap takes the place of the oldest idle one in the same scope (an idle
//! connection has no request in flight: a half-sent request head, a keep-alive between
//! requests); with no idle one to close, it is refused.

use ipnet::IpNet;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    PerAddress,
    Total,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PerAddress => "per_address",
            Self::Total => "total",
        }
    }
}

/// One connection's state as its task and the registry see it.
#[derive(Debug)]
pub(crate) struct Activity {
    /// Requests (HTTP/2: streams) whose response has not been sent in full.
    in_flight: watch::Sender<usize>,
    /// Fires when a newer connection took this one's place.
    pub evicted: CancellationToken,
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: watch::Sender::new(0),
            evicted: CancellationToken::new(),
        }
    }

    pub fn is_idle(&self) -> bool {
        *self.in_flight.borrow() == 0
    }

    pub fn watch(&self) -> watch::Receiver<usize> {
        self.in_flight.subscribe()
    }

    /// Counts a request in flight until the returned guard is dropped (with the response body).
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.send_modify(|n| *n += 1);
        InFlight(Arc::clone(self))
    }
}

pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.send_modify(|n| *n = n.saturating_sub(1));
    }
}

#[derive(Debug)]
pub(crate) struct Registry {
    max_total: usize,
    max_per_address: usize,
    /// Trusted proxies: every client behind them shares their address, so they count only
    /// against the total.
    uncapped: Vec<IpNet>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// By id, so the oldest comes first.
    open: BTreeMap<u64, Entry>,
    per_address: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
struct Entry {
    address: IpAddr,
    activity: Arc<Activity>,
}

impl Inner {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.open.remove(&id)?;
        if let Some(count) = self.per_address.get_mut(&entry.address) {
            *count -= 1;
            if *count == 0 {
                self.per_address.remove(&entry.address);
            }
        }
        Some(entry)
    }

    /// Closes the oldest idle connection that `matches`; false when there is none.
    fn evict_idle(&mut self, matches: impl Fn(&Entry) -> bool) -> bool {
        let oldest = self
            .open
            .iter()
            .find(|(_, entry)| matches(entry) && entry.activity.is_idle())
            .map(|(id, _)| *id);
        match oldest.and_then(|id| self.remove(id)) {
            Some(entry) => {
                entry.activity.evicted.cancel();
                true
            }
            None => false,
        }
    }
}

impl Registry {
    pub fn new(max_total: usize, max_per_address: usize, uncapped: Vec<IpNet>) -> Self {
        Self {
            max_total,
            max_per_address,
            uncapped,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a new connection from `address`, closing an idle one to make room if a cap is
    /// reached.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Admission, Refusal> {
        let mut inner = self.lock();
        let capped = !self.uncapped.iter().any(|net| net.contains(&address));
        let held = inner.per_address.get(&address).copied().unwrap_or(0);
        if capped
            && held >= self.max_per_address
            && !inner.evict_idle(|entry| entry.address == address)
        {
            return Err(Refusal::PerAddress);
        }
        if inner.open.len() >= self.max_total && !inner.evict_idle(|_| true) {
            return Err(Refusal::Total);
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let activity = Arc::new(Activity::new());
        inner.open.insert(
            id,
            Entry {
                address,
                activity: Arc::clone(&activity),
            },
        );
        *inner.per_address.entry(address).or_default() += 1;
        metrics::gauge!("hive_http_connections_open").set(inner.open.len() as f64);
        Ok(Admission {
            registry: Arc::clone(self),
            id,
            activity,
        })
    }

    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }
}

/// A counted connection; dropping it gives its place back.
pub(crate) struct Admission {
    registry: Arc<Registry>,
    id: u64,
    pub activity: Arc<Activity>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        inner.remove(self.id);
        metrics::gauge!("hive_http_connections_open").set(inner.open.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_address_over_its_cap_replaces_its_oldest_idle_connection() {
        let registry = Arc::new(Registry::new(100, 2, Vec::new()));
        let first = registry.admit(ip("192.0.2.1")).unwrap();
        let second = registry.admit(ip("192.0.2.1")).unwrap();
        let _busy = first.activity.begin();
        let third = registry.admit(ip("192.0.2.1")).unwrap();
        assert!(second.activity.evicted.is_cancelled(), "the idle one goes");
        assert!(!first.activity.evicted.is_cancelled(), "never a busy one");
        assert_eq!(registry.open(), 2);
        let _also_busy = third.activity.begin();
        assert_eq!(
            registry.admit(ip("192.0.2.1")).err(),
            Some(Refusal::PerAddress)
        );
        // Another address is not affected.
        assert!(registry.admit(ip("192.0.2.2")).is_ok());
    }

    #[test]
    fn the_total_cap_replaces_the_oldest_idle_connection_of_anyone() {
        let registry = Arc::new(Registry::new(2, 10, Vec::new()));
        let a = registry.admit(ip("192.0.2.1")).unwrap();
        let b = registry.admit(ip("192.0.2.2")).unwrap();
        let _c = registry.admit(ip("192.0.2.3")).unwrap();
        assert!(a.activity.evicted.is_cancelled());
        let _busy_b = b.activity.begin();
        let _busy_c = _c.activity.begin();
        assert_eq!(registry.admit(ip("192.0.2.4")).err(), Some(Refusal::Total));
    }

    #[test]
    fn places_are_given_back_and_trusted_proxies_are_not_capped_per_address() {
        let proxy: IpNet = "10.0.0.0/8".parse().unwrap();
        let registry = Arc::new(Registry::new(100, 1, vec![proxy]));
        let held: Vec<_> = (0..5)
            .map(|_| {
                let admission = registry.admit(ip("10.1.2.3")).unwrap();
                let busy = admission.activity.begin();
                (admission, busy)
            })
            .collect();
        assert_eq!(registry.open(), 5);
        drop(held);
        assert_eq!(registry.open(), 0);
        let one = registry.admit(ip("192.0.2.9")).unwrap();
        let _busy = one.activity.begin();
        assert_eq!(
            registry.admit(ip("192.0.2.9")).err(),
            Some(Refusal::PerAddress)
        );
    }
}
