//! One TCP connection: the Noise handshake, then a reader that opens and decodes frames for
//! the peer host and a writer that encodes and seals the frames the host sends. Whatever
//! goes wrong (garbage, oversized or truncated frames, undecodable messages, a stall) ends
//! the connection and is reported; nothing here decides anything about the protocol above.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::host::{Arrived, DialEnded, LinkEnded, LinkUp, TransportHost};
use super::Shared;
use crate::kernel::{Frame, PeerId, Request, Response, StoreRequest, StoreResponse};
use crate::wire::noise::{Handshake, Opener, Sealer, LENGTH_BYTES};
use crate::wire::{codec, WireError};

/// A handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Once a frame's length has arrived, the rest must follow within this.
const FRAME_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Dialing gives up after this.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);
/// A link the host lets go has this long to write what is queued.
const WRITER_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Frames of one connection waiting for the peer host at once.
pub const FRAMES_IN_HOST_MAX: usize = 32;

/// What the host keeps of a live connection: dropping it closes the connection (after the
/// frames already queued are written).
#[derive(Debug)]
pub struct LinkHandle {
    pub conn: u64,
    /// Frames to send, each with the bytes it is charged against `queued`.
    pub frames: mpsc::UnboundedSender<(Frame, u64)>,
    /// Bytes queued and not yet written; the host sends no more past its budget.
    pub queued: Arc<std::sync::atomic::AtomicU64>,
    pub _kill: oneshot::Sender<()>,
}

/// Puts a connection's event or frame in the transport's mailbox, counted in its depth.
fn tell<M>(shared: &Shared, host: &Addr<TransportHost>, message: M)
where
    M: actix::Message + Send + 'static,
    M::Result: Send,
    TransportHost: actix::Handler<M>,
{
    shared.routes.entered(crate::kernel::ActorKind::Transport);
    host.do_send(message);
}

async fn read_handshake_message(stream: &mut TcpStream) -> Result<Vec<u8>, WireError> {
    let mut prefix = [0u8; 2];
    stream
        .read_exact(&mut prefix)
        .await
        .map_err(|_| WireError::Truncated("the handshake stopped early"))?;
    let len = u16::from_be_bytes(prefix) as usize;
    if len > crate::wire::HANDSHAKE_MESSAGE_BYTES_MAX {
        return Err(WireError::HandshakeTooLarge(len));
    }
    let mut message = vec![0u8; len];
    stream
        .read_exact(&mut message)
        .await
        .map_err(|_| WireError::Truncated("a handshake message stopped early"))?;
    Ok(message)
}

async fn handshake(
    stream: &mut TcpStream,
    shared: &Shared,
    initiator: bool,
) -> Result<(Sealer, Opener, PeerId), WireError> {
    let mut state = Handshake::new(&shared.noise, initiator)?;
    while !state.is_finished() {
        if state.my_turn() {
            let message = state.write()?;
            let mut framed = (message.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&message);
            stream
                .write_all(&framed)
                .await
                .map_err(|e| WireError::Handshake(e.to_string()))?;
        } else {
            let message = read_handshake_message(stream).await?;
            state.read(&message)?;
        }
    }
    state.finish(shared.frame_bytes_max)
}

/// Bytes of read buffer a connection keeps between frames; a larger one (after a large
/// frame) is given back.
const READ_BUFFER_KEPT_BYTES: usize = 1 << 20;

