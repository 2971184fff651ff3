//! The control plane's errors: a stable code (the API's `error.code`), a message that says
//! what, where and what to do, the field it concerns and every field problem found.
//!
//! Owns the translation of validation, plugin-build and store failures into that shape; it
//! never decides HTTP statuses (the admin API maps codes to statuses).

use serde::Serialize;

use tungate_config::{FieldError, Invalid};
use tungate_plugin_host::BuildError;
use tungate_plugin_host::instance::InstanceError;

/// The stable error codes of the admin API (`Error.error.code` in openapi.yaml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed request: bad path parameter, name mismatch.
    BadRequest,
    /// The body is not JSON of the expected shape (syntax, unknown field, wrong type).
    InvalidJson,
    /// Well-formed, but the configuration it leads to is refused.
    InvalidConfig,
    /// No such resource.
    NotFound,
    /// The change conflicts with the current state (e.g. deleting a bound plugin).
    Conflict,
    /// Missing or wrong bearer token.
    Unauthorized,
    /// The body is over the size limit.
    PayloadTooLarge,
    /// The body did not arrive within the admin API's body deadline.
    RequestTimeout,
    /// The body's content type is not the one the resource takes.
    UnsupportedMediaType,
    /// A plugin module was refused (ABI, imports, exports, size, compilation).
    PluginRejected,
    /// A plugin refused its configuration (or failed while configuring).
    PluginRefusedConfig,
    /// The method is not one the path serves.
    MethodNotAllowed,
    /// `If-Match` named a revision older than the one in force: nothing was changed.
    PreconditionFailed,
    /// Something failed on this host (storage, data path); the message says what.
    Internal,
    /// Too many of this kind of request at once (e.g. captures): retry once one ended.
    TooManyRequests,
    /// A service this gateway asks on the client's behalf (e.g. the fleet's Prometheus)
    /// failed or could not be reached; the message names it.
    BadGateway,
    /// A service the change needs is unreachable (fleet mode: etcd); nothing was changed.
    Unavailable,
}

impl ErrorCode {
    /// Every code, as listed in openapi.yaml.
    pub const ALL: [ErrorCode; 17] = [
        ErrorCode::BadRequest,
        ErrorCode::InvalidJson,
        ErrorCode::InvalidConfig,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::Unauthorized,
        ErrorCode::PayloadTooLarge,
        ErrorCode::RequestTimeout,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PluginRejected,
        ErrorCode::PluginRefusedConfig,
        ErrorCode::MethodNotAllowed,
        ErrorCode::PreconditionFailed,
        ErrorCode::Internal,
        ErrorCode::TooManyRequests,
        ErrorCode::BadGateway,
        ErrorCode::Unavailable,
    ];

    /// The code as it appears in error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::InvalidConfig => "invalid_config",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::PluginRejected => "plugin_rejected",
            ErrorCode::PluginRefusedConfig => "plugin_refused_config",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PreconditionFailed => "precondition_failed",
            ErrorCode::Internal => "internal",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::BadGateway => "bad_gateway",
            ErrorCode::Unavailable => "unavailable",
        }
    }
}

/// A refused or failed control action.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", field.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct ControlError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, and what to do.
    pub message: String,
    /// The field concerned (path in the whole document, e.g. `vips[0].plugins[1].config`).
    pub field: Option<String>,
    /// Every field problem, when there are several.
    pub details: Vec<FieldError>,
}

