//! The named policies, their defaults (at least as strict as the seeds') and the operator's
//! overrides (`HIVE_RATE_LIMITS`, `HIVE_RATE_LIMIT_FAIL_OPEN`).

use super::{OutageMode, Policy, Quota, Scope};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);
const HOUR: Duration = Duration::from_secs(3600);

const fn policy(
    name: &'static str,
    limit: u32,
    period: Duration,
    scope: Scope,
    auth_related: bool,
) -> Policy {
    Policy {
        name,
        quota: Quota { limit, period },
        scope,
        auth_related,
        outage: OutageMode::LocalFallback,
    }
}

/// The defaults. Login also has per-account rules (identity issue); these are per IP.
pub const DEFAULTS: [Policy; 12] = [
    policy(
        "login",
        5,
        Duration::from_secs(15 * 60),
        Scope::ClientIp,
        true,
    ),
    // Single sign-on: a start and a callback per sign-in, apart from password logins.
    policy(
        "sso",
        30,
        Duration::from_secs(15 * 60),
        Scope::ClientIp,
        true,
    ),
    policy("register", 3, HOUR, Scope::ClientIp, true),
    policy("setup", 30, HOUR, Scope::ClientIp, true),
    // Counted in the pipeline before authentication, so by address.
    policy("api", 120, MINUTE, Scope::ClientIp, false),
    policy("secrets", 30, MINUTE, Scope::Principal, false),
    policy("backup", 5, HOUR, Scope::Principal, false),
    policy("health", 60, MINUTE, Scope::ClientIp, false),
    policy("billing", 10, MINUTE, Scope::Principal, false),
    policy("a2a", 100, MINUTE, Scope::Principal, false),
    policy("public_a2a", 30, MINUTE, Scope::ClientIp, true),
    policy("federation", 100, MINUTE, Scope::ClientIp, true),
];

/// The policies in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policies {
    all: Vec<Policy>,
}

impl Default for Policies {
    fn default() -> Self {
        Self {
            all: DEFAULTS.to_vec(),
        }
    }
}

impl Policies {
    /// The policy of that name; every name used in code is one of [`DEFAULTS`].
    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.all.iter().find(|p| p.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Policy> {
        self.all.iter()
    }

    /// Applies `name=COUNT/PERIOD` overrides, comma-separated (`login=10/15m,api=600/1m`);
    /// periods are `<n>s`, `<n>m`, `<n>h` or `<n>d`.
    pub fn with_limits(mut self, spec: &str) -> Result<Self, String> {
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, quota) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not name=COUNT/PERIOD"))?;
            let policy = self.named_mut(name.trim())?;
            policy.quota = parse_quota(quota.trim())
                .ok_or_else(|| format!("{item:?}: the quota must be COUNT/PERIOD, e.g. 120/1m"))?;
        }
        Ok(self)
    }

    /// Lets the named policies through unmetered while Redis is unreachable. Authentication
    /// policies are refused: they always fall back to the per-node limiter.
    pub fn with_fail_open(mut self, names: &str) -> Result<Self, String> {
        for name in names.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let policy = self.named_mut(name)?;
            if policy.auth_related {
                return Err(format!(
                    "{name} protects authentication and can never fail open"
                ));
            }
            policy.outage = OutageMode::FailOpen;
        }
        Ok(self)
    }

    fn named_mut(&mut self, name: &str) -> Result<&mut Policy, String> {
        let known: Vec<&str> = self.all.iter().map(|p| p.name).collect();
        self.all
            .iter_mut()
            .find(|p| p.name == name)
            .ok_or_else(|| format!("unknown policy {name:?} (known: {})", known.join(", ")))
    }

    /// `name=COUNT/PERIOD` of every policy, for `hive config check`.
    pub fn describe(&self) -> String {
        self.all
            .iter()
            .map(|p| {
                let open = if p.outage == OutageMode::FailOpen {
                    " (fail open)"
                } else {
                    ""
                };
                format!(
                    "{}={}/{}{open}",
                    p.name,
                    p.quota.limit,
                    format_period(p.quota.period)
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn parse_quota(raw: &str) -> Option<Quota> {
    let (count, period) = raw.split_once('/')?;
    let limit: u32 = count
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=1_000_000).contains(n))?;
    let period = period.trim();
    let split = period.find(|c: char| !c.is_ascii_digit())?;
    let (amount, unit) = period.split_at(split);
    let amount: u64 = amount.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit {
        "s" => amount,
        "m" => amount.checked_mul(60)?,
        "h" => amount.checked_mul(3600)?,
        "d" => amount.checked_mul(86_400)?,
        _ => return None,
    };
    (seconds <= 7 * 86_400).then(|| Quota {
        limit,
        period: Duration::from_secs(seconds),
    })
}

fn format_period(period: Duration) -> String {
    let seconds = period.as_secs();
    match seconds {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_at_least_as_strict_as_the_seeds() {
        let policies = Policies::default();
        let login = policies.get("login").unwrap();
        assert_eq!(
            login.quota,
            Quota {
                limit: 5,
                period: Duration::from_secs(900)
            }
        );
        assert!(login.auth_related);
        assert_eq!(policies.get("public_a2a").unwrap().quota.limit, 30);
        assert!(
            policies
                .iter()
                .all(|p| p.outage == OutageMode::LocalFallback)
        );
    }

    #[test]
    fn overrides_parse_and_are_checked() {
        let policies = Policies::default()
            .with_limits("login=10/30m, api=600/1m")
            .unwrap()
            .with_fail_open("health")
            .unwrap();
        assert_eq!(
            policies.get("login").unwrap().quota.period,
            Duration::from_secs(1800)
        );
        assert_eq!(policies.get("api").unwrap().quota.limit, 600);
        assert_eq!(policies.get("health").unwrap().outage, OutageMode::FailOpen);
        assert!(policies.describe().contains("health=60/1m (fail open)"));
        for bad in [
            "nope=1/1m",
            "login",
            "login=0/1m",
            "login=5/15x",
            "login=5/",
            "api=5/30d",
        ] {
            assert!(Policies::default().with_limits(bad).is_err(), "{bad}");
        }
        let error = Policies::default().with_fail_open("login").unwrap_err();
        assert!(error.contains("never fail open"), "{error}");
    }
}