/// Reads one frame and its size on the wire: `Ok(None)` on a clean end between frames.
/// `sealed` is the connection's read buffer, reused from frame to frame.
async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
    opener: &mut Opener,
    sealed: &mut Vec<u8>,
) -> Result<Option<(Frame, usize)>, WireError> {
    let mut prefix = [0u8; LENGTH_BYTES];
    if reader.read_exact(&mut prefix).await.is_err() {
        return Ok(None);
    }
    let len = opener.announced(prefix)?;
    // The buffer grows as bytes arrive, so an announced length costs nothing until sent.
    sealed.clear();
    if sealed.capacity() > READ_BUFFER_KEPT_BYTES {
        sealed.shrink_to(READ_BUFFER_KEPT_BYTES);
    }
    let read = tokio::time::timeout(
        FRAME_BODY_TIMEOUT,
        (&mut *reader).take(len as u64).read_to_end(sealed),
    )
    .await;
    match read {
        Ok(Ok(n)) if n == len => {}
        Ok(_) => return Err(WireError::Truncated("the connection ended inside a frame")),
        Err(_) => return Err(WireError::Truncated("a frame stalled before its end")),
    }
    let plain = opener.open(sealed)?;
    Ok(Some((codec::decode(&plain)?, LENGTH_BYTES + len)))
}

/// Hashes the chunk a frame carries here, on the connection's thread, so the peer's actors
/// check it against its id without hashing it again on theirs.
fn hash_ahead(frame: Frame) -> Frame {
    match frame {
        Frame::Response {
            id,
            body: Response::Store(StoreResponse::Chunk { payload }),
        } => Frame::Response {
            id,
            body: Response::Store(StoreResponse::Chunk {
                payload: payload.hash_ahead(),
            }),
        },
        Frame::Request {
            id,
            body:
                Request::Store(StoreRequest::Store {
                    chunk,
                    payload,
                    announce,
                }),
        } => Frame::Request {
            id,
            body: Request::Store(StoreRequest::Store {
                chunk,
                payload: payload.hash_ahead(),
                announce,
            }),
        },
        other => other,
    }
}

static NEXT_CONN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Why a dial is made: for a known peer (with the host's attempt number), or for whoever
/// listens at a bootstrap address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DialFor {
    pub peer: PeerId,
    pub attempt: u64,
}

