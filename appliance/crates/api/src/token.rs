//! The one reader of admin token files (`--token-file` of `tungate run` and of
//! `tungate status`): read, trim, and — for the token a gateway will accept — check that it
//! is strong enough. It never generates or stores tokens (the state directory does).

use std::path::{Path, PathBuf};

/// Shortest bearer token `tungate run` accepts from `--token-file`.
pub(crate) const MIN_TOKEN_LEN: usize = 16;

/// Why a token file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file cannot be read.
    #[error("--token-file {}: cannot read: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The token is too short or holds spaces or control characters.
    #[error(
        "--token-file {}: the token must be at least {MIN_TOKEN_LEN} characters without \
         spaces (e.g. `openssl rand -hex 32`)",
        path.display()
    )]
    Weak {
        /// The file.
        path: PathBuf,
    },
}

/// The token in `path`, without surrounding whitespace (a client sends whatever it holds).
pub fn read_token_file(path: &Path) -> Result<String, TokenFileError> {
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_owned())
        .map_err(|source| TokenFileError::Read {
            path: path.to_owned(),
            source,
        })
}

/// The token in `path`, refused unless it is a token a gateway should accept: at least
/// [`MIN_TOKEN_LEN`] characters, no whitespace or control characters.
pub fn read_server_token_file(path: &Path) -> Result<String, TokenFileError> {
    let token = read_token_file(path)?;
    if token.len() < MIN_TOKEN_LEN || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(TokenFileError::Weak {
            path: path.to_owned(),
        });
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_trimmed_and_weak_ones_refused_by_the_server_reader() {
        let dir = tempfile::tempdir().unwrap();
        let strong = dir.path().join("strong");
        std::fs::write(&strong, "  0123456789abcdef0123\n").unwrap();
        assert_eq!(read_token_file(&strong).unwrap(), "0123456789abcdef0123");
        assert_eq!(
            read_server_token_file(&strong).unwrap(),
            "0123456789abcdef0123"
        );
        let short = dir.path().join("short");
        std::fs::write(&short, "abc\n").unwrap();
        assert_eq!(read_token_file(&short).unwrap(), "abc");
        let err = read_server_token_file(&short).unwrap_err();
        assert!(matches!(err, TokenFileError::Weak { .. }), "{err}");
        let spaced = dir.path().join("spaced");
        std::fs::write(&spaced, "0123456789 abcdef0123").unwrap();
        assert!(read_server_token_file(&spaced).is_err());
        let missing = dir.path().join("missing");
        let err = read_token_file(&missing).unwrap_err().to_string();
        assert!(
            err.starts_with("--token-file ") && err.contains("cannot read"),
            "{err}"
        );
    }
}
