//! `tungate capture`: asks a running appliance for a capture of dropped packets
//! (`GET /api/v1/capture`) and writes the pcapng stream to a file (or standard output) as
//! it arrives, so the file is readable while the capture runs.
//!
//! It only reads: the appliance checks every parameter and says what is wrong. Exit status 0
//! when the capture ended normally, 1 when it cannot be reached, refuses (bad parameter,
//! token, too many captures) or the file cannot be written, 2 for a bad URL or token file.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::client::ApiClient;
use crate::token::read_token_file;

/// Extra time the body may take beyond the capture's own `seconds` (the server ends it).
const BODY_MARGIN: Duration = Duration::from_secs(30);

/// What to capture, as `tungate capture` was given it.
#[derive(Debug, Clone, Default)]
pub struct CaptureRequest {
    /// Only packets attributed to this VIP.
    pub vip: Option<String>,
    /// Only drops for this reason.
    pub reason: Option<String>,
    /// Only drops by this plugin.
    pub plugin: Option<String>,
    /// Packets to capture (the server's default when absent).
    pub count: Option<u32>,
    /// Longest run in seconds (the server's default when absent).
    pub seconds: Option<u32>,
    /// Also forwarded packets.
    pub passed: bool,
}

/// Percent-encodes a query value (everything but the unreserved characters).
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

impl CaptureRequest {
    /// The request path with its query string.
    pub fn path(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if let Some(v) = &self.vip {
            pairs.push(("vip", encode(v)));
        }
        if let Some(r) = &self.reason {
            pairs.push(("reason", encode(r)));
        }
        if let Some(p) = &self.plugin {
            pairs.push(("plugin", encode(p)));
        }
        if let Some(c) = self.count {
            pairs.push(("count", c.to_string()));
        }
        if let Some(s) = self.seconds {
            pairs.push(("seconds", s.to_string()));
        }
        if self.passed {
            pairs.push(("passed", "true".into()));
        }
        let query: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if query.is_empty() {
            "/api/v1/capture".into()
        } else {
            format!("/api/v1/capture?{}", query.join("&"))
        }
    }
}

/// Runs `tungate capture`; `output` is a file path or `-` for standard output. Returns the
/// exit status.
pub fn run(
    url: &str,
    token_file: Option<&PathBuf>,
    request: &CaptureRequest,
    output: &Path,
) -> i32 {
    let token = match token_file.map(|p| read_token_file(p)).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("tungate capture: {e}");
            return tungate_config::EXIT_BAD_CONFIG;
        }
    };
    let client = match ApiClient::new(url, token) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tungate capture: {e}");
            return tungate_config::EXIT_BAD_CONFIG;
        }
    };
    let to_stdout = output == Path::new("-");
    let mut sink: Box<dyn std::io::Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        match std::fs::File::create(output) {
            Ok(f) => Box::new(f),
            Err(e) => {
                eprintln!("tungate capture: cannot create {}: {e}", output.display());
                return 1;
            }
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tungate capture: cannot start a runtime: {e}");
            return 1;
        }
    };
    // The server ends the capture after its `seconds` (at most 300).
    let seconds = u64::from(request.seconds.unwrap_or(300));
    let deadline = Duration::from_secs(seconds) + BODY_MARGIN;
    let path = request.path();
    let mut started = || {
        eprintln!(
            "tungate capture: capturing from {} into {}",
            client.url(),
            if to_stdout {
                "standard output".into()
            } else {
                output.display().to_string()
            }
        );
    };
    let outcome = runtime.block_on(client.get_streaming(&path, deadline, &mut sink, &mut started));
    let _ = sink.flush();
    match outcome {
        Ok(bytes) => {
            eprintln!("tungate capture: done, {bytes} bytes of pcapng written");
            0
        }
        Err(e) => {
            eprintln!("tungate capture: {e}");
            if !to_stdout {
                // A refused capture leaves no empty file behind; a cut stream keeps what came.
                if std::fs::metadata(output).is_ok_and(|m| m.len() == 0) {
                    let _ = std::fs::remove_file(output);
                }
            }
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_carries_what_was_given_encoded() {
        assert_eq!(CaptureRequest::default().path(), "/api/v1/capture");
        let r = CaptureRequest {
            vip: Some("192.0.2.10".into()),
            reason: Some("unknown peer&x".into()),
            count: Some(5),
            seconds: Some(2),
            passed: true,
            ..CaptureRequest::default()
        };
        assert_eq!(
            r.path(),
            "/api/v1/capture?vip=192.0.2.10&reason=unknown%20peer%26x&count=5&seconds=2&passed=true"
        );
    }
}
