//! The open connections of one listener: how many each address holds and how many there are in
//! all. A new connection over a cap takes the place of the oldest idle one in the same scope (an
//! idle connection has no request in flight: a half-sent request head, a keep-alive between
//! requests); with no idle one to close, it is refused.

use hive_core::kernel::config::ConnectionLimits;
use ipnet::IpNet;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Which listener a registry counts: the `listener` label of the connection metrics, so the
/// metrics listener's own connections never blur the API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Listener {
    Api,
    Metrics,
}

impl Listener {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Metrics => "metrics",
        }
    }
}

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
    /// Requests (HTTP/2: streams) whose response has not been sent in full. Receivers are told
    /// only when the connection turns busy or idle, not on every request.
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
        self.in_flight.send_if_modified(|n| {
            *n += 1;
            *n == 1
        });
        InFlight(Arc::clone(self))
    }
}

pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.send_if_modified(|n| {
            let was = *n;
            *n = was.saturating_sub(1);
            was == 1
        });
    }
}

#[derive(Debug)]
pub(crate) struct Registry {
    listener: Listener,
    limits: ConnectionLimits,
    /// Trusted proxies: every client behind them shares their address, so they count only
    /// against the total.
    uncapped: Vec<IpNet>,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    /// Every open connection by id, so the oldest comes first; one closing for a newcomer stays
    /// here until its task ends (it may still be finishing a request).
    open: BTreeMap<u64, Entry>,
    /// The connections of each address that hold a place under the caps (closing ones gave
    /// theirs away), oldest first.
    by_address: HashMap<IpAddr, BTreeSet<u64>>,
    /// How many of `open` are closing for a newcomer.
    closing: usize,
}

#[derive(Debug)]
struct Entry {
    address: IpAddr,
    activity: Arc<Activity>,
    closing: bool,
}

impl Inner {
    /// Connections that hold a place under the total cap.
    fn holding(&self) -> usize {
        self.open.len() - self.closing
    }

    fn remove(&mut self, id: u64) {
        let Some(entry) = self.open.remove(&id) else {
            return;
        };
        if entry.closing {
            self.closing -= 1;
        } else {
            self.release_place(entry.address, id);
        }
    }

    fn release_place(&mut self, address: IpAddr, id: u64) {
        if let Some(ids) = self.by_address.get_mut(&address) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_address.remove(&address);
            }
        }
    }

    /// Closes the oldest idle connection of `address`; false when it has none.
    fn evict_idle_of(&mut self, address: IpAddr) -> bool {
        let oldest = self.by_address.get(&address).and_then(|ids| {
            ids.iter()
                .copied()
                .find(|id| self.open.get(id).is_some_and(|e| e.activity.is_idle()))
        });
        oldest.is_some_and(|id| self.close_for_newcomer(id))
    }

    /// Closes the oldest idle connection of anyone; false when there is none.
    fn evict_idle(&mut self) -> bool {
        let oldest = self
            .open
            .iter()
            .find(|(_, entry)| !entry.closing && entry.activity.is_idle())
            .map(|(id, _)| *id);
        oldest.is_some_and(|id| self.close_for_newcomer(id))
    }

    /// Gives `id`'s place away and tells its task to close; it stays counted as open until the
    /// task ends.
    fn close_for_newcomer(&mut self, id: u64) -> bool {
        let Some(entry) = self.open.get_mut(&id) else {
            return false;
        };
        entry.closing = true;
        entry.activity.evicted.cancel();
        let address = entry.address;
        self.closing += 1;
        self.release_place(address, id);
        true
    }
}

impl Registry {
    pub fn new(listener: Listener, limits: ConnectionLimits, uncapped: Vec<IpNet>) -> Self {
        Self {
            listener,
            limits,
            uncapped,
            inner: Mutex::default(),
        }
    }

    pub fn listener(&self) -> Listener {
        self.listener
    }

    pub fn limits(&self) -> &ConnectionLimits {
        &self.limits
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
        let held = inner.by_address.get(&address).map_or(0, BTreeSet::len);
        if capped && held >= self.limits.max_connections_per_ip && !inner.evict_idle_of(address) {
            return Err(self.refuse(Refusal::PerAddress));
        }
        if inner.holding() >= self.limits.max_connections && !inner.evict_idle() {
            return Err(self.refuse(Refusal::Total));
        }
        let id = inner.next_id;
        inner.next_id += 1;
        let activity = Arc::new(Activity::new());
        inner.open.insert(
            id,
            Entry {
                address,
                activity: Arc::clone(&activity),
                closing: false,
            },
        );
        inner.by_address.entry(address).or_default().insert(id);
        self.set_open_gauge(&inner);
        Ok(Admission {
            registry: Arc::clone(self),
            id,
            activity,
        })
    }

    fn refuse(&self, refusal: Refusal) -> Refusal {
        metrics::counter!(
            "hive_http_connections_refused_total",
            "listener" => self.listener.as_str(),
            "cap" => refusal.as_str()
        )
        .increment(1);
        refusal
    }

    fn set_open_gauge(&self, inner: &Inner) {
        metrics::gauge!("hive_http_connections_open", "listener" => self.listener.as_str())
            .set(inner.open.len() as f64);
    }

    #[cfg(test)]
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }
}

