//! Conversions between A2A 0.3 ([`crate::v03`]) and 1.0 ([`crate::v1`]), as `From` in both
//! directions.
//!
//! 0.3 → 1.0 → 0.3 gives back the same value for every object here, with these exceptions
//! (1.0 has no place for them; the conversion to 1.0 drops them):
//! - `final` of a status-update event: 1.0 ends a stream by closing it. Going back, `final` is
//!   true when the state is terminal or interrupted (input or auth required), which is what 0.3
//!   servers send;
//! - `metadata` of `tasks/get`, `tasks/resubscribe` and push-config params;
//! - push-notification authentication with several `schemes`: 1.0 has one `scheme`, the first;
//! - the card's `capabilities.stateTransitionHistory`, and OAuth flows beyond the first (1.0
//!   has exactly one flow; an OAuth scheme without any flow becomes an empty client-credentials
//!   flow);
//! - an empty `preferredTransport` becomes `JSONRPC`, the 0.3 default.
//!
//! 1.0 → 0.3 cannot express (and drops): `tenant` everywhere, `mediaType` and `filename` of a
//! text part, `ROLE_UNSPECIFIED` (becomes `user`), the device-code OAuth flow and
//! `pkceRequired`, `nextPageToken` of the push-config list, and the paging fields of
//! `ListTasks` (0.3 has no such method). A data part whose value is not a JSON object becomes
//! `{"value": <the value>}`, since 0.3 data parts are objects.

use crate::v1;
use crate::v03;
use serde_json::Value;
use std::collections::BTreeMap;

/// 1.0 interfaces announce this binding when a 0.3 card gave none.
const DEFAULT_TRANSPORT: &str = v1::BINDING_JSONRPC;

fn vec_into<A, B: From<A>>(items: Vec<A>) -> Vec<B> {
    items.into_iter().map(B::from).collect()
}

// ----- states, roles, parts -----

impl From<v03::TaskState> for v1::TaskState {
    fn from(state: v03::TaskState) -> Self {
        match state {
            v03::TaskState::Submitted => Self::Submitted,
            v03::TaskState::Working => Self::Working,
            v03::TaskState::InputRequired => Self::InputRequired,
            v03::TaskState::Completed => Self::Completed,
            v03::TaskState::Canceled => Self::Canceled,
            v03::TaskState::Failed => Self::Failed,
            v03::TaskState::Rejected => Self::Rejected,
            v03::TaskState::AuthRequired => Self::AuthRequired,
            v03::TaskState::Unknown => Self::Unspecified,
        }
    }
}

impl From<v1::TaskState> for v03::TaskState {
    fn from(state: v1::TaskState) -> Self {
        match state {
            v1::TaskState::Submitted => Self::Submitted,
            v1::TaskState::Working => Self::Working,
            v1::TaskState::InputRequired => Self::InputRequired,
            v1::TaskState::Completed => Self::Completed,
            v1::TaskState::Canceled => Self::Canceled,
            v1::TaskState::Failed => Self::Failed,
            v1::TaskState::Rejected => Self::Rejected,
            v1::TaskState::AuthRequired => Self::AuthRequired,
            v1::TaskState::Unspecified => Self::Unknown,
        }
    }
}

impl From<v03::Role> for v1::Role {
    fn from(role: v03::Role) -> Self {
        match role {
            v03::Role::User => Self::User,
            v03::Role::Agent => Self::Agent,
        }
    }
}

impl From<v1::Role> for v03::Role {
    fn from(role: v1::Role) -> Self {
        match role {
            v1::Role::Agent => Self::Agent,
            v1::Role::User | v1::Role::Unspecified => Self::User,
        }
    }
}

impl From<v03::Part> for v1::Part {
    fn from(part: v03::Part) -> Self {
        match part {
            v03::Part::Text(text) => Self {
                metadata: text.metadata,
                ..Self::text(text.text)
            },
            v03::Part::File(file) => Self {
                content: match file.file.content {
                    v03::FileContent::Bytes(bytes) => v1::PartContent::Raw(bytes),
                    v03::FileContent::Uri(uri) => v1::PartContent::Url(uri),
                },
                metadata: file.metadata,
                filename: file.file.name,
                media_type: file.file.mime_type,
            },
            v03::Part::Data(data) => Self {
                metadata: data.metadata,
                ..Self::data(Value::Object(data.data.0))
            },
        }
    }
}