/// Runs a connection to its end. `dialed`: the address we dialed (we are the initiator);
/// `expect`: the peer we dialed it for, if any.
pub async fn run(
    mut stream: TcpStream,
    remote: SocketAddr,
    dialed: Option<SocketAddr>,
    expect: Option<DialFor>,
    shared: Arc<Shared>,
    host: Addr<TransportHost>,
) {
    let _ = stream.set_nodelay(true);
    let outcome = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        handshake(&mut stream, &shared, dialed.is_some()),
    )
    .await;
    let (mut sealer, mut opener, peer) = match outcome {
        Ok(Ok(session)) => session,
        failed => {
            let reason = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => "the handshake timed out".to_string(),
            };
            tracing::info!(%remote, %reason, "handshake failed; connection dropped");
            if dialed.is_none() {
                shared.strike(remote.ip(), shared.now());
                shared
                    .counters
                    .handshakes_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            if let Some(addr) = dialed {
                tell(
                    &shared,
                    &host,
                    DialEnded {
                        addr,
                        expect,
                        wrong_peer: false,
                    },
                );
            }
            return;
        }
    };
    if expect.is_some_and(|e| e.peer != peer) {
        // Whoever listens there now is not who we were told: hang up, and let the host
        // forget that address for the peer we wanted.
        tracing::info!(%remote, ?peer, "dialed the wrong peer; connection dropped");
        tell(
            &shared,
            &host,
            DialEnded {
                addr: remote,
                expect,
                wrong_peer: true,
            },
        );
        return;
    }
    let conn = NEXT_CONN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (frames, mut outgoing) = mpsc::unbounded_channel::<(Frame, u64)>();
    let queued = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (kill, mut killed) = oneshot::channel::<()>();
    let (writer_failed, mut write_failure) = oneshot::channel::<()>();
    let (mut reader, mut writer) = stream.into_split();
    tell(
        &shared,
        &host,
        LinkUp {
            peer,
            dialed,
            handle: LinkHandle {
                conn,
                frames,
                queued: queued.clone(),
                _kill: kill,
            },
        },
    );
    // When a frame last went out or came in (microseconds since the node started).
    let last_activity = Arc::new(std::sync::atomic::AtomicU64::new(shared.now().micros()));
    let stats = shared.clone();
    let active_at = last_activity.clone();
    let writing = tokio::spawn(async move {
        let mut buffer = Vec::new();
        while let Some((frame, charged)) = outgoing.recv().await {
            buffer.clear();
            let sealed = codec::encode(&frame).and_then(|plain| sealer.seal(&plain, &mut buffer));
            let written = match sealed {
                Ok(()) => writer.write_all(&buffer).await.is_ok(),
                Err(e) => {
                    // The session's nonces may have moved: the link cannot go on.
                    tracing::warn!(%e, "a frame could not be sealed; connection dropped");
                    false
                }
            };
            queued.fetch_sub(charged, std::sync::atomic::Ordering::Relaxed);
            if !written {
                let _ = writer_failed.send(());
                return;
            }
            stats.counters.add_out(buffer.len() as u64);
            active_at.store(stats.now().micros(), std::sync::atomic::Ordering::Relaxed);
        }
        // The host let the link go: every frame it queued has been written whole.
        let _ = writer.shutdown().await;
    });
    // At most this many of this connection's frames wait for the peer host at once: a peer
    // that sends faster than the node takes its frames in is simply read more slowly.
    let in_host = Arc::new(tokio::sync::Semaphore::new(FRAMES_IN_HOST_MAX));
    let mut sealed = Vec::new();
    let (fault, killed_by_host) = loop {
        // A connection that carries no frame either way for `idle_timeout` is closed (and
        // dialed again when there is something to send): idle ones cannot hold every slot.
        let idle = || shared.since(last_activity.load(std::sync::atomic::Ordering::Relaxed));
        let idle_left = shared.idle_timeout.saturating_sub(idle());
        let next = tokio::select! {
            frame = read_frame(&mut reader, &mut opener, &mut sealed) => frame,
            _ = &mut killed => break (None, true),
            _ = &mut write_failure => break (None, false),
            _ = tokio::time::sleep(idle_left) => {
                if idle() >= shared.idle_timeout {
                    tracing::debug!(?peer, "idle connection closed");
                    break (None, false);
                }
                continue;
            }
        };
        match next {
            Ok(Some((frame, size))) => {
                shared.counters.add_in(size as u64);
                last_activity.store(shared.now().micros(), std::sync::atomic::Ordering::Relaxed);
                let frame = hash_ahead(frame);
                let Ok(permit) = in_host.clone().acquire_owned().await else {
                    break (None, false);
                };
                tell(
                    &shared,
                    &host,
                    Arrived {
                        from: peer,
                        frame,
                        _permit: permit,
                    },
                );
            }
            Ok(None) => break (None, false),
            Err(e) => {
                tracing::info!(%remote, ?peer, %e, "peer broke the protocol; connection dropped");
                shared.strike(remote.ip(), shared.now());
                break (Some(e.fault()), false);
            }
        }
    };
    if killed_by_host {
        // Let the writer finish what it has (it ends once its queue is empty), so the peer
        // never sees a frame cut off by us.
        let _ = tokio::time::timeout(WRITER_DRAIN_TIMEOUT, writing).await;
    } else {
        writing.abort();
    }
    tell(&shared, &host, LinkEnded { peer, conn, fault });
}

/// Dials `addr` (for `expect`, if known) and runs the connection.
pub async fn dial(
    addr: SocketAddr,
    expect: Option<DialFor>,
    shared: Arc<Shared>,
    host: Addr<TransportHost>,
) {
    match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => run(stream, addr, Some(addr), expect, shared, host).await,
        _ => {
            tracing::debug!(%addr, "dial failed");
            tell(
                &shared,
                &host,
                DialEnded {
                    addr,
                    expect,
                    wrong_peer: false,
                },
            );
        }
    }
}
