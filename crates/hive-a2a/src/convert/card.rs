//! 0.3 ↔ 1.0 for the agent card: its skills, capabilities, security requirements and schemes,
//! OAuth flows.

use super::vec_into;
use crate::v1;
use crate::v03;
use std::collections::BTreeMap;

/// 1.0 interfaces announce this binding when a 0.3 card gave none.
const DEFAULT_TRANSPORT: &str = v1::BINDING_JSONRPC;

fn requirements_to_v1(
    security: Vec<BTreeMap<String, Vec<String>>>,
) -> Vec<v1::SecurityRequirement> {
    security
        .into_iter()
        .map(|schemes| v1::SecurityRequirement {
            schemes: schemes
                .into_iter()
                .map(|(name, list)| (name, v1::StringList { list }))
                .collect(),
        })
        .collect()
}

fn requirements_to_v03(
    requirements: Vec<v1::SecurityRequirement>,
) -> Vec<BTreeMap<String, Vec<String>>> {
    requirements
        .into_iter()
        .map(|requirement| {
            requirement
                .schemes
                .into_iter()
                .map(|(name, scopes)| (name, scopes.list))
                .collect()
        })
        .collect()
}

fn flow_to_v1(flow: v03::OAuthFlow) -> v1::OAuthFlow {
    v1::OAuthFlow {
        authorization_url: flow.authorization_url,
        device_authorization_url: String::new(),
        token_url: flow.token_url,
        refresh_url: flow.refresh_url,
        scopes: flow.scopes,
        pkce_required: false,
    }
}

fn flow_to_v03(flow: v1::OAuthFlow) -> v03::OAuthFlow {
    v03::OAuthFlow {
        authorization_url: flow.authorization_url,
        token_url: flow.token_url,
        refresh_url: flow.refresh_url,
        scopes: flow.scopes,
    }
}

impl From<v03::OAuthFlows> for v1::OAuthFlows {
    fn from(flows: v03::OAuthFlows) -> Self {
        if let Some(flow) = flows.authorization_code {
            Self::AuthorizationCode(flow_to_v1(flow))
        } else if let Some(flow) = flows.client_credentials {
            Self::ClientCredentials(flow_to_v1(flow))
        } else if let Some(flow) = flows.implicit {
            Self::Implicit(flow_to_v1(flow))
        } else if let Some(flow) = flows.password {
            Self::Password(flow_to_v1(flow))
        } else {
            Self::ClientCredentials(v1::OAuthFlow::default())
        }
    }
}

impl From<v1::OAuthFlows> for v03::OAuthFlows {
    fn from(flows: v1::OAuthFlows) -> Self {
        let mut v03_flows = Self::default();
        match flows {
            v1::OAuthFlows::AuthorizationCode(flow) => {
                v03_flows.authorization_code = Some(flow_to_v03(flow))
            }
            v1::OAuthFlows::ClientCredentials(flow) => {
                v03_flows.client_credentials = Some(flow_to_v03(flow))
            }
            v1::OAuthFlows::Implicit(flow) => v03_flows.implicit = Some(flow_to_v03(flow)),
            v1::OAuthFlows::Password(flow) => v03_flows.password = Some(flow_to_v03(flow)),
            v1::OAuthFlows::DeviceCode(_) => {}
        }
        v03_flows
    }
}

impl From<v03::SecurityScheme> for v1::SecurityScheme {
    fn from(scheme: v03::SecurityScheme) -> Self {
        match scheme {
            v03::SecurityScheme::ApiKey {
                description,
                location,
                name,
            } => Self::ApiKey(v1::ApiKeySecurityScheme {
                description,
                location,
                name,
            }),
            v03::SecurityScheme::Http {
                description,
                scheme,
                bearer_format,
            } => Self::HttpAuth(v1::HttpAuthSecurityScheme {
                description,
                scheme,
                bearer_format,
            }),
            v03::SecurityScheme::OAuth2 {
                description,
                flows,
                oauth2_metadata_url,
            } => Self::OAuth2(v1::OAuth2SecurityScheme {
                description,
                flows: (*flows).into(),
                oauth2_metadata_url,
            }),
            v03::SecurityScheme::OpenIdConnect {
                description,
                open_id_connect_url,
            } => Self::OpenIdConnect(v1::OpenIdConnectSecurityScheme {
                description,
                open_id_connect_url,
            }),
            v03::SecurityScheme::MutualTls { description } => {
                Self::MutualTls(v1::MutualTlsSecurityScheme { description })
            }
        }
    }
}

