//! `hive egress check URL`: what the egress guard would do with a URL, for operators. It
//! resolves the name as a request would but connects to nothing.

use hive_core::kernel::config::Config;
use hive_egress::Decision;

#[derive(clap::Subcommand)]
pub enum EgressAction {
    /// Say whether Hive would reach URL, and why not: exit 0 when a request would be allowed,
    /// 1 when it would be refused or cannot be judged. Resolves the name; connects to nothing.
    Check {
        /// The URL, e.g. https://api.example.com/v1
        url: String,
    },
}

pub async fn egress(config: &Config, action: EgressAction) -> Result<(), String> {
    let EgressAction::Check { url } = action;
    let allowlist = hive_core::storage::stored_admin_allowlist(config).await;
    let client = hive_core::kernel::egress::checking_client(config, allowlist.list.clone())
        .map_err(|e| e.to_string())?;
    if let Some(note) = allowlist.note {
        eprintln!("note: {note}");
    }
    match client.check(&url).await {
        Decision::Allowed {
            origin,
            addresses,
            allowlisted,
        } => {
            let addresses: Vec<String> = addresses.iter().map(ToString::to_string).collect();
            println!(
                "allowed: {origin} -> {}{}",
                addresses.join(", "),
                if allowlisted { " (allowlisted)" } else { "" }
            );
            Ok(())
        }
        Decision::Refused(refusal) => Err(format!(
            "refused ({}): {} — {}",
            refusal.reason.as_str(),
            refusal.origin,
            refusal.detail
        )),
        Decision::Failed(error) => Err(format!("cannot be judged ({}): {error}", error.kind())),
    }
}
