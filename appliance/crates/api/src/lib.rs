//! The admin API from the outside: an HTTP client of a running appliance ([`client`]) and
//! `tungate status`, which summarises it ([`status`]). Used by the CLI and by `tungate demo`;
//! it never reaches into a gateway other than through the API.

pub mod client;
pub mod status;