impl From<v1::Part> for v03::Part {
    fn from(part: v1::Part) -> Self {
        let file = |content| {
            Self::File(v03::FilePart {
                file: v03::File {
                    name: part.filename.clone(),
                    mime_type: part.media_type.clone(),
                    content,
                },
                metadata: part.metadata.clone(),
            })
        };
        match part.content {
            v1::PartContent::Text(ref text) => Self::Text(v03::TextPart {
                text: text.clone(),
                metadata: part.metadata.clone(),
            }),
            v1::PartContent::Raw(ref raw) => file(v03::FileContent::Bytes(raw.clone())),
            v1::PartContent::Url(ref url) => file(v03::FileContent::Uri(url.clone())),
            v1::PartContent::Data(ref data) => Self::Data(v03::DataPart {
                data: match data {
                    Value::Object(object) => object.clone().into(),
                    other => v1::Metadata::from_iter([("value".to_owned(), other.clone())]),
                },
                metadata: part.metadata.clone(),
            }),
        }
    }
}

// ----- messages, tasks, artifacts, events -----

impl From<v03::Message> for v1::Message {
    fn from(message: v03::Message) -> Self {
        Self {
            message_id: message.message_id,
            context_id: message.context_id,
            task_id: message.task_id,
            role: message.role.into(),
            parts: vec_into(message.parts),
            metadata: message.metadata,
            extensions: message.extensions,
            reference_task_ids: message.reference_task_ids,
        }
    }
}

impl From<v1::Message> for v03::Message {
    fn from(message: v1::Message) -> Self {
        Self {
            message_id: message.message_id,
            context_id: message.context_id,
            task_id: message.task_id,
            role: message.role.into(),
            parts: vec_into(message.parts),
            metadata: message.metadata,
            extensions: message.extensions,
            reference_task_ids: message.reference_task_ids,
            kind: v03::MessageKind,
        }
    }
}

impl From<v03::TaskStatus> for v1::TaskStatus {
    fn from(status: v03::TaskStatus) -> Self {
        Self {
            state: status.state.into(),
            message: status.message.map(|m| Box::new((*m).into())),
            timestamp: status.timestamp,
        }
    }
}

impl From<v1::TaskStatus> for v03::TaskStatus {
    fn from(status: v1::TaskStatus) -> Self {
        Self {
            state: status.state.into(),
            message: status.message.map(|m| Box::new((*m).into())),
            timestamp: status.timestamp,
        }
    }
}

impl From<v03::Artifact> for v1::Artifact {
    fn from(artifact: v03::Artifact) -> Self {
        Self {
            artifact_id: artifact.artifact_id,
            name: artifact.name,
            description: artifact.description,
            parts: vec_into(artifact.parts),
            metadata: artifact.metadata,
            extensions: artifact.extensions,
        }
    }
}

impl From<v1::Artifact> for v03::Artifact {
    fn from(artifact: v1::Artifact) -> Self {
        Self {
            artifact_id: artifact.artifact_id,
            name: artifact.name,
            description: artifact.description,
            parts: vec_into(artifact.parts),
            metadata: artifact.metadata,
            extensions: artifact.extensions,
        }
    }
}

impl From<v03::Task> for v1::Task {
    fn from(task: v03::Task) -> Self {
        Self {
            id: task.id,
            context_id: task.context_id,
            status: task.status.into(),
            artifacts: vec_into(task.artifacts),
            history: vec_into(task.history),
            metadata: task.metadata,
        }
    }
}

impl From<v1::Task> for v03::Task {
    fn from(task: v1::Task) -> Self {
        Self {
            id: task.id,
            context_id: task.context_id,
            status: task.status.into(),
            artifacts: vec_into(task.artifacts),
            history: vec_into(task.history),
            metadata: task.metadata,
            kind: v03::TaskKind,
        }
    }
}

impl From<v03::TaskStatusUpdateEvent> for v1::TaskStatusUpdateEvent {
    fn from(event: v03::TaskStatusUpdateEvent) -> Self {
        Self {
            task_id: event.task_id,
            context_id: event.context_id,
            status: event.status.into(),
            metadata: event.metadata,
        }
    }
}

impl From<v1::TaskStatusUpdateEvent> for v03::TaskStatusUpdateEvent {
    fn from(event: v1::TaskStatusUpdateEvent) -> Self {
        let state = event.status.state;
        Self {
            task_id: event.task_id,
            context_id: event.context_id,
            status: event.status.into(),
            is_final: state.is_terminal() || state.is_interrupted(),
            metadata: event.metadata,
            kind: v03::StatusUpdateKind,
        }
    }
}

