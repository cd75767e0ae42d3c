//! The message vocabulary between peers, one module per protocol: [`route`] (introductions
//! and Kademlia, served by the transport), [`store`] (chunks and audits, served by the store
//! actor), [`chain`] (long-chain certificates, served by the reputation filter) and
//! [`trade`] (storage contracts, served by the negotiator). A [`Frame`] carries
//! one request or answer; the transport routes a request by its outer variant.
//!
//! Every request gets an answer: one of its own protocol, or [`Response::Refused`] with the
//! reason. An actor that does not serve a protocol (chains off, say) refuses with
//! [`Refusal::NotServed`] rather than staying silent. The encoding is postcard
//! (`docs/wire-protocol.md`); changing a variant's order changes the wire version.

pub mod chain;
pub mod route;
pub mod store;
pub mod trade;

use serde::{Deserialize, Serialize};

pub use chain::{ChainRequest, ChainResponse};
pub use route::{RouteRequest, RouteResponse};
pub use store::{Challenge, StoreRequest, StoreResponse};
pub use trade::{Terms, TradeRequest, TradeResponse};

use super::Payload;

/// Why a peer did not do what it was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// Storing it would exceed what the peer gives you (a bigger contract may make room).
    QuotaFull,
    /// The payload does not match the chunk id.
    BadChunk,
    /// The peer's own store failed.
    Unavailable,
    /// The request asks about more than the peer answers at once.
    TooLarge,
    /// This peer does not run that protocol (chains are off, say).
    NotServed,
    /// The peer is in the middle of something that excludes this; ask again later.
    Busy,
    /// The request is malformed or names someone else (its sender is marked).
    Invalid,
    /// This peer's strategy declines: you have drawn more than it gives, it does not trade
    /// on these terms, or (a store) what it gives others has no room left for the chunk.
    Declined,
}

/// A request one peer makes of another, by protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Route(RouteRequest),
    Store(StoreRequest),
    Chain(ChainRequest),
    Trade(TradeRequest),
}

/// The answer to a [`Request`]: one of the same protocol, or a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Route(RouteResponse),
    Store(StoreResponse),
    Chain(ChainResponse),
    Trade(TradeResponse),
    Refused(Refusal),
}

/// What travels between peers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    Request { id: u64, body: Request },
    Response { id: u64, body: Response },
}

/// Bytes of a frame's header: kind (1), request id (8), body length (4).
pub const FRAME_HEADER_BYTES: u64 = 13;
/// AES-GCM tag a synthetic payload would carry on the wire (real payloads already hold it).
const PAYLOAD_TAG_BYTES: u64 = 16;

/// Bytes a payload occupies on the wire.
fn payload_wire_len(payload: &Payload) -> u64 {
    match payload {
        Payload::Bytes(bytes) => bytes.len() as u64,
        Payload::Hashed(hashed) => hashed.bytes().len() as u64,
        Payload::Synthetic { len, .. } => u64::from(*len) + PAYLOAD_TAG_BYTES,
    }
}

impl Frame {
    /// Size charged against bandwidth in the simulator and against `frame_bytes_max` (a
    /// close estimate of the postcard encoding; the layout is in `docs/scenario-format.md`).
    pub fn encoded_len(&self) -> u64 {
        let body = match self {
            Frame::Request { body, .. } => match body {
                Request::Route(request) => request.body_len(),
                Request::Store(request) => request.body_len(),
                Request::Chain(request) => request.body_len(),
                Request::Trade(request) => request.body_len(),
            },
            Frame::Response { body, .. } => match body {
                Response::Route(response) => response.body_len(),
                Response::Store(response) => response.body_len(),
                Response::Chain(response) => response.body_len(),
                Response::Trade(response) => response.body_len(),
                Response::Refused(_) => 2,
            },
        };
        FRAME_HEADER_BYTES + body
    }

    /// A small stable number for the trace digest.
    pub fn kind_code(&self) -> u8 {
        match self {
            Frame::Request { body, .. } => match body {
                Request::Route(request) => request.kind_code(),
                Request::Store(request) => request.kind_code(),
                Request::Chain(request) => request.kind_code(),
                Request::Trade(request) => request.kind_code(),
            },
            Frame::Response { body, .. } => match body {
                Response::Route(response) => response.kind_code(),
                Response::Store(response) => response.kind_code(),
                Response::Chain(response) => response.kind_code(),
                Response::Trade(response) => response.kind_code(),
                Response::Refused(_) => 13,
            },
        }
    }
}

impl Request {
    /// Is `response` a possible answer to this request? A refusal always is; otherwise it
    /// must be an answer of the same protocol that fits. Anything else is a message of the
    /// wrong kind, and its sender is marked.
    pub fn admits(&self, response: &Response) -> bool {
        match (self, response) {
            (_, Response::Refused(_)) => true,
            (Request::Route(request), Response::Route(response)) => request.admits(response),
            (Request::Store(request), Response::Store(response)) => request.admits(response),
            (Request::Chain(request), Response::Chain(response)) => request.admits(response),
            (Request::Trade(request), Response::Trade(response)) => request.admits(response),
            _ => false,
        }
    }
}
