//! The routing protocol: introductions (Hello/Welcome) and Kademlia's queries for peers and
//! for the providers of a chunk. The transport actor serves it.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::ids::ChunkId;
use crate::kernel::{Contact, PeerId};

/// A routing request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteRequest {
    /// Introduce yourself (and where you listen); the answer carries some of the peers the
    /// other side knows.
    Hello { listen: Option<SocketAddr> },
    /// Which peers do you know closest to `target`?
    FindNode { target: PeerId },
    /// Who provides `key`? (And which peers do you know closest to it?)
    GetProviders { key: ChunkId },
    /// I provide `key`; I listen at `addr`.
    AddProvider {
        key: ChunkId,
        addr: Option<SocketAddr>,
    },
}

/// The answer to a [`RouteRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteResponse {
    /// Some of the peers the answering side knows (answers `Hello`).
    Welcome { peers: Vec<Contact> },
    /// Peers closest to the target of a `FindNode`.
    Nodes { peers: Vec<Contact> },
    /// Providers of a key, and peers closest to it.
    Providers {
        providers: Vec<Contact>,
        closer: Vec<Contact>,
    },
    /// The provider record was taken in.
    Added,
}

impl RouteRequest {
    /// Charged size of the body (variant byte included).
    pub(super) fn body_len(&self) -> u64 {
        match self {
            RouteRequest::Hello { .. } => 1,
            RouteRequest::FindNode { .. } | RouteRequest::GetProviders { .. } => 1 + 32,
            RouteRequest::AddProvider { .. } => 1 + 32 + 1,
        }
    }

    pub(super) fn kind_code(&self) -> u8 {
        match self {
            RouteRequest::Hello { .. } => 1,
            RouteRequest::FindNode { .. } => 9,
            RouteRequest::GetProviders { .. } => 10,
            RouteRequest::AddProvider { .. } => 21,
        }
    }

    pub(super) fn admits(&self, response: &RouteResponse) -> bool {
        use RouteResponse as A;
        match self {
            RouteRequest::Hello { .. } => matches!(response, A::Welcome { .. }),
            RouteRequest::FindNode { .. } => matches!(response, A::Nodes { .. }),
            RouteRequest::GetProviders { .. } => matches!(response, A::Providers { .. }),
            RouteRequest::AddProvider { .. } => matches!(response, A::Added),
        }
    }
}

impl RouteResponse {
    pub(super) fn body_len(&self) -> u64 {
        match self {
            RouteResponse::Welcome { peers } | RouteResponse::Nodes { peers } => {
                1 + 4 + 33 * peers.len() as u64
            }
            RouteResponse::Providers { providers, closer } => {
                1 + 8 + 33 * (providers.len() + closer.len()) as u64
            }
            RouteResponse::Added => 1,
        }
    }

    pub(super) fn kind_code(&self) -> u8 {
        match self {
            RouteResponse::Welcome { .. } => 11,
            RouteResponse::Nodes { .. } => 22,
            RouteResponse::Providers { .. } => 23,
            RouteResponse::Added => 20,
        }
    }
}
