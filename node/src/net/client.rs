//! The command line's side of the HTTP API: `cryptosphere put --api` and `get --api` send
//! a file or a directory (as a tar stream) to, or stream it from, a running node; `node status` and `node contracts` read
//! its state.

use std::io::{Read, Write};
use std::path::Path;

use crate::host::pieces::PieceWriter;

/// The media type of a tar stream.
pub const TAR: &str = "application/x-tar";

/// Bytes moved per read and write when streaming a file from the node.
const COPY_BUFFER_BYTES: usize = 1 << 20;

/// Why a call to the node's API failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("the API URL {0:?} is not http://HOST:PORT (or HOST:PORT)")]
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

/// `http://HOST:PORT` from `api`, which may leave out the scheme (the node's start line
/// prints its API as `HOST:PORT`).
fn base(api: &str) -> Result<String, ClientError> {
    let rest = match api.strip_prefix("http://") {
        Some(rest) => rest,
        None if !api.contains("://") => api,
        None => return Err(ClientError::BadUrl(api.to_string())),
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains(char::is_whitespace) {
        return Err(ClientError::BadUrl(api.to_string()));
    }
    Ok(format!("http://{rest}"))
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

/// Sends a directory to the node as a tar stream (regular files and directories, with their
/// modes; anything else travels as what it is, and the node refuses it by name). Returns the
/// capability it answers with.
pub fn put_dir(api: &str, dir: &Path) -> Result<String, ClientError> {
    let url = format!("{}/v1/objects", base(api)?);
    let (pieces, body) = crate::host::pieces::channel(PACKED_PIECES);
    let dir = dir.to_owned();
    let packing = std::thread::spawn(move || pack(&dir, pieces));
    let sent = ureq::post(&url).set("Content-Type", TAR).send(body);
    let packed = packing
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("packing the tar stream panicked")));
    match (packed, call(sent, &url)) {
        // The node's own answer says most, unless reading the directory failed here first.
        (Err(e), _) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(ClientError::Io(e)),
        (_, answer) => Ok(answer?.into_string()?.trim().to_string()),
    }
}

/// Pieces of a tar stream buffered between the packing thread and the request.
const PACKED_PIECES: usize = 4;

/// A sink that turns silent once closed: what tar's builder writes when it is dropped after
/// a failure (its end-of-archive blocks) must not reach the node as a complete stream.
struct Closable {
    inner: std::io::BufWriter<PieceWriter>,
    open: std::rc::Rc<std::cell::Cell<bool>>,
}

impl Write for Closable {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.open.get() {
            self.inner.write(buf)
        } else {
            Ok(buf.len())
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.open.get() {
            self.inner.flush()
        } else {
            Ok(())
        }
    }
}

/// Writes `dir` as a tar stream into `pieces`. On failure the stream breaks off with the
/// error, so the node stores nothing half-read.
fn pack(dir: &Path, pieces: PieceWriter) -> std::io::Result<()> {
    let open = std::rc::Rc::new(std::cell::Cell::new(true));
    let mut sink = Closable {
        inner: std::io::BufWriter::with_capacity(COPY_BUFFER_BYTES, pieces),
        open: open.clone(),
    };
    let packed = {
        let mut builder = tar::Builder::new(&mut sink);
        builder.follow_symlinks(false);
        let packed = builder
            .append_dir_all(".", dir)
            .and_then(|()| builder.finish());
        if packed.is_err() {
            open.set(false);
        }
        packed
    };
    match packed {
        Ok(()) => sink
            .inner
            .into_inner()
            .map(drop)
            .map_err(|e| e.into_error()),
        Err(e) => {
            let (mut pieces, _unsent) = sink.inner.into_parts();
            pieces.fail(std::io::Error::new(e.kind(), e.to_string()));
            Err(e)
        }
    }
}

/// What a capability names, from `GET …?format=json`: `"file"` or `"directory"`.
pub fn kind(api: &str, cap: &str) -> Result<String, ClientError> {
    let url = format!("{}/v1/objects/{cap}?format=json", base(api)?);
    let text = call(ureq::get(&url).call(), &url)?.into_string()?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| std::io::Error::other(format!("the node's listing is not JSON: {e}")))?;
    match value["kind"].as_str() {
        Some(kind @ ("file" | "directory")) => Ok(kind.to_string()),
        _ => Err(std::io::Error::other("the node's listing names no kind").into()),
    }
}

/// The directory `cap` names, as a tar stream to read.
pub fn get_tar(api: &str, cap: &str) -> Result<impl Read + Send + 'static, ClientError> {
    let url = format!("{}/v1/objects/{cap}?format=tar", base(api)?);
    Ok(call(ureq::get(&url).call(), &url)?.into_reader())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_api_url_is_http_host_port_with_or_without_its_scheme() {
        for (given, url) in [
            ("http://127.0.0.1:7421", "http://127.0.0.1:7421"),
            ("http://127.0.0.1:7421/", "http://127.0.0.1:7421"),
            ("127.0.0.1:7421", "http://127.0.0.1:7421"),
            ("localhost:1", "http://localhost:1"),
        ] {
            assert_eq!(base(given).unwrap(), url, "{given}");
        }
        for bad in [
            "",
            "http://",
            "https://127.0.0.1:7421",
            "ftp://h:1",
            "http://h:1/v1",
            "h:1/v1",
            "h 1",
        ] {
            assert!(matches!(base(bad), Err(ClientError::BadUrl(_))), "{bad:?}");
        }
    }
}
