//! The configuration: the declarative document ([`model`]), its meaning checks
//! ([`validate`]) and its checks against this host ([`host`]).
//!
//! The same document comes from a TOML file (`tungate run --config FILE`) or as JSON from
//! the admin API. Every error names the field it is about. This module never touches the
//! network configuration or the data path; it only reads and judges documents.

pub mod host;
pub mod model;
pub mod validate;

/// The exit status for a configuration or usage error.
pub const EXIT_BAD_CONFIG: i32 = 2;

use std::path::Path;

pub use model::{
    Binding, DEFAULT_GUE_PORT, DEFAULT_SILENT_AFTER, DecapMode, Document, Gateway, HumaneDuration,
    IoMode, OnError, Peer, TunnelKind, Vip,
};
pub use validate::{FieldError, Invalid, validate};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The text is not a well-formed document (syntax, unknown key, wrong type, bad address).
    #[error("{0}")]
    Syntax(String),
    /// The document is well formed but means something impossible.
    #[error("{0}")]
    Invalid(#[from] Invalid),
}

/// Parses a TOML document (shape only; see [`validate()`] for meaning).
pub fn parse_toml(text: &str) -> Result<Document, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string().trim_end().to_owned()))
}

/// Parses a JSON document (shape only). Errors name the field path, e.g.
/// `peers[0].address: invalid IPv4 address syntax`.
pub fn parse_json(bytes: &[u8]) -> Result<Document, ConfigError> {
    parse_json_as(bytes)
}

/// Parses any JSON value whose errors should name the field path.
pub fn parse_json_as<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ConfigError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ConfigError::Syntax(inner.to_string())
        } else {
            ConfigError::Syntax(format!("{path}: {inner}"))
        }
    })
}

/// Reads, parses and validates a TOML file (not yet against the host).
pub fn load_file(path: &Path) -> Result<Document, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let doc = parse_toml(&text).map_err(|e| match e {
        ConfigError::Syntax(msg) => ConfigError::Syntax(format!("{}: {msg}", path.display())),
        other => other,
    })?;
    validate(&doc)?;
    Ok(doc)
}

/// Renders a document as TOML (for `tungate config show` and the examples).
pub fn to_toml(doc: &Document) -> String {
    toml::to_string_pretty(doc).expect("a Document always serialises to TOML")
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        [gateway]
        address = "10.0.0.1"
        decap = "kernel"
        workers = 2
        egress_interface = "eth1"

        [[peers]]
        name = "rs1"
        address = "10.0.1.2"
        vips = ["192.0.2.10", "192.0.2.11"]

        [[vips]]
        address = "192.0.2.10"

        [[vips.plugins]]
        plugin = "cidr-filter"
        on_error = "drop"
        config = { deny = ["198.51.100.0/24"] }
    "#;

    #[test]
    fn full_document_parses_and_round_trips_through_json_and_toml() {
        let doc = parse_toml(FULL).unwrap();
        validate(&doc).unwrap();
        assert_eq!(doc.gateway.decap, DecapMode::Kernel);
        assert_eq!(doc.gateway.workers, 2);
        assert_eq!(doc.vips[0].plugins[0].on_error, OnError::Drop);
        assert_eq!(doc.vips[0].plugins[0].config["deny"][0], "198.51.100.0/24");
        let json = serde_json::to_vec(&doc).unwrap();
        assert_eq!(parse_json(&json).unwrap(), doc);
        assert_eq!(parse_toml(&to_toml(&doc)).unwrap(), doc);
    }

    #[test]
    fn defaults_apply() {
        let doc = parse_toml("[gateway]\naddress = \"10.0.0.1\"").unwrap();
        assert_eq!(doc.gateway.decap, DecapMode::Userspace);
        assert_eq!(doc.gateway.workers, 1);
        assert_eq!(doc.gateway.io, IoMode::Auto);
        assert!(doc.peers.is_empty() && doc.vips.is_empty());
    }

    #[test]
    fn io_takes_its_four_names_and_kernel_decap_allows_only_auto_and_packet() {
        for (name, mode) in [
            ("auto", IoMode::Auto),
            ("xdp", IoMode::Xdp),
            ("xdp-generic", IoMode::XdpGeneric),
            ("packet", IoMode::Packet),
        ] {
            let doc = parse_toml(&format!(
                "[gateway]\naddress = \"10.0.0.1\"\nio = \"{name}\""
            ))
            .unwrap();
            assert_eq!(doc.gateway.io, mode);
            assert_eq!(mode.as_str(), name);
            validate(&doc).unwrap();
            assert_eq!(parse_toml(&to_toml(&doc)).unwrap(), doc);
            assert_eq!(parse_json(&serde_json::to_vec(&doc).unwrap()).unwrap(), doc);

            let kernel = parse_toml(&format!(
                "[gateway]\naddress = \"10.0.0.1\"\ndecap = \"kernel\"\nio = \"{name}\""
            ))
            .unwrap();
            match validate(&kernel) {
                Ok(()) => assert!(!mode.is_xdp(), "{name} accepted with kernel decap"),
                Err(e) => {
                    assert!(mode.is_xdp(), "{name}: {e}");
                    let msg = e.to_string();
                    assert!(
                        msg.contains(&format!(
                            "gateway.io: \"{name}\" needs decap = \"userspace\""
                        )),
                        "{msg}"
                    );
                }
            }
        }
        let err = parse_toml("[gateway]\naddress = \"10.0.0.1\"\nio = \"dpdk\"").unwrap_err();
        assert!(err.to_string().contains("unknown variant `dpdk`"), "{err}");
        // The default is not written out, so documents without `io` stay as they were.
        let plain = parse_toml("[gateway]\naddress = \"10.0.0.1\"").unwrap();
        assert!(!to_toml(&plain).contains("io ="));
    }

    #[test]
    fn shape_errors_name_the_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[gateway]\naddress = \"10.0.0.1\"\ncolour = 1",
                "unknown field `colour`",
            ),
            (
                "[gateway]\naddress = \"10.0.0.300\"",
                "invalid IPv4 address syntax",
            ),
            (
                "[gateway]\naddress = \"10.0.0.1\"\ndecap = \"ebpf\"",
                "unknown variant `ebpf`",
            ),
            (
                "[gateway]\naddress = \"10.0.0.1\"\n[[peers]]\nname = \"a\"",
                "missing field `address`",
            ),
            ("nonsense", "expected"),
        ];
        for (text, expected) in cases {
            let err = parse_toml(text).unwrap_err().to_string();
            assert!(
                err.contains(expected),
                "{text:?}: expected {expected:?} in {err}"
            );
        }
    }

    #[test]
    fn json_errors_carry_the_field_path() {
        let err = parse_json(
            br#"{"gateway":{"address":"10.0.0.1"},"peers":[{"name":"a","address":"x"}]}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("peers[0].address: "), "{err}");
        let err = parse_json(br#"{"gateway":{"address":"10.0.0.1","bogus":true}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("gateway") && err.contains("unknown field `bogus`"),
            "{err}"
        );
    }

    #[test]
    fn load_file_reports_path_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");
        assert!(matches!(load_file(&missing), Err(ConfigError::Read { .. })));
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[gateway]\naddress = \"10.0.0.1\"\nworkers = 99").unwrap();
        let err = load_file(&bad).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid(_)), "{err}");
        assert!(err.to_string().contains("gateway.workers"));
    }
}
