//! The resolver seam. The client asks a [`Resolve`] once per hop, checks every answer, and then
//! connects only to those addresses; the HTTP stack never does a lookup of its own. Tests script
//! the answers with [`ScriptedResolver`] (rebinding, mixed answers) instead of touching DNS.

use async_trait::async_trait;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{LookupIpStrategy, ResolveHosts};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

/// A lookup failed. The text is the resolver's, never the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ResolveError(pub String);

/// Turns a host name into addresses. Implementations return every address they got (both
/// families): the client refuses the name if any one of them is refused.
#[async_trait]
pub trait Resolve: Send + Sync {
    /// `name` is lowercase, IDNA-encoded and without a trailing dot.
    async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError>;
}

/// The production resolver: hickory with the system's name servers (`/etc/resolv.conf`).
pub struct HickoryResolver {
    inner: TokioResolver,
}

impl HickoryResolver {
    /// `timeout` bounds each query to a name server; the client bounds the whole lookup too.
    pub fn from_system(timeout: Duration) -> Result<Self, ResolveError> {
        let mut builder =
            TokioResolver::builder_tokio().map_err(|e| ResolveError(e.to_string()))?;
        let options = builder.options_mut();
        // Ask for both families so that every address the name has is checked, not only the
        // ones the first query happened to return.
        options.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        options.timeout = timeout;
        options.attempts = 1;
        options.use_hosts_file = ResolveHosts::Always;
        let inner = builder.build().map_err(|e| ResolveError(e.to_string()))?;
        Ok(Self { inner })
    }
}

#[async_trait]
impl Resolve for HickoryResolver {
    async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        // Absolute name: no search-domain expansion, so the name checked against the
        // allowlist is the name resolved.
        let absolute = format!("{name}.");
        let answer = self
            .inner
            .lookup_ip(absolute.as_str())
            .await
            .map_err(|e| ResolveError(e.to_string()))?;
        Ok(answer.iter().collect())
    }
}

/// Answers from a script, for tests: per name, a sequence of answers, one per lookup; the last
/// one repeats. Counts lookups so that a test can prove a name was resolved exactly once.
#[derive(Debug, Default)]
pub struct ScriptedResolver {
    state: Mutex<ScriptState>,
}

#[derive(Debug, Default)]
struct ScriptState {
    scripts: HashMap<String, Vec<Result<Vec<IpAddr>, ResolveError>>>,
    silent: Vec<String>,
    lookups: HashMap<String, usize>,
}

impl ScriptedResolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// `name` always answers `ips`.
    pub fn answer(&self, name: &str, ips: impl IntoIterator<Item = IpAddr>) -> &Self {
        self.script(name, vec![Ok(ips.into_iter().collect())])
    }

    /// `name` answers each entry of `answers` in turn, then keeps answering the last one:
    /// `[public, private]` is a rebinding attack.
    pub fn answer_in_turn(&self, name: &str, answers: Vec<Vec<IpAddr>>) -> &Self {
        self.script(name, answers.into_iter().map(Ok).collect())
    }

    /// `name` fails to resolve.
    pub fn fail(&self, name: &str) -> &Self {
        self.script(name, vec![Err(ResolveError("scripted failure".into()))])
    }

    /// `name` never answers (a name server that drops the query), to exercise the DNS timeout.
    pub fn never_answer(&self, name: &str) -> &Self {
        if let Ok(mut state) = self.state.lock() {
            state.silent.push(name.to_owned());
        }
        self
    }

    fn script(&self, name: &str, answers: Vec<Result<Vec<IpAddr>, ResolveError>>) -> &Self {
        if let Ok(mut state) = self.state.lock() {
            state.scripts.insert(name.to_owned(), answers);
        }
        self
    }

    /// How many times `name` was looked up.
    pub fn lookups(&self, name: &str) -> usize {
        self.state
            .lock()
            .map(|state| state.lookups.get(name).copied().unwrap_or(0))
            .unwrap_or(0)
    }
}

#[async_trait]
impl Resolve for ScriptedResolver {
    async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, ResolveError> {
        match self.answer_now(name)? {
            Some(answer) => answer,
            None => std::future::pending().await,
        }
    }
}

impl ScriptedResolver {
    /// `Ok(None)`: the name is scripted to stay silent.
    #[allow(clippy::type_complexity)]
    fn answer_now(
        &self,
        name: &str,
    ) -> Result<Option<Result<Vec<IpAddr>, ResolveError>>, ResolveError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| ResolveError("scripted resolver poisoned".into()))?;
        if state.silent.iter().any(|silent| silent == name) {
            *state.lookups.entry(name.to_owned()).or_insert(0) += 1;
            return Ok(None);
        }
        let count = {
            let count = state.lookups.entry(name.to_owned()).or_insert(0);
            *count += 1;
            *count
        };
        let answers = state
            .scripts
            .get(name)
            .ok_or_else(|| ResolveError(format!("no scripted answer for {name}")))?;
        let index = count.saturating_sub(1).min(answers.len().saturating_sub(1));
        Ok(Some(answers.get(index).cloned().unwrap_or_else(|| {
            Err(ResolveError(format!("no scripted answer for {name}")))
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn scripted_answers_in_turn_then_repeat_the_last() {
        let public: IpAddr = "93.184.215.14".parse().unwrap();
        let private: IpAddr = "10.0.0.1".parse().unwrap();
        let resolver = ScriptedResolver::new();
        resolver.answer_in_turn("rebind.test", vec![vec![public], vec![private]]);
        assert_eq!(resolver.lookup("rebind.test").await.unwrap(), vec![public]);
        assert_eq!(resolver.lookup("rebind.test").await.unwrap(), vec![private]);
        assert_eq!(resolver.lookup("rebind.test").await.unwrap(), vec![private]);
        assert_eq!(resolver.lookups("rebind.test"), 3);
        assert!(resolver.lookup("unknown.test").await.is_err());
    }
}
