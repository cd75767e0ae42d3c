//! The local HTTP API (axum): `POST /v1/objects` stores a file (or, as `application/x-tar`,
//! a directory) and starts its replication, `GET /v1/objects/{cap}` streams a file (or with
//! `?format=tar` a directory, `?format=json` describes either; missing chunks are fetched
//! from peers first),
//! `PUT /v1/pins/{cap}` fetches a tree into this node and pins it, `GET /v1/status` is JSON,
//! `GET /v1/contracts` the economy (strategy, contracts, ledgers), `GET /v1/peers` the known
//! peers with their scores and refusals, `GET /v1/chain` this node's own chain, and
//! `GET /metrics` the Prometheus text format. Every error is a status code with a sentence
//! naming the problem. Every limit is here: header and body timeouts,
//! connections, requests and bodies streamed at once (each body holds a few MiB), and
//! single-range requests (`206`, `416`).

use std::io::{Read, Write};
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures_util::StreamExt;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::client;
use super::mailbox::Inspect;
use super::status::Status;
use super::trade::TradeConfig;
use super::Shared;
use crate::host::import::PutOptions;
use crate::host::tarball;
use crate::ids::ChunkId;
use crate::kernel::content::Content;
use crate::kernel::negotiator::Negotiator;
use crate::kernel::reputation::Reputation;
use crate::kernel::storage::StoreActor;
use crate::kernel::{ActorKind, Command, Input, PeerId};
use crate::object::format::{EntryKind, NodeKind};
use crate::object::WriteError;
use crate::object::{Capability, ReadCap, Reader, WriteConfig, Writer};
use crate::store::{gc, BackendError, Store, StoreError};

/// A fetch of a whole tree gives up after this.
const FETCH_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Body pieces buffered between the network and the object writer.
const PIPE_PIECES: usize = 16;
/// Pieces (each at most one chunk, 1 MiB) buffered between the object reader and one
/// response: with one chunk in the reader, a response holds about 4 MiB at most.
const RESPONSE_PIECES: usize = 2;
/// A request's headers must arrive within this (from the connection's start, or the end of
/// the request before on a kept-alive connection).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// A request body that sends nothing for this long is cut off (`408`).
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections to the API open at once; more are closed as soon as they are accepted.
pub const API_CONNECTIONS_MAX: usize = 1024;
/// Requests handled at once; more are answered `503` at once.
pub const API_REQUESTS_MAX: usize = 512;
/// Object bodies streamed at once (each holds a few MiB); more wait their turn.
pub const API_STREAMS_MAX: usize = 16;
/// A request waits at most this long for its turn to stream, then gets `503`.
const STREAM_WAIT_MAX: Duration = Duration::from_secs(10 * 60);
/// Chain records answered by one `GET /v1/chain`.
pub const CHAIN_PAGE_RECORDS_MAX: usize = 4096;

/// What the API says of the node itself.
#[derive(Debug, Clone)]
pub struct NodeView {
    pub me: PeerId,
    pub listen: Option<std::net::SocketAddr>,
    pub replication: usize,
    /// The strategy and economy the node was configured with, for `/v1/contracts`.
    pub trade: TradeConfig,
}

#[derive(Debug, Clone)]
pub struct ApiState {
    pub view: Arc<NodeView>,
    pub store: Store,
    pub shared: Arc<Shared>,
    /// Requests in progress.
    pub requests: Arc<tokio::sync::Semaphore>,
    /// Object bodies being streamed.
    pub streams: Arc<tokio::sync::Semaphore>,
}

impl ApiState {
    pub fn new(view: NodeView, store: Store, shared: Arc<Shared>) -> ApiState {
        ApiState {
            view: Arc::new(view),
            store,
            shared,
            requests: Arc::new(tokio::sync::Semaphore::new(API_REQUESTS_MAX)),
            streams: Arc::new(tokio::sync::Semaphore::new(API_STREAMS_MAX)),
        }
    }
}

/// Answers `503` when [`API_REQUESTS_MAX`] requests are already in progress.
async fn limit_requests(
    State(state): State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Ok(_permit) = state.requests.clone().try_acquire_owned() else {
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{API_REQUESTS_MAX} requests are in progress; try again shortly"),
        );
    };
    next.run(request).await
}

pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/objects", post(put_object))
        .route("/v1/objects/{cap}", get(get_object))
        .route("/v1/pins/{cap}", axum::routing::put(pin_object))
        .route("/v1/status", get(status))
        .route("/v1/contracts", get(contracts))
        .route("/v1/peers", get(peers))
        .route("/v1/chain", get(chain))
        .route("/metrics", get(metrics))
        .fallback(unknown_path)
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            limit_requests,
        ))
        .with_state(state)
}

/// Serves the API: at most [`API_CONNECTIONS_MAX`] connections, each of HTTP/1.1 with a
/// header read timeout.
pub async fn serve(listener: TcpListener, state: ApiState) {
    let app = router(state);
    let connections = Arc::new(tokio::sync::Semaphore::new(API_CONNECTIONS_MAX));
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(%e, "the API could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::debug!(%remote, "API connection refused: too many open");
            continue;
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%remote, %e, "API connection ended");
            }
        });
    }
}

fn fail(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, format!("{message}\n")).into_response()
}

/// A path the API does not have: 404, naming the paths it does.
async fn unknown_path(uri: axum::http::Uri) -> Response {
    fail(
        StatusCode::NOT_FOUND,
        format!(
            "no such path {:?}; the API has /v1/objects, /v1/objects/{{cap}}, /v1/pins/{{cap}}, \
             /v1/status, /v1/contracts, /v1/peers, /v1/chain and /metrics",
            uri.path()
        ),
    )
}

/// A view that takes no parameters refuses any, as the others refuse unknown ones.
fn no_parameters(query: &Option<String>) -> Option<Response> {
    let query = query.as_deref().filter(|q| !q.is_empty())?;
    let name = query.split('&').next().unwrap_or(query);
    let name = name.split('=').next().unwrap_or(name);
    Some(fail(
        StatusCode::BAD_REQUEST,
        format!("unknown parameter {name:?} (this view takes none)"),
    ))
}

/// A `Read` over body pieces arriving on a channel (for the blocking object writer).
struct PipeReader {
    pieces: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    current: Bytes,
}

impl Read for PipeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.pieces.blocking_recv() {
                Some(piece) => self.current = piece?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}