impl From<v03::TaskArtifactUpdateEvent> for v1::TaskArtifactUpdateEvent {
    fn from(event: v03::TaskArtifactUpdateEvent) -> Self {
        Self {
            task_id: event.task_id,
            context_id: event.context_id,
            artifact: event.artifact.into(),
            append: event.append,
            last_chunk: event.last_chunk,
            metadata: event.metadata,
        }
    }
}

impl From<v1::TaskArtifactUpdateEvent> for v03::TaskArtifactUpdateEvent {
    fn from(event: v1::TaskArtifactUpdateEvent) -> Self {
        Self {
            task_id: event.task_id,
            context_id: event.context_id,
            artifact: event.artifact.into(),
            append: event.append,
            last_chunk: event.last_chunk,
            metadata: event.metadata,
            kind: v03::ArtifactUpdateKind,
        }
    }
}

impl From<v03::StreamEvent> for v1::StreamResponse {
    fn from(event: v03::StreamEvent) -> Self {
        match event {
            v03::StreamEvent::Task(task) => Self::Task(task.into()),
            v03::StreamEvent::Message(message) => Self::Message(message.into()),
            v03::StreamEvent::StatusUpdate(update) => Self::StatusUpdate(update.into()),
            v03::StreamEvent::ArtifactUpdate(update) => Self::ArtifactUpdate(update.into()),
        }
    }
}

impl From<v1::StreamResponse> for v03::StreamEvent {
    fn from(event: v1::StreamResponse) -> Self {
        match event {
            v1::StreamResponse::Task(task) => Self::Task(task.into()),
            v1::StreamResponse::Message(message) => Self::Message(message.into()),
            v1::StreamResponse::StatusUpdate(update) => Self::StatusUpdate(update.into()),
            v1::StreamResponse::ArtifactUpdate(update) => Self::ArtifactUpdate(update.into()),
        }
    }
}

impl From<v03::SendMessageResult> for v1::SendMessageResponse {
    fn from(result: v03::SendMessageResult) -> Self {
        match result {
            v03::SendMessageResult::Task(task) => Self::Task(task.into()),
            v03::SendMessageResult::Message(message) => Self::Message(message.into()),
        }
    }
}

impl From<v1::SendMessageResponse> for v03::SendMessageResult {
    fn from(response: v1::SendMessageResponse) -> Self {
        match response {
            v1::SendMessageResponse::Task(task) => Self::Task(task.into()),
            v1::SendMessageResponse::Message(message) => Self::Message(message.into()),
        }
    }
}

// ----- push notifications -----

impl From<v03::PushNotificationAuthenticationInfo> for v1::AuthenticationInfo {
    fn from(info: v03::PushNotificationAuthenticationInfo) -> Self {
        Self {
            scheme: info.schemes.into_iter().next().unwrap_or_default(),
            credentials: info.credentials,
        }
    }
}

impl From<v1::AuthenticationInfo> for v03::PushNotificationAuthenticationInfo {
    fn from(info: v1::AuthenticationInfo) -> Self {
        Self {
            schemes: if info.scheme.is_empty() {
                Vec::new()
            } else {
                vec![info.scheme]
            },
            credentials: info.credentials,
        }
    }
}

/// A 0.3 config (without its task) as a 1.0 config of `task_id`.
pub fn push_config_to_v1(
    config: v03::PushNotificationConfig,
    task_id: String,
) -> v1::TaskPushNotificationConfig {
    v1::TaskPushNotificationConfig {
        tenant: String::new(),
        id: config.id,
        task_id,
        url: config.url,
        token: config.token,
        authentication: config.authentication.map(Into::into),
    }
}

impl From<v1::TaskPushNotificationConfig> for v03::PushNotificationConfig {
    fn from(config: v1::TaskPushNotificationConfig) -> Self {
        Self {
            id: config.id,
            url: config.url,
            token: config.token,
            authentication: config.authentication.map(Into::into),
        }
    }
}

impl From<v03::TaskPushNotificationConfig> for v1::TaskPushNotificationConfig {
    fn from(config: v03::TaskPushNotificationConfig) -> Self {
        push_config_to_v1(config.push_notification_config, config.task_id)
    }
}

impl From<v1::TaskPushNotificationConfig> for v03::TaskPushNotificationConfig {
    fn from(config: v1::TaskPushNotificationConfig) -> Self {
        Self {
            task_id: config.task_id.clone(),
            push_notification_config: config.into(),
        }
    }
}

