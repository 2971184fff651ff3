//! `POST /api/v1/drain`: a fleet gateway withdraws its announcement of GIP, waits until the
//! router has moved the traffic (no packet for a quiet period, bounded), answers with what
//! it saw, and stops. Without `--fleet` there is nothing to withdraw: 409.
//!
//! The announcer does the work ([`tungate_announce::AnnounceHandle::drain`]); this module
//! only runs it off the async runtime and maps its outcome.

use axum::Json;
use axum::extract::State;

use super::AdminState;
use crate::error::ApiError;
use tungate_announce::DrainError;
use tungate_api::wire::Drain;
use tungate_control::ErrorCode;

/// `POST /api/v1/drain`.
pub(crate) async fn drain(State(state): State<AdminState>) -> Result<Json<Drain>, ApiError> {
    let Some(handle) = state.0.announce.clone() else {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "this gateway is not in fleet mode (tungate run --fleet NAME): it announces \
             nothing to withdraw; stop it with SIGTERM",
        ));
    };
    let outcome = tokio::task::spawn_blocking(move || handle.drain())
        .await
        .map_err(|e| {
            ApiError(tungate_control::ControlError::internal(format!(
                "the drain failed: {e}"
            )))
        })?;
    match outcome {
        Ok(report) => Ok(Json(Drain {
            withdrawn_after_ms: report.withdrawn_after.as_millis() as u64,
            drained_after_ms: report.drained_after.as_millis() as u64,
            packets_after_withdrawal: report.packets_after_withdrawal,
            quiet: report.quiet,
        })),
        Err(e @ DrainError::AlreadyDraining) => {
            Err(ApiError::new(ErrorCode::Conflict, e.to_string()))
        }
        Err(e @ DrainError::NotWithdrawn(_)) => Err(ApiError(
            tungate_control::ControlError::internal(e.to_string()),
        )),
    }
}