impl ControlError {
    /// An error with a code and a message about no particular field.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ControlError {
        ControlError {
            code,
            message: message.into(),
            field: None,
            details: Vec::new(),
        }
    }

    /// The same error about `field`.
    pub fn at(mut self, field: impl Into<String>) -> ControlError {
        self.field = Some(field.into());
        self
    }

    /// A configuration refused by validation or by the host checks: the first problem is
    /// the message and field, all of them are the details.
    pub fn invalid(invalid: Invalid) -> ControlError {
        let first = invalid.0.first().cloned().unwrap_or(FieldError {
            field: String::new(),
            message: "the configuration is invalid".into(),
        });
        let message = if invalid.0.len() > 1 {
            format!(
                "{} (and {} more problem(s), see details)",
                first.message,
                invalid.0.len() - 1
            )
        } else {
            first.message
        };
        ControlError {
            code: ErrorCode::InvalidConfig,
            message,
            field: (!first.field.is_empty()).then_some(first.field),
            details: invalid.0,
        }
    }

    /// A plugin generation that could not be built, with the binding's field named.
    pub(crate) fn from_build(error: BuildError) -> ControlError {
        let text = error.to_string();
        match error {
            BuildError::Invalid(invalid) => ControlError::invalid(invalid),
            BuildError::MissingPlugin { binding, .. } => {
                ControlError::new(ErrorCode::InvalidConfig, strip(&text, &binding))
                    .at(format!("{binding}.plugin"))
            }
            BuildError::Sha256Mismatch { binding, .. } => {
                ControlError::new(ErrorCode::InvalidConfig, strip(&text, &binding))
                    .at(format!("{binding}.sha256"))
            }
            BuildError::Refused { binding, .. } | BuildError::AbiCannotServeVip { binding, .. } => {
                ControlError::new(ErrorCode::PluginRejected, strip(&text, &binding))
                    .at(format!("{binding}.plugin"))
            }
            // The configuration as a whole is too large: no binding's field is named.
            BuildError::PoolTooSmall { .. } => ControlError::new(ErrorCode::InvalidConfig, text),
            BuildError::Instance {
                binding, error: e, ..
            } => {
                let (code, field) = match e {
                    InstanceError::Refused(_) | InstanceError::ConfigureFailed(_) => {
                        (ErrorCode::PluginRefusedConfig, format!("{binding}.config"))
                    }
                    InstanceError::ConfigTooLarge(_) => {
                        (ErrorCode::InvalidConfig, format!("{binding}.config"))
                    }
                    InstanceError::Instantiate(_)
                    | InstanceError::PoolFull(_)
                    | InstanceError::BadBatchArea { .. } => {
                        (ErrorCode::PluginRejected, format!("{binding}.plugin"))
                    }
                };
                ControlError::new(code, strip(&text, &binding)).at(field)
            }
        }
    }

    /// A failure on this host (storage, data path).
    pub fn internal(message: impl Into<String>) -> ControlError {
        ControlError::new(ErrorCode::Internal, message)
    }
}

/// The build errors start with the binding's path; the field carries it already.
fn strip(text: &str, binding: &str) -> String {
    text.strip_prefix(binding)
        .and_then(|t| t.strip_prefix(": "))
        .unwrap_or(text)
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_their_names() {
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_value(code).unwrap(),
                serde_json::Value::String(code.as_str().into())
            );
        }
    }

    #[test]
    fn invalid_names_the_first_field_and_keeps_all() {
        let e = ControlError::invalid(Invalid(vec![
            FieldError {
                field: "peers[0].address".into(),
                message: "bad".into(),
            },
            FieldError {
                field: "vips[1].address".into(),
                message: "worse".into(),
            },
        ]));
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        assert_eq!(e.field.as_deref(), Some("peers[0].address"));
        assert!(e.message.starts_with("bad (and 1 more"), "{}", e.message);
        assert_eq!(e.details.len(), 2);
        assert!(e.to_string().starts_with("peers[0].address: bad"));
    }

    #[test]
    fn build_errors_name_the_binding_field() {
        let e = ControlError::from_build(BuildError::MissingPlugin {
            binding: "vips[0].plugins[1]".into(),
            plugin: "nope".into(),
        });
        assert_eq!(e.field.as_deref(), Some("vips[0].plugins[1].plugin"));
        assert!(
            e.message.starts_with("no plugin named \"nope\""),
            "{}",
            e.message
        );
        let e = ControlError::from_build(BuildError::Instance {
            binding: "vips[2].plugins[0]".into(),
            plugin: "cidr-filter".into(),
            worker: 0,
            error: InstanceError::Refused("bad prefix".into()),
        });
        assert_eq!(e.code, ErrorCode::PluginRefusedConfig);
        assert_eq!(e.field.as_deref(), Some("vips[2].plugins[0].config"));
        assert_eq!(
            e.message, "plugin \"cidr-filter\": the plugin refused its configuration: bad prefix",
            "no internals (worker numbers) in what the operator reads"
        );
    }

    #[test]
    fn a_pool_too_small_is_the_configuration_s_fault_not_a_plugin_s() {
        let e = ControlError::from_build(BuildError::PoolTooSmall {
            needed: 4100,
            bindings: 4100,
            workers: 1,
            pool: 4096,
            in_use: String::new(),
        });
        assert_eq!(e.code, ErrorCode::InvalidConfig);
        assert_eq!(e.field, None, "no binding is blamed");
        assert!(
            e.message.contains("instance pool holds 4096"),
            "{}",
            e.message
        );
    }
}
