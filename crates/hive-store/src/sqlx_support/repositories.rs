//! Every repository of a store, built once over one dialect's pools.

use super::agents::SqlAgents;
use super::billing::SqlBilling;
use super::challenges::SqlChallenges;
use super::conversations::SqlConversations;
use super::dialect::{Dialect, Pools};
use super::hosted::SqlHosted;
use super::identity::SqlIdentity;
use super::jobs::SqlJobRuns;
use super::mfa::SqlMfa;
use super::oidc::SqlOidcLinks;
use super::passkeys::SqlPasskeys;
use super::push_configs::SqlPushConfigs;
use super::secrets::SqlSecrets;
use super::settings::SqlSettings;
use super::tasks::SqlTasks;
use super::usage::SqlUsage;
use super::vault::SqlVaultKeys;
use super::workflows::SqlWorkflows;

/// The repositories a [`crate::Store`] hands out (see [`crate::store_repositories!`]).
pub struct SqlRepositories<D: Dialect> {
    pub jobs: SqlJobRuns<D>,
    pub tasks: SqlTasks<D>,
    pub identity: SqlIdentity<D>,
    pub vault_keys: SqlVaultKeys<D>,
    pub secrets: SqlSecrets<D>,
    pub settings: SqlSettings<D>,
    pub mfa: SqlMfa<D>,
    pub passkeys: SqlPasskeys<D>,
    pub challenges: SqlChallenges<D>,
    pub oidc_links: SqlOidcLinks<D>,
    pub agents: SqlAgents<D>,
    pub push_configs: SqlPushConfigs<D>,
    pub usage: SqlUsage<D>,
    pub conversations: SqlConversations<D>,
    pub hosted: SqlHosted<D>,
    pub workflows: SqlWorkflows<D>,
    pub billing: SqlBilling<D>,
}

impl<D: Dialect> SqlRepositories<D> {
    pub fn new(pools: &Pools<D::Db>) -> Self {
        Self {
            jobs: SqlJobRuns {
                pools: pools.clone(),
            },
            tasks: SqlTasks {
                pools: pools.clone(),
            },
            identity: SqlIdentity::new(pools),
            vault_keys: SqlVaultKeys {
                pools: pools.clone(),
            },
            secrets: SqlSecrets {
                pools: pools.clone(),
            },
            settings: SqlSettings {
                pools: pools.clone(),
            },
            mfa: SqlMfa {
                pools: pools.clone(),
            },
            passkeys: SqlPasskeys {
                pools: pools.clone(),
            },
            challenges: SqlChallenges {
                pools: pools.clone(),
            },
            oidc_links: SqlOidcLinks {
                pools: pools.clone(),
            },
            agents: SqlAgents {
                pools: pools.clone(),
            },
            push_configs: SqlPushConfigs {
                pools: pools.clone(),
            },
            usage: SqlUsage {
                pools: pools.clone(),
            },
            conversations: SqlConversations {
                pools: pools.clone(),
            },
            hosted: SqlHosted {
                pools: pools.clone(),
            },
            workflows: SqlWorkflows {
                pools: pools.clone(),
            },
            billing: SqlBilling {
                pools: pools.clone(),
            },
        }
    }
}
