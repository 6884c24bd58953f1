//! 0.3 ↔ 1.0 for push-notification configs and for the params of each method.

use super::vec_into;
use crate::v1;
use crate::v03;

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
