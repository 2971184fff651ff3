//! `tungate drain`: asks a fleet gateway to drain (`POST /api/v1/drain`) and prints what it
//! did: it withdraws GIP (its health link goes down, the routing daemon withdraws the
//! route), waits until the router has moved the traffic, answers, and stops.
//!
//! Exit status 0 when the gateway drained (and stops), 1 when it refused (not in fleet
//! mode, draining already, the link would not go down) or cannot be reached, 2 for a bad
//! URL or token file.

use std::path::PathBuf;
use std::time::Duration;

use crate::client::{ApiClient, ClientError, error_message};
use crate::wire::Drain;

/// How long `tungate drain` waits for the answer: the server's longest drain (30 s) and
/// some.
pub const DRAIN_WAIT: Duration = Duration::from_secs(45);

/// Runs `tungate drain` against `url` with the token in `token_file` (a write: needed);
/// for an `https://` URL trusting `ca` (else the system's bundle). Returns the exit status.
pub fn run(url: &str, token_file: Option<&PathBuf>, ca: Option<&PathBuf>) -> i32 {
    let (client, runtime) = match crate::command::connect("drain", url, token_file, ca) {
        Ok(connected) => connected,
        Err(status) => return status,
    };
    eprintln!(
        "tungate drain: withdrawing GIP and waiting until the router has moved the traffic \
         (at most {DRAIN_WAIT:?})..."
    );
    match runtime.block_on(drain(&client)) {
        Ok(report) => {
            print!("{}", render(&report));
            0
        }
        Err(e) => {
            eprintln!("tungate drain: {e}");
            1
        }
    }
}

async fn drain(client: &ApiClient) -> Result<Drain, ClientError> {
    let path = "/api/v1/drain";
    let response = client
        .send_within(DRAIN_WAIT, hyper::Method::POST, path, None, Vec::new())
        .await?;
    if response.status != 200 {
        return Err(ClientError::Status {
            method: "POST".into(),
            path: path.into(),
            status: response.status,
            message: error_message(&response.body),
            hint: match response.status {
                401 => " (give the admin token: --token-file FILE)",
                _ => "",
            },
        });
    }
    crate::client::decode(path, &response.body)
}

/// The report, one fact a line.
pub fn render(report: &Drain) -> String {
    format!(
        "withdrawn after {} ms\n{} packets arrived after the withdrawal (forwarded)\n{} after \
         {} ms; the gateway stops now\n",
        report.withdrawn_after_ms,
        report.packets_after_withdrawal,
        if report.quiet {
            "traffic moved away"
        } else {
            "traffic still arriving at the drain limit"
        },
        report.drained_after_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_whether_the_traffic_moved() {
        let mut report = Drain {
            withdrawn_after_ms: 12,
            drained_after_ms: 1100,
            packets_after_withdrawal: 3,
            quiet: true,
        };
        assert_eq!(
            render(&report),
            "withdrawn after 12 ms\n3 packets arrived after the withdrawal (forwarded)\n\
             traffic moved away after 1100 ms; the gateway stops now\n"
        );
        report.quiet = false;
        assert!(render(&report).contains("traffic still arriving at the drain limit"));
    }
}