impl From<v1::SecurityScheme> for v03::SecurityScheme {
    fn from(scheme: v1::SecurityScheme) -> Self {
        match scheme {
            v1::SecurityScheme::ApiKey(s) => Self::ApiKey {
                description: s.description,
                location: s.location,
                name: s.name,
            },
            v1::SecurityScheme::HttpAuth(s) => Self::Http {
                description: s.description,
                scheme: s.scheme,
                bearer_format: s.bearer_format,
            },
            v1::SecurityScheme::OAuth2(s) => Self::OAuth2 {
                description: s.description,
                flows: Box::new(s.flows.into()),
                oauth2_metadata_url: s.oauth2_metadata_url,
            },
            v1::SecurityScheme::OpenIdConnect(s) => Self::OpenIdConnect {
                description: s.description,
                open_id_connect_url: s.open_id_connect_url,
            },
            v1::SecurityScheme::MutualTls(s) => Self::MutualTls {
                description: s.description,
            },
        }
    }
}

impl From<v03::AgentSkill> for v1::AgentSkill {
    fn from(skill: v03::AgentSkill) -> Self {
        Self {
            id: skill.id,
            name: skill.name,
            description: skill.description,
            tags: skill.tags,
            examples: skill.examples,
            input_modes: skill.input_modes,
            output_modes: skill.output_modes,
            security_requirements: requirements_to_v1(skill.security),
        }
    }
}

impl From<v1::AgentSkill> for v03::AgentSkill {
    fn from(skill: v1::AgentSkill) -> Self {
        Self {
            id: skill.id,
            name: skill.name,
            description: skill.description,
            tags: skill.tags,
            examples: skill.examples,
            input_modes: skill.input_modes,
            output_modes: skill.output_modes,
            security: requirements_to_v03(skill.security_requirements),
        }
    }
}

impl From<v03::AgentCard> for v1::AgentCard {
    /// The card's `url` becomes the first (preferred) interface, followed by the additional
    /// ones; all of them announce the card's `protocolVersion`.
    fn from(card: v03::AgentCard) -> Self {
        let version = card.protocol_version;
        let interface = |url: String, transport: String| v1::AgentInterface {
            url,
            protocol_binding: if transport.is_empty() {
                DEFAULT_TRANSPORT.to_owned()
            } else {
                transport
            },
            tenant: String::new(),
            protocol_version: version.clone(),
        };
        let mut interfaces = vec![interface(card.url, card.preferred_transport)];
        interfaces.extend(
            card.additional_interfaces
                .into_iter()
                .map(|additional| interface(additional.url, additional.transport)),
        );
        Self {
            name: card.name,
            description: card.description,
            supported_interfaces: interfaces,
            provider: card.provider,
            version: card.version,
            documentation_url: card.documentation_url,
            capabilities: v1::AgentCapabilities {
                streaming: card.capabilities.streaming,
                push_notifications: card.capabilities.push_notifications,
                extensions: card.capabilities.extensions,
                extended_agent_card: card.supports_authenticated_extended_card,
            },
            security_schemes: card
                .security_schemes
                .into_iter()
                .map(|(name, scheme)| (name, scheme.into()))
                .collect(),
            security_requirements: requirements_to_v1(card.security),
            default_input_modes: card.default_input_modes,
            default_output_modes: card.default_output_modes,
            skills: vec_into(card.skills),
            signatures: card.signatures,
            icon_url: card.icon_url,
        }
    }
}

impl From<v1::AgentCard> for v03::AgentCard {
    /// The first interface becomes the card's `url`, the others its additional interfaces. The
    /// protocol version is the first interface's when that is a 0.x version (a card that came
    /// from 0.3), else [`v03::PROTOCOL_VERSION`].
    fn from(card: v1::AgentCard) -> Self {
        let mut interfaces = card.supported_interfaces.into_iter();
        let first = interfaces.next().unwrap_or_default();
        let protocol_version = if first.protocol_version.starts_with("0.") {
            first.protocol_version
        } else {
            v03::PROTOCOL_VERSION.to_owned()
        };
        Self {
            protocol_version,
            name: card.name,
            description: card.description,
            url: first.url,
            preferred_transport: first.protocol_binding,
            additional_interfaces: interfaces
                .map(|interface| v03::AgentInterface {
                    url: interface.url,
                    transport: interface.protocol_binding,
                })
                .collect(),
            icon_url: card.icon_url,
            provider: card.provider,
            version: card.version,
            documentation_url: card.documentation_url,
            capabilities: v03::AgentCapabilities {
                streaming: card.capabilities.streaming,
                push_notifications: card.capabilities.push_notifications,
                state_transition_history: None,
                extensions: card.capabilities.extensions,
            },
            security_schemes: card
                .security_schemes
                .into_iter()
                .map(|(name, scheme)| (name, scheme.into()))
                .collect(),
            security: requirements_to_v03(card.security_requirements),
            default_input_modes: card.default_input_modes,
            default_output_modes: card.default_output_modes,
            skills: vec_into(card.skills),
            supports_authenticated_extended_card: card.capabilities.extended_agent_card,
            signatures: card.signatures,
        }
    }
}