/// A counted connection; dropping it (when its task ends) gives its place back.
pub(crate) struct Admission {
    registry: Arc<Registry>,
    id: u64,
    pub activity: Arc<Activity>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        inner.remove(self.id);
        self.registry.set_open_gauge(&inner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn registry(max_total: usize, max_per_address: usize, uncapped: Vec<IpNet>) -> Arc<Registry> {
        let limits = ConnectionLimits {
            max_connections: max_total,
            max_connections_per_ip: max_per_address,
            ..ConnectionLimits::default()
        };
        Arc::new(Registry::new(Listener::Api, limits, uncapped))
    }

    #[test]
    fn an_address_over_its_cap_replaces_its_oldest_idle_connection() {
        let registry = registry(100, 2, Vec::new());
        let other = registry.admit(ip("192.0.2.7")).unwrap();
        let first = registry.admit(ip("192.0.2.1")).unwrap();
        let second = registry.admit(ip("192.0.2.1")).unwrap();
        let _busy = first.activity.begin();
        let third = registry.admit(ip("192.0.2.1")).unwrap();
        assert!(second.activity.evicted.is_cancelled(), "the idle one goes");
        assert!(!first.activity.evicted.is_cancelled(), "never a busy one");
        assert!(
            !other.activity.evicted.is_cancelled(),
            "never another address's, older and idle as it is"
        );
        let _also_busy = third.activity.begin();
        assert_eq!(
            registry.admit(ip("192.0.2.1")).err(),
            Some(Refusal::PerAddress)
        );
        // Another address is not affected.
        assert!(registry.admit(ip("192.0.2.2")).is_ok());
    }

    #[test]
    fn a_connection_closing_for_a_newcomer_counts_until_it_ends() {
        let registry = registry(100, 1, Vec::new());
        let old = registry.admit(ip("192.0.2.1")).unwrap();
        let new = registry.admit(ip("192.0.2.1")).unwrap();
        assert!(old.activity.evicted.is_cancelled());
        // A request that came in before its task saw the eviction: it drains, still counted.
        let _draining = old.activity.begin();
        assert_eq!(registry.open(), 2);
        // Its place is given away all the same: the newcomer's, busy, is the only one held.
        let _busy = new.activity.begin();
        assert_eq!(
            registry.admit(ip("192.0.2.1")).err(),
            Some(Refusal::PerAddress)
        );
        drop(old);
        assert_eq!(registry.open(), 1);
        drop(new);
        assert_eq!(registry.open(), 0);
        assert!(registry.admit(ip("192.0.2.1")).is_ok());
    }

    #[test]
    fn the_total_cap_replaces_the_oldest_idle_connection_of_anyone() {
        let registry = registry(2, 10, Vec::new());
        let a = registry.admit(ip("192.0.2.1")).unwrap();
        let b = registry.admit(ip("192.0.2.2")).unwrap();
        let c = registry.admit(ip("192.0.2.3")).unwrap();
        assert!(a.activity.evicted.is_cancelled());
        let _busy_b = b.activity.begin();
        let busy_c = c.activity.begin();
        assert_eq!(registry.admit(ip("192.0.2.4")).err(), Some(Refusal::Total));
        // The one closing is not picked twice, and does not hold a place.
        drop(busy_c);
        let _d = registry.admit(ip("192.0.2.4")).unwrap();
        assert!(c.activity.evicted.is_cancelled());
        assert_eq!(registry.open(), 4, "a and c are still finishing");
    }

    #[test]
    fn places_are_given_back_and_trusted_proxies_are_not_capped_per_address() {
        let proxy: IpNet = "10.0.0.0/8".parse().unwrap();
        let registry = registry(100, 1, vec![proxy]);
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

    #[test]
    fn the_connection_task_is_woken_only_when_it_turns_busy_or_idle() {
        let registry = registry(100, 10, Vec::new());
        let admission = registry.admit(ip("192.0.2.1")).unwrap();
        let mut watcher = admission.activity.watch();
        let first = admission.activity.begin();
        assert!(watcher.has_changed().unwrap(), "idle to busy");
        watcher.borrow_and_update();
        let second = admission.activity.begin();
        drop(first);
        assert!(!watcher.has_changed().unwrap(), "still busy: no wake-up");
        drop(second);
        assert!(watcher.has_changed().unwrap(), "busy to idle");
        assert!(admission.activity.is_idle());
    }

    #[test]
    fn each_listener_has_gauges_and_counters_of_its_own() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let limits = ConnectionLimits {
            max_connections_per_ip: 3,
            ..ConnectionLimits::default()
        };
        let api = Arc::new(Registry::new(Listener::Api, limits.clone(), Vec::new()));
        let scrape = Arc::new(Registry::new(Listener::Metrics, limits, Vec::new()));
        let held = metrics::with_local_recorder(&recorder, || {
            let held: Vec<_> = (0..3)
                .map(|_| {
                    let admission = api.admit(ip("192.0.2.1")).unwrap();
                    let busy = admission.activity.begin();
                    (admission, busy)
                })
                .collect();
            assert!(api.admit(ip("192.0.2.1")).is_err());
            // The scraper's own connection, counted after the API's, changes none of them.
            let scraper = scrape.admit(ip("192.0.2.1")).unwrap();
            (held, scraper)
        });
        let rendered = handle.render();
        for line in [
            "hive_http_connections_open{listener=\"api\"} 3",
            "hive_http_connections_open{listener=\"metrics\"} 1",
        ] {
            assert!(rendered.lines().any(|l| l == line), "{line}:\n{rendered}");
        }
        let refused = rendered
            .lines()
            .filter(|l| l.starts_with("hive_http_connections_refused_total{"))
            .collect::<Vec<_>>();
        assert_eq!(refused.len(), 1, "{rendered}");
        assert!(refused[0].contains("listener=\"api\""), "{rendered}");
        assert!(refused[0].contains("cap=\"per_address\""), "{rendered}");
        drop(held);
    }
}
