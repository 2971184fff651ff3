//! What every one-shot command against the admin API (`tungate status`, `drain`, `capture`)
//! starts with: the token read from its file, a client of the URL, and a runtime to drive
//! the requests; a failure is printed under the command's name with its exit status.

use std::path::PathBuf;

use crate::client::ApiClient;
use crate::token::read_token_file;

/// The client and runtime of `tungate COMMAND` against `url`, with the token in
/// `token_file` and, for an `https://` URL, trusting `ca` (else the system's bundle). On
/// failure the reason is printed as `tungate COMMAND: …` and the exit status is returned:
/// [`tungate_config::EXIT_BAD_CONFIG`] for a bad token file or URL, 1 otherwise.
pub(crate) fn connect(
    command: &str,
    url: &str,
    token_file: Option<&PathBuf>,
    ca: Option<&PathBuf>,
) -> Result<(ApiClient, tokio::runtime::Runtime), i32> {
    let token = token_file
        .map(|p| read_token_file(p))
        .transpose()
        .map_err(|e| {
            eprintln!("tungate {command}: {e}");
            tungate_config::EXIT_BAD_CONFIG
        })?;
    let client = ApiClient::with_ca(url, token, ca.map(PathBuf::as_path)).map_err(|e| {
        eprintln!("tungate {command}: {e}");
        tungate_config::EXIT_BAD_CONFIG
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("tungate {command}: cannot start a runtime: {e}");
            1
        })?;
    Ok((client, runtime))
}
