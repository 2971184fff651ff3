//! A tiny HTTP/1.1 client for the admin API tests: requests are written byte for byte (so
//! a test can send `..`, `%2F`, wrong content types or oversize bodies exactly as given)
//! from a thread inside the test's network namespace, one connection per request.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::netns::Netns;
use crate::wait::{filters_in_force, until};

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (panics with the body if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The error code of an error answer.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The field of an error answer.
    pub fn error_field(&self) -> String {
        self.json()["error"]["field"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(end) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&body[..end]);
        let size =
            usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = end + 2;
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
}

/// Sends `raw` (a whole request) to `address` from inside `ns` and reads the response.
pub fn raw(ns: &Netns, address: &str, raw: Vec<u8>) -> Response {
    raw_in(&ns.name, address, raw)
}

/// [`raw`] by namespace name.
pub fn raw_in(ns: &str, address: &str, raw: Vec<u8>) -> Response {
    let address = address.to_owned();
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let mut s =
            TcpStream::connect(&address).unwrap_or_else(|e| panic!("connect {address}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        // The server may answer (413) before reading a large body: ignore a reset then.
        let _ = s.write_all(&raw);
        let mut data = Vec::new();
        let _ = s.read_to_end(&mut data);
        let split = data
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP response: {:?}", String::from_utf8_lossy(&data)));
        let head = String::from_utf8_lossy(&data[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|c| c.parse().ok())
            .expect("status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let mut body = data[split + 4..].to_vec();
        if headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"))
        {
            body = dechunk(&body);
        }
        Response {
            status,
            headers,
            body,
        }
    })
    .join()
    .expect("HTTP client thread")
}

/// A client of one admin listener.
#[derive(Clone)]
pub struct Api {
    ns: String,
    /// `host:port`.
    pub address: String,
    /// The bearer token sent, if any.
    pub token: Option<String>,
}

impl Api {
    /// A client of `address` inside `ns`, sending `token` if given.
    pub fn new(ns: &Netns, address: &str, token: Option<String>) -> Api {
        Api {
            ns: ns.name.clone(),
            address: address.to_owned(),
            token,
        }
    }

    /// The same client with another token (or none).
    pub fn with_token(&self, token: Option<&str>) -> Api {
        Api {
            token: token.map(str::to_owned),
            ..self.clone()
        }
    }

    /// Any request: method, path (sent as given), extra headers, body.
    pub fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.address
        );
        if let Some(t) = &self.token {
            req.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        if !body.is_empty() || method == "PUT" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        raw_in(&self.ns, &self.address, bytes)
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        self.send("GET", path, &[], b"")
    }

    /// `PUT path` with a JSON body.
    pub fn put_json(&self, path: &str, body: &serde_json::Value) -> Response {
        self.send(
            "PUT",
            path,
            &[("Content-Type", "application/json")],
            body.to_string().as_bytes(),
        )
    }

    /// `PUT path` with a wasm module.
    pub fn put_wasm(&self, path: &str, module: &[u8]) -> Response {
        self.send("PUT", path, &[("Content-Type", "application/wasm")], module)
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Response {
        self.send("DELETE", path, &[], b"")
    }

    /// Waits until every worker runs the filter generation published last (a hot swap
    /// answered by the API is then in force on every worker).
    pub fn wait_filters_in_force(&self) {
        until(
            Duration::from_secs(10),
            "every worker runs the published filters",
            || filters_in_force(&self.get("/api/v1/status").json()),
        );
    }
}
