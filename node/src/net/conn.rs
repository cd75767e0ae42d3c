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

use super::host::{Arrived, DialEnded, LinkEnded, LinkUp, PeerHost};
use super::Shared;
use crate::kernel::{Frame, PeerId, Request, Response};
use crate::wire::noise::{Handshake, Opener, Sealer, LENGTH_BYTES};
use crate::wire::{codec, WireError};

/// A handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Once a frame's length has arrived, the rest must follow within this.
const FRAME_BODY_TIMEOUT: Duration = Duration::from_secs(60);
/// Dialing gives up after this.
pub const DIAL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the host keeps of a live connection: dropping it closes the connection.
#[derive(Debug)]
pub struct LinkHandle {
    pub conn: u64,
    pub frames: mpsc::UnboundedSender<Frame>,
    pub _kill: oneshot::Sender<()>,
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
            body: Response::Chunk { payload },
        } => Frame::Response {
            id,
            body: Response::Chunk {
                payload: payload.hash_ahead(),
            },
        },
        Frame::Request {
            id,
            body:
                Request::Store {
                    chunk,
                    payload,
                    announce,
                },
        } => Frame::Request {
            id,
            body: Request::Store {
                chunk,
                payload: payload.hash_ahead(),
                announce,
            },
        },
        other => other,
    }
}

static NEXT_CONN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Runs a connection to its end. `dialed`: the address we dialed (we are the initiator);
/// `expect`: the peer we dialed it for, if any.
pub async fn run(
    mut stream: TcpStream,
    remote: SocketAddr,
    dialed: Option<SocketAddr>,
    expect: Option<PeerId>,
    shared: Arc<Shared>,
    host: Addr<PeerHost>,
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
                host.do_send(DialEnded { addr, expect });
            }
            return;
        }
    };
    if expect.is_some_and(|e| e != peer) {
        // Whoever listens there now is someone else; the link is still good.
        host.do_send(DialEnded {
            addr: remote,
            expect,
        });
    }
    let conn = NEXT_CONN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (frames, mut outgoing) = mpsc::unbounded_channel::<Frame>();
    let (kill, mut killed) = oneshot::channel::<()>();
    let (mut reader, mut writer) = stream.into_split();
    host.do_send(LinkUp {
        peer,
        dialed,
        handle: LinkHandle {
            conn,
            frames,
            _kill: kill,
        },
    });
    let stats = shared.clone();
    let writing = tokio::spawn(async move {
        let mut buffer = Vec::new();
        while let Some(frame) = outgoing.recv().await {
            buffer.clear();
            let sealed = codec::encode(&frame).and_then(|plain| sealer.seal(&plain, &mut buffer));
            if let Err(e) = sealed {
                tracing::warn!(%e, "a frame could not be sent");
                continue;
            }
            if writer.write_all(&buffer).await.is_err() {
                break;
            }
            stats.counters.add_out(buffer.len() as u64);
        }
        let _ = writer.shutdown().await;
    });
    let mut sealed = Vec::new();
    let fault = loop {
        let next = tokio::select! {
            frame = read_frame(&mut reader, &mut opener, &mut sealed) => frame,
            _ = &mut killed => break None,
        };
        match next {
            Ok(Some((frame, size))) => {
                shared.counters.add_in(size as u64);
                let frame = hash_ahead(frame);
                host.do_send(Arrived { from: peer, frame });
            }
            Ok(None) => break None,
            Err(e) => {
                tracing::info!(%remote, ?peer, %e, "peer broke the protocol; connection dropped");
                shared.strike(remote.ip(), shared.now());
                break Some(e.fault());
            }
        }
    };
    writing.abort();
    host.do_send(LinkEnded { peer, conn, fault });
}

/// Dials `addr` (for `expect`, if known) and runs the connection.
pub async fn dial(
    addr: SocketAddr,
    expect: Option<PeerId>,
    shared: Arc<Shared>,
    host: Addr<PeerHost>,
) {
    match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => run(stream, addr, Some(addr), expect, shared, host).await,
        _ => {
            tracing::debug!(%addr, "dial failed");
            host.do_send(DialEnded { addr, expect });
        }
    }
}