impl From<Vec<v03::TaskPushNotificationConfig>> for v1::ListTaskPushNotificationConfigsResponse {
    fn from(configs: Vec<v03::TaskPushNotificationConfig>) -> Self {
        Self {
            configs: vec_into(configs),
            next_page_token: String::new(),
        }
    }
}

impl From<v1::ListTaskPushNotificationConfigsResponse> for Vec<v03::TaskPushNotificationConfig> {
    fn from(response: v1::ListTaskPushNotificationConfigsResponse) -> Self {
        vec_into(response.configs)
    }
}

// ----- request params -----

impl From<v03::MessageSendParams> for v1::SendMessageRequest {
    fn from(params: v03::MessageSendParams) -> Self {
        let task_id = params.message.task_id.clone();
        Self {
            tenant: String::new(),
            message: params.message.into(),
            configuration: params
                .configuration
                .map(|configuration| v1::SendMessageConfiguration {
                    accepted_output_modes: configuration.accepted_output_modes,
                    task_push_notification_config: configuration
                        .push_notification_config
                        .map(|config| push_config_to_v1(config, task_id)),
                    history_length: configuration.history_length,
                    return_immediately: !configuration.blocking,
                }),
            metadata: params.metadata,
        }
    }
}

impl From<v1::SendMessageRequest> for v03::MessageSendParams {
    fn from(request: v1::SendMessageRequest) -> Self {
        Self {
            message: request.message.into(),
            configuration: request.configuration.map(|configuration| {
                v03::MessageSendConfiguration {
                    accepted_output_modes: configuration.accepted_output_modes,
                    history_length: configuration.history_length,
                    push_notification_config: configuration
                        .task_push_notification_config
                        .map(Into::into),
                    blocking: !configuration.return_immediately,
                }
            }),
            metadata: request.metadata,
        }
    }
}

impl From<v03::TaskQueryParams> for v1::GetTaskRequest {
    fn from(params: v03::TaskQueryParams) -> Self {
        Self {
            tenant: String::new(),
            id: params.id,
            history_length: params.history_length,
        }
    }
}

impl From<v1::GetTaskRequest> for v03::TaskQueryParams {
    fn from(request: v1::GetTaskRequest) -> Self {
        Self {
            id: request.id,
            history_length: request.history_length,
            metadata: None,
        }
    }
}

impl From<v03::TaskIdParams> for v1::CancelTaskRequest {
    fn from(params: v03::TaskIdParams) -> Self {
        Self {
            tenant: String::new(),
            id: params.id,
            metadata: params.metadata,
        }
    }
}

impl From<v1::CancelTaskRequest> for v03::TaskIdParams {
    fn from(request: v1::CancelTaskRequest) -> Self {
        Self {
            id: request.id,
            metadata: request.metadata,
        }
    }
}

impl From<v03::TaskIdParams> for v1::SubscribeToTaskRequest {
    fn from(params: v03::TaskIdParams) -> Self {
        Self {
            tenant: String::new(),
            id: params.id,
        }
    }
}

impl From<v1::SubscribeToTaskRequest> for v03::TaskIdParams {
    fn from(request: v1::SubscribeToTaskRequest) -> Self {
        Self {
            id: request.id,
            metadata: None,
        }
    }
}

impl From<v03::TaskIdParams> for v1::ListTaskPushNotificationConfigsRequest {
    fn from(params: v03::TaskIdParams) -> Self {
        Self {
            task_id: params.id,
            ..Self::default()
        }
    }
}

impl From<v1::ListTaskPushNotificationConfigsRequest> for v03::TaskIdParams {
    fn from(request: v1::ListTaskPushNotificationConfigsRequest) -> Self {
        Self {
            id: request.task_id,
            metadata: None,
        }
    }
}

impl From<v03::TaskPushNotificationConfigParams> for v1::TaskPushNotificationConfigRef {
    fn from(params: v03::TaskPushNotificationConfigParams) -> Self {
        Self {
            tenant: String::new(),
            task_id: params.id,
            id: params.push_notification_config_id,
        }
    }
}

impl From<v1::TaskPushNotificationConfigRef> for v03::TaskPushNotificationConfigParams {
    fn from(request: v1::TaskPushNotificationConfigRef) -> Self {
        Self {
            id: request.task_id,
            push_notification_config_id: request.id,
            metadata: None,
        }
    }
}

// ----- agent card -----

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
