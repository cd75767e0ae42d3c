//! The command line's side of the HTTP API: `cryptosphere put --api` and `get --api` send
//! the file to, or stream it from, a running node; `node status` and `node contracts` read
//! its state.

use std::io::{Read, Write};

/// Bytes moved per read and write when streaming a file from the node.
const COPY_BUFFER_BYTES: usize = 1 << 20;

/// Why a call to the node's API failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("the API URL {0:?} is not http://HOST:PORT")]
    BadUrl(String),
    #[error("the node at {url} could not be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the node refused ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("the node sent {got} bytes of {expected}: the transfer broke off")]
    Short { got: u64, expected: u64 },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn base(api: &str) -> Result<String, ClientError> {
    let trimmed = api.trim_end_matches('/');
    let rest = trimmed
        .strip_prefix("http://")
        .ok_or_else(|| ClientError::BadUrl(api.to_string()))?;
    if rest.is_empty() || rest.contains('/') {
        return Err(ClientError::BadUrl(api.to_string()));
    }
    Ok(trimmed.to_string())
}

fn call(
    result: Result<ureq::Response, ureq::Error>,
    url: &str,
) -> Result<ureq::Response, ClientError> {
    match result {
        Ok(response) => Ok(response),
        Err(ureq::Error::Status(status, response)) => Err(ClientError::Refused {
            status,
            message: response
                .into_string()
                .unwrap_or_default()
                .trim()
                .to_string(),
        }),
        Err(e) => Err(ClientError::Unreachable {
            url: url.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// The node's status, as the JSON text it answers with.
pub fn status(api: &str) -> Result<String, ClientError> {
    let url = format!("{}/v1/status", base(api)?);
    Ok(call(ureq::get(&url).call(), &url)?.into_string()?)
}

/// The node's economy (`/v1/contracts`), as the JSON text it answers with.
pub fn contracts(api: &str) -> Result<String, ClientError> {
    let url = format!("{}/v1/contracts", base(api)?);
    Ok(call(ureq::get(&url).call(), &url)?.into_string()?)
}

/// `GET /v1/peers`: the node's known peers, scores and refusals (JSON text).
pub fn peers(api: &str) -> Result<String, ClientError> {
    let url = format!("{}/v1/peers", base(api)?);
    Ok(call(ureq::get(&url).call(), &url)?.into_string()?)
}

/// Sends a file to the node; returns the capability it answers with.
pub fn put(api: &str, source: impl Read) -> Result<String, ClientError> {
    let url = format!("{}/v1/objects", base(api)?);
    let response = call(
        ureq::post(&url)
            .set("Content-Type", "application/octet-stream")
            .send(source),
        &url,
    )?;
    Ok(response.into_string()?.trim().to_string())
}

/// Streams the file `cap` names into `out`; returns its length.
pub fn get(api: &str, cap: &str, out: &mut dyn Write) -> Result<u64, ClientError> {
    let url = format!("{}/v1/objects/{cap}", base(api)?);
    let response = call(ureq::get(&url).call(), &url)?;
    let expected: Option<u64> = response
        .header("Content-Length")
        .and_then(|len| len.parse().ok());
    // Large reads and writes: the default 8 KiB copy spends its time in system calls.
    let mut reader = response.into_reader();
    let mut buffer = vec![0u8; COPY_BUFFER_BYTES];
    let mut got = 0u64;
    loop {
        let n = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        out.write_all(&buffer[..n])?;
        got += n as u64;
    }
    if let Some(expected) = expected.filter(|expected| *expected != got) {
        return Err(ClientError::Short { got, expected });
    }
    Ok(got)
}