/// A `Write` that sends what the blocking object reader writes into a response body.
struct PipeWriter {
    pieces: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Write for PipeWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pieces
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client left"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The status for a store failure: `507 Insufficient Storage` when the disk is full.
fn store_status(error: &StoreError) -> StatusCode {
    match error {
        StoreError::Backend(BackendError::NoSpace { .. }) => StatusCode::INSUFFICIENT_STORAGE,
        StoreError::Backend(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The status for a failed put: the client's fault (its body broke off), or the store's.
fn write_status(error: &WriteError) -> StatusCode {
    match error {
        WriteError::Store(error) => store_status(error),
        WriteError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Bytes of a request body read and dropped after its put failed, so the client (still
/// sending) reads the answer instead of a reset connection.
const DRAIN_BYTES_MAX: u64 = 1 << 30;

/// Whether a request's body is a tar stream (`Content-Type: application/x-tar`).
fn is_tar(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(client::TAR))
}

/// Stores a request body: a file, or with [`is_tar`] a directory of the tar's entries.
/// Returns its capability, its size (file bytes) and the chunks of its tree.
fn store_body(
    store: &Store,
    body: PipeReader,
    tar: bool,
) -> Result<(ReadCap, u64, Vec<ChunkId>), (StatusCode, String)> {
    let (cap, size) = if tar {
        let options = PutOptions {
            pin: true,
            ..PutOptions::default()
        };
        let outcome = tarball::put_tar(store, body, &options).map_err(|e| {
            let status = e
                .write_error()
                .map_or(StatusCode::BAD_REQUEST, write_status);
            (status, e.to_string())
        })?;
        (outcome.cap, outcome.stats.bytes_in)
    } else {
        let mut body = body;
        let mut writer = Writer::new(store, WriteConfig::default(), None);
        let (cap, size) = writer
            .put_file(&mut body, &mut |_| {})
            .map_err(|e| (write_status(&e), e.to_string()))?;
        writer
            .finish(Some(cap))
            .map_err(|e| (write_status(&e), e.to_string()))?;
        (cap, size)
    };
    let (chunks, missing) = gc::tree(store, cap.id).map_err(|e| {
        let status = match &e {
            gc::GcError::Store(e) => store_status(e),
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, e.to_string())
    })?;
    if missing {
        let problem = "the stored tree is incomplete".to_string();
        return Err((StatusCode::INTERNAL_SERVER_ERROR, problem));
    }
    Ok((cap, size, chunks.into_iter().collect()))
}

async fn put_object(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    let (feed, pieces) = mpsc::channel(PIPE_PIECES);
    let store = state.store.clone();
    let tar = is_tar(&headers);
    let writing = tokio::task::spawn_blocking(move || {
        let reader = PipeReader {
            pieces,
            current: Bytes::new(),
        };
        store_body(&store, reader, tar)
    });
    let mut stream = body.into_data_stream();
    let mut drained = 0u64;
    let mut writer_gone = false;
    let mut stalled = false;
    loop {
        let piece = match tokio::time::timeout(BODY_IDLE_TIMEOUT, stream.next()).await {
            Ok(Some(piece)) => piece.map_err(|e| std::io::Error::other(e.to_string())),
            Ok(None) => break,
            Err(_) => {
                stalled = true;
                let secs = BODY_IDLE_TIMEOUT.as_secs();
                let problem = format!("the request body sent nothing for {secs} s");
                let _ = feed
                    .send(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        problem,
                    )))
                    .await;
                break;
            }
        };
        if writer_gone {
            // The put failed: read the rest (within a bound), so the answer reaches the
            // client rather than a reset connection.
            match piece {
                Ok(bytes) if drained < DRAIN_BYTES_MAX => drained += bytes.len() as u64,
                _ => break,
            }
            continue;
        }
        let failed = piece.is_err();
        if feed.send(piece).await.is_err() {
            writer_gone = true;
            continue;
        }
        if failed {
            break;
        }
    }
    drop(feed);
    let (cap, size, chunks) = match writing.await {
        Ok(Ok(done)) => done,
        Ok(Err((status, e))) => {
            let status = if stalled {
                StatusCode::REQUEST_TIMEOUT
            } else {
                status
            };
            tracing::warn!(%status, problem = %e, "a put failed");
            return fail(status, format!("put failed: {e}"));
        }
        Err(e) => return fail(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let content = Content::Stored {
        root: cap.id,
        chunks,
        bytes: size,
    };
    let routes = &state.shared.routes;
    routes.deliver(
        ActorKind::Negotiator,
        Input::Command(Command::Publish { content }),
    );
    routes.deliver(
        ActorKind::Store,
        Input::Command(Command::Announce { root: cap.id }),
    );
    // Answered once the negotiator has taken the publication (a status asked for next
    // counts its chunks); the commands stand even if this request goes away.
    let Some(boxes) = routes.mailboxes() else {
        return fail(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    };
    if boxes
        .negotiator
        .send(Inspect::new(|_: &Negotiator| ()))
        .await
        .is_err()
    {
        return fail(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    }
    (StatusCode::CREATED, format!("{}\n", Capability::Read(cap))).into_response()
}

/// Makes sure every chunk of the tree at `root` is in this node's store, fetching what is
/// missing from peers.
async fn fetch_missing(state: &ApiState, root: ChunkId) -> Result<(), Response> {
    let store = state.store.clone();
    let complete = tokio::task::spawn_blocking(move || gc::tree(&store, root)).await;
    let missing = match complete {
        Ok(Ok((_, missing))) => missing,
        Ok(Err(e)) => return Err(fail(StatusCode::UNPROCESSABLE_ENTITY, e)),
        Err(e) => return Err(fail(StatusCode::INTERNAL_SERVER_ERROR, e)),
    };
    if !missing {
        return Ok(());
    }
    // Registering and asking are one step that nothing cancels: a later get of the same
    // root waits on the same fetch.
    let (first, done) = state.shared.node.wait_for_fetch(root);
    if first {
        let fetch = Input::Command(Command::Fetch { root });
        state.shared.routes.deliver(ActorKind::Negotiator, fetch);
    }
    match tokio::time::timeout(FETCH_TIMEOUT, done).await {
        Ok(Ok(true)) => {
            // The negotiator sent the store every chunk before it said the fetch was done;
            // once the store has taken what is in its mailbox now, they are all on disk.
            let boxes = state.shared.routes.mailboxes();
            let taken = match boxes {
                Some(boxes) => boxes.store.send(Inspect::new(|_: &StoreActor| ())).await,
                None => Err(actix::MailboxError::Closed),
            };
            taken.map_err(|_| fail(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"))
        }
        _ => Err(fail(
            StatusCode::BAD_GATEWAY,
            format!("no peer served every chunk of {root}"),
        )),
    }
}

async fn pin_object(State(state): State<ApiState>, Path(text): Path<String>) -> Response {
    let root = match Capability::from_str(&text) {
        Ok(cap) => cap.id(),
        Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    if let Err(failed) = fetch_missing(&state, root).await {
        return failed;
    }
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.pin(root)).await {
        Ok(Ok(())) => {
            // Whole and pinned here: we provide it now.
            let announce = Input::Command(Command::Announce { root });
            state.shared.routes.deliver(ActorKind::Store, announce);
            (StatusCode::OK, format!("pinned {root}\n")).into_response()
        }
        Ok(Err(e)) => fail(store_status(&e), format!("cannot pin {root}: {e}")),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

/// What a `Range` header asks of a file of `total` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wanted {
    /// No usable range (absent, not `bytes=`, several ranges, malformed): the whole file.
    Whole,
    /// Bytes `start..end` (non-empty, within the file).
    Part { start: u64, end: u64 },
    /// A range that starts beyond the file: `416`.
    Unsatisfiable,
}

/// Reads a `Range` header (RFC 9110 §14): one range, `bytes=A-B`, `bytes=A-` or `bytes=-N`.
/// Anything else is ignored, as the RFC allows, and the whole file is sent.
fn wanted(header: Option<&str>, total: u64) -> Wanted {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Wanted::Whole;
    };
    if spec.contains(',') {
        return Wanted::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Wanted::Whole;
    };
    let number = |text: &str| -> Option<u64> {
        (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    match (first, last) {
        ("", suffix) => match number(suffix) {
            Some(n) if n > 0 && total > 0 => Wanted::Part {
                start: total.saturating_sub(n),
                end: total,
            },
            Some(_) => Wanted::Unsatisfiable,
            None => Wanted::Whole,
        },
        (first, last) => {
            let Some(start) = number(first) else {
                return Wanted::Whole;
            };
            let end = match last {
                "" => total,
                last => match number(last) {
                    Some(last) if last >= start => last.saturating_add(1).min(total),
                    _ => return Wanted::Whole,
                },
            };
            if start >= total {
                Wanted::Unsatisfiable
            } else {
                Wanted::Part { start, end }
            }
        }
    }
}

/// What `?format=` asks of a capability: a file's bytes (no format), a directory as a tar
/// stream, or either described in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Bytes,
    Tar,
    Json,
}

fn format_query(query: Option<&str>) -> Result<Format, String> {
    let mut format = Format::Bytes;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("format", "tar") => format = Format::Tar,
            ("format", "json") => format = Format::Json,
            ("format", other) => return Err(format!("format={other:?} is not tar or json")),
            (other, _) => return Err(format!("unknown parameter {other:?} (format)")),
        }
    }
    Ok(format)
}

/// Most entries one `?format=json` listing describes.
pub const LISTING_ENTRIES_MAX: u64 = 1 << 16;

/// The JSON description of what `cap` names: a file's size, or a directory's entries, each
/// with its kind, mode, size (files) or entry count (directories), and capability.
fn describe(
    store: &Store,
    cap: &ReadCap,
    root: &crate::object::format::Node,
) -> Result<serde_json::Value, String> {
    if root.kind == NodeKind::File {
        return Ok(serde_json::json!({ "kind": "file", "size": root.total }));
    }
    if root.total > LISTING_ENTRIES_MAX {
        return Err(format!(
            "the directory has {} entries, more than the {LISTING_ENTRIES_MAX} a listing holds; \
             ask for ?format=tar",
            root.total
        ));
    }
    let reader = Reader::new(store);
    let mut entries = Vec::new();
    for entry in reader.list_dir(cap).map_err(|e| e.to_string())? {
        let node = reader.check_entry(&entry).map_err(|e| e.to_string())?;
        let mut described = serde_json::json!({
            "name": entry.name,
            "kind": crate::object::read::kind_name(node.kind),
            "mode": entry.mode,
            "cap": Capability::Read(entry.cap).to_string(),
        });
        match entry.kind {
            EntryKind::File => described["size"] = node.total.into(),
            EntryKind::Directory => described["entries"] = node.total.into(),
        }
        entries.push(described);
    }
    Ok(serde_json::json!({ "kind": "directory", "entries": entries }))
}

/// Waits (bounded) for a turn to stream a body; `503` when none comes.
async fn stream_turn(state: &ApiState) -> Result<tokio::sync::OwnedSemaphorePermit, Response> {
    match tokio::time::timeout(STREAM_WAIT_MAX, state.streams.clone().acquire_owned()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(fail(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many downloads are in progress; try again shortly",
        )),
    }
}

/// A body fed, piece by piece, from a blocking writer on the other end of `receiving`.
fn piece_body(receiving: mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Body {
    Body::from_stream(futures_util::stream::unfold(
        receiving,
        |mut receiving| async move { receiving.recv().await.map(|piece| (piece, receiving)) },
    ))
}

/// Runs `write` on a blocking thread into a response body, once its turn among
/// [`API_STREAMS_MAX`] comes. A failure ends the body early, so the client sees it.
async fn stream_body(
    state: &ApiState,
    write: impl FnOnce(&Store, &mut PipeWriter) -> Result<(), String> + Send + 'static,
) -> Result<Body, Response> {
    // A few MiB per body being streamed, and at most API_STREAMS_MAX at once: the others
    // wait their turn (bounded), holding nothing but their connection.
    let permit = stream_turn(state).await?;
    let (pieces, receiving) = mpsc::channel(RESPONSE_PIECES);
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut out = PipeWriter {
            pieces: pieces.clone(),
        };
        if let Err(e) = write(&store, &mut out) {
            tracing::warn!(%e, "a get failed while streaming");
            let _ = pieces.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    Ok(piece_body(receiving))
}

/// Streams the directory `cap` as a tar stream (without its end-of-archive blocks if it
/// fails).
async fn get_tar(state: &ApiState, cap: ReadCap) -> Response {
    let body = stream_body(state, move |store, out| {
        let out = std::io::BufWriter::with_capacity(crate::limits::CHUNK_PLAINTEXT_BYTES_MAX, out);
        tarball::write_tar(&Reader::new(store), &cap, out)
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
    match body {
        Ok(body) => Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, client::TAR)
            .body(body)
            .unwrap_or_else(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e)),
        Err(busy) => busy,
    }
}

async fn get_object(
    State(state): State<ApiState>,
    Path(text): Path<String>,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
) -> Response {
    let cap = match Capability::from_str(&text).map(|cap| cap.readable()) {
        Ok(Ok(cap)) => cap,
        Ok(Err(e)) | Err(e) => return fail(StatusCode::BAD_REQUEST, e),
    };
    let format = match format_query(query.as_deref()) {
        Ok(format) => format,
        Err(problem) => return fail(StatusCode::BAD_REQUEST, problem),
    };
    if let Err(failed) = fetch_missing(&state, cap.id).await {
        return failed;
    }
    // Check the root before answering, so a bad capability is an error status, not a
    // broken body.
    let store = state.store.clone();
    let check_cap = cap;
    let root = tokio::task::spawn_blocking(move || Reader::new(&store).root(&check_cap)).await;
    let root = match root {
        Ok(Ok(node)) => node,
        Ok(Err(e)) => return fail(StatusCode::UNPROCESSABLE_ENTITY, e),
        Err(e) => return fail(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let total = match (root.kind, format) {
        (_, Format::Json) => {
            let store = state.store.clone();
            let described =
                tokio::task::spawn_blocking(move || describe(&store, &cap, &root)).await;
            return match described {
                Ok(Ok(value)) => axum::Json(value).into_response(),
                Ok(Err(e)) => fail(StatusCode::UNPROCESSABLE_ENTITY, e),
                Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e),
            };
        }
        (NodeKind::Directory, Format::Tar) => return get_tar(&state, cap).await,
        (NodeKind::Directory, Format::Bytes) => {
            return fail(
                StatusCode::UNPROCESSABLE_ENTITY,
                "the capability names a directory: ask for ?format=tar (the tree as a tar \
                 stream) or ?format=json (a listing)",
            )
        }
        (NodeKind::File, Format::Tar) => {
            return fail(
                StatusCode::UNPROCESSABLE_ENTITY,
                "format=tar is for directories; the capability names a file",
            )
        }
        (NodeKind::File, Format::Bytes) => root.total,
    };
    let range = headers
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok());
    let (status, start, end) = match wanted(range, total) {
        Wanted::Whole => (StatusCode::OK, 0, total),
        Wanted::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end),
        Wanted::Unsatisfiable => {
            return Response::builder()
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{total}"))
                .body(Body::from(format!(
                    "the range {:?} starts beyond the file's {total} bytes\n",
                    range.unwrap_or_default()
                )))
                .unwrap_or_else(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e));
        }
    };
    let body = stream_body(&state, move |store, out| {
        Reader::new(store)
            .copy_range(&cap, start..end, out)
            .map(drop)
            .map_err(|e| e.to_string())
    })
    .await;
    let body = match body {
        Ok(body) => body,
        Err(busy) => return busy,
    };
    let mut response = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes")
        .header(header::CONTENT_LENGTH, end - start);
    if status == StatusCode::PARTIAL_CONTENT {
        response = response.header(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{total}", end - 1),
        );
    }
    response
        .body(body)
        .unwrap_or_else(|e| fail(StatusCode::INTERNAL_SERVER_ERROR, e))
}

async fn current_status(state: &ApiState) -> Option<Status> {
    let view = &state.view;
    let peer = crate::ids::encode_base32(&view.me.0);
    super::status::gather(&state.shared, peer, view.listen, view.replication).await
}

async fn status(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Response {
    if let Some(refused) = no_parameters(&query) {
        return refused;
    }
    let Some(status) = current_status(&state).await else {
        return fail(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    };
    let store = state.store.clone();
    let chunks = tokio::task::spawn_blocking(move || store.stats().map(|s| s.chunks)).await;
    let mut value = serde_json::to_value(&status).unwrap_or_default();
    value["chunks_held"] = match chunks {
        Ok(Ok(chunks)) => chunks.into(),
        _ => serde_json::Value::Null,
    };
    let problem = state.store.health();
    value["store"] = serde_json::json!({ "healthy": problem.is_none(), "problem": problem });
    axum::Json(value).into_response()
}

async fn contracts(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Response {
    if let Some(refused) = no_parameters(&query) {
        return refused;
    }
    let Some(boxes) = state.shared.routes.mailboxes() else {
        return fail(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    };
    let (view, now) = (state.view.clone(), state.shared.now());
    let read =
        Inspect::new(move |n: &Negotiator| super::trade::economics(view.me, n, &view.trade, now));
    match boxes.negotiator.send(read).await {
        Ok(economics) => axum::Json(economics).into_response(),
        Err(_) => fail(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"),
    }
}

async fn peers(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Response {
    if let Some(refused) = no_parameters(&query) {
        return refused;
    }
    match gather_peers(&state).await {
        Some(peers) => axum::Json(peers).into_response(),
        None => fail(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down"),
    }
}

/// The negotiator's ledgers, the filter's scores of those and the peers it ranks, then the
/// negotiator's refusals of all of them.
async fn gather_peers(state: &ApiState) -> Option<super::peers::PeersView> {
    use super::peers;
    let boxes = state.shared.routes.mailboxes()?;
    let ledgers = boxes
        .negotiator
        .send(Inspect::new(peers::ledger_peers))
        .await
        .ok()?;
    let read = Inspect::new(move |r: &Reputation| peers::filter_view(r, &ledgers));
    let filter = boxes.reputation.send(read).await.ok()?;
    let known = filter.peer_ids();
    let (view, now) = (state.view.clone(), state.shared.now());
    let read =
        Inspect::new(move |n: &Negotiator| peers::trade_view(view.me, n, &view.trade, now, &known));
    let trade = boxes.negotiator.send(read).await.ok()?;
    Some(peers::peers(state.view.me, filter, trade))
}

/// `from` (the first position wanted, default 1) and `limit` (default and most
/// [`CHAIN_PAGE_RECORDS_MAX`]) from a query string.
fn chain_query(query: Option<&str>) -> Result<(u64, usize), String> {
    let (mut from, mut limit) = (1u64, CHAIN_PAGE_RECORDS_MAX);
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "from" => {
                from = value
                    .parse()
                    .ok()
                    .filter(|from| *from >= 1)
                    .ok_or_else(|| format!("from={value:?} is not a position (1 or more)"))?;
            }
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|limit| (1..=CHAIN_PAGE_RECORDS_MAX).contains(limit))
                    .ok_or_else(|| {
                        format!("limit={value:?} is not a count from 1 to {CHAIN_PAGE_RECORDS_MAX}")
                    })?;
            }
            other => return Err(format!("unknown parameter {other:?} (from, limit)")),
        }
    }
    Ok((from, limit))
}

async fn chain(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Response {
    let (from, limit) = match chain_query(query.as_deref()) {
        Ok(page) => page,
        Err(problem) => return fail(StatusCode::BAD_REQUEST, problem),
    };
    let start = usize::try_from(from.saturating_sub(1)).unwrap_or(usize::MAX);
    let read = Inspect::new(move |r: &Reputation| {
        let own = r.chains.as_ref().map_or(&[][..], |chains| chains.own());
        let page: Vec<crate::chain::Record> = own
            .iter()
            .skip(start)
            .take(limit)
            .map(|r| crate::chain::Record::clone(r))
            .collect();
        (own.len() as u64, page)
    });
    let Some(boxes) = state.shared.routes.mailboxes() else {
        return fail(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    };
    let Ok((length, page)) = boxes.reputation.send(read).await else {
        return fail(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    };
    let records: Vec<serde_json::Value> =
        page.iter().map(crate::chain::json::record_json).collect();
    axum::Json(serde_json::json!({
        "owner": crate::ids::encode_base32(&state.view.me.0),
        "length": length,
        "records": records,
    }))
    .into_response()
}

async fn metrics(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Response {
    if let Some(refused) = no_parameters(&query) {
        return refused;
    }
    let Some(s) = current_status(&state).await else {
        return fail(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down");
    };
    let counters = &state.shared.counters;
    let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::Relaxed);
    let (open, refused) = state.shared.gate_state();
    const GAUGE: &str = "gauge";
    const COUNTER: &str = "counter";
    #[rustfmt::skip]
    let metrics: [(&str, &str, &str, u64); 29] = [
        ("connected_peers", GAUGE, "Peers with a live connection.", s.connected_peers as u64),
        ("known_peers", GAUGE, "Peers in the peer table.", s.known_peers as u64),
        ("routing_table_contacts", GAUGE, "Contacts in the Kademlia routing table.", s.routing_table_contacts as u64),
        ("provider_records", GAUGE, "Provider records kept for other peers.", s.provider_records as u64),
        ("inbound_connections", GAUGE, "Inbound connections admitted and open.", open as u64),
        ("connections_refused_total", COUNTER, "Inbound connections turned away by the limits.", refused),
        ("bytes_held_for_others", GAUGE, "Bytes stored for other peers.", s.bytes_held_for_others),
        ("chunks_owned", GAUGE, "Chunks this node published and keeps replicated.", s.chunks_owned as u64),
        ("chunks_replicated", GAUGE, "Owned chunks with the full replication factor.", s.chunks_replicated as u64),
        ("replicas_placed_total", COUNTER, "Replicas placed on other peers.", s.replicas_placed),
        ("chunks_lost_at_start", GAUGE, "Chunks held for others found missing from the disk at start.", s.chunks_lost_at_start),
        ("fetches_ok_total", COUNTER, "Trees fetched from peers.", s.fetches_ok),
        ("fetches_failed_total", COUNTER, "Tree fetches that failed.", s.fetches_failed),
        ("protocol_faults_total", COUNTER, "Connections dropped for breaking the wire protocol.", s.protocol_faults),
        ("peers_marked", GAUGE, "Peers the reputation filter has seen misbehaving.", s.peers_marked as u64),
        ("frames_dropped_total", COUNTER, "Frames dropped because a connection's send queue was full.", s.frames_dropped),
        ("requests_in_flight", GAUGE, "Requests to peers awaiting an answer.", s.requests_in_flight as u64),
        ("wire_bytes_in_total", COUNTER, "Sealed bytes received.", load(&counters.bytes_in)),
        ("wire_bytes_out_total", COUNTER, "Sealed bytes sent.", load(&counters.bytes_out)),
        ("frames_in_total", COUNTER, "Frames received.", load(&counters.frames_in)),
        ("frames_out_total", COUNTER, "Frames sent.", load(&counters.frames_out)),
        ("replication_factor", GAUGE, "Holders wanted for each owned chunk.", s.replication as u64),
        ("handshakes_failed_total", COUNTER, "Inbound handshakes that failed.", load(&counters.handshakes_failed)),
        ("contracts", GAUGE, "Storage contracts with other peers.", s.trade.contracts as u64),
        ("ledgers", GAUGE, "Peers this node keeps a ledger for.", s.trade.ledgers as u64),
        ("peers_disqualified", GAUGE, "Peers disqualified by this node's audits.", s.trade.peers_disqualified as u64),
        ("audits_passed_total", COUNTER, "Audit challenges our holders passed.", s.trade.audits_passed),
        ("audits_failed_total", COUNTER, "Audit challenges our holders failed.", s.trade.audits_failed),
        ("chain_records", GAUGE, "Records on this node's own chain.", s.chain_records),
    ];
    let mut text = String::new();
    for (name, kind, help, value) in metrics {
        text.push_str(&format!(
            "# HELP cryptosphere_{name} {help}\n# TYPE cryptosphere_{name} {kind}\ncryptosphere_{name} {value}\n"
        ));
    }
    let mailboxes = [
        ("mailbox_depth", "Inputs waiting in each actor's mailbox."),
        (
            "mailbox_depth_max",
            "The most inputs that waited in each actor's mailbox.",
        ),
    ];
    for (name, help) in mailboxes {
        text.push_str(&format!(
            "# HELP cryptosphere_{name} {help}\n# TYPE cryptosphere_{name} gauge\n"
        ));
        for (actor, depth) in &s.mailboxes {
            let value = if name == "mailbox_depth" {
                depth.depth
            } else {
                depth.depth_max
            };
            text.push_str(&format!(
                "cryptosphere_{name}{{actor=\"{actor}\"}} {value}\n"
            ));
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_headers_are_read_as_rfc_9110_says() {
        let part = |start, end| Wanted::Part { start, end };
        let cases = [
            (None, Wanted::Whole),
            (Some("bytes=0-99"), part(0, 100)),
            (Some("bytes=100-"), part(100, 1000)),
            (Some("bytes=-10"), part(990, 1000)),
            (Some("bytes=-5000"), part(0, 1000)),
            (Some("bytes=990-5000"), part(990, 1000)),
            (Some("bytes=999-999"), part(999, 1000)),
            (Some("bytes=1000-"), Wanted::Unsatisfiable),
            (Some("bytes=-0"), Wanted::Unsatisfiable),
            (Some("bytes=5-2"), Wanted::Whole),
            (Some("bytes=0-1,5-6"), Wanted::Whole),
            (Some("items=0-1"), Wanted::Whole),
            (Some("bytes=a-b"), Wanted::Whole),
            (Some("bytes=+1-2"), Wanted::Whole),
            (Some("bytes=99999999999999999999999-"), Wanted::Whole),
        ];
        for (header, expected) in cases {
            assert_eq!(wanted(header, 1000), expected, "{header:?}");
        }
        assert_eq!(wanted(Some("bytes=0-"), 0), Wanted::Unsatisfiable);
        assert_eq!(wanted(Some("bytes=-3"), 0), Wanted::Unsatisfiable);
    }
}
