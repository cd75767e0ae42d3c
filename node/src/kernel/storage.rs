//! The store actor: the chunk store behind an actor. It keeps our own chunks and the chunks
//! other peers asked us to keep, within a quota, and accounts for the bytes held for others.
//! Real payloads go to a [`Store`] (memory or RocksDB, checked against their ids); synthetic
//! ones (simulator only) are kept as their descriptors.

use std::collections::BTreeMap;

use super::content::payload_matches;
use super::{
    ActorKind, Context, Event, Input, Local, Observation, Payload, Refusal, Request, Response,
};
use crate::ids::ChunkId;
use crate::limits::CHUNK_STORED_BYTES_MAX;
use crate::store::Store;

/// The store actor.
#[derive(Debug)]
pub struct StoreActor {
    check_chunks_max: usize,
    synthetic_payloads: bool,
    store: Store,
    synthetic: BTreeMap<ChunkId, (u32, u64)>,
    /// Chunks held for other peers, with their sizes.
    for_others: BTreeMap<ChunkId, u64>,
    for_others_bytes: u64,
    quota_bytes: u64,
}

impl StoreActor {
    /// `synthetic_payloads`: accept payloads that are descriptors (simulator only).
    pub fn new(
        store: Store,
        quota_bytes: u64,
        check_chunks_max: usize,
        synthetic_payloads: bool,
    ) -> StoreActor {
        StoreActor {
            check_chunks_max,
            synthetic_payloads,
            store,
            synthetic: BTreeMap::new(),
            for_others: BTreeMap::new(),
            for_others_bytes: 0,
            quota_bytes,
        }
    }

    /// Bytes held for other peers.
    pub fn bytes_for_others(&self) -> u64 {
        self.for_others_bytes
    }

    pub fn holds(&self, chunk: &ChunkId) -> bool {
        self.synthetic.contains_key(chunk) || self.store.contains(chunk).unwrap_or(false)
    }

    fn read(&self, chunk: &ChunkId) -> Option<Payload> {
        if let Some((len, seed)) = self.synthetic.get(chunk) {
            return Some(Payload::Synthetic {
                len: *len,
                seed: *seed,
            });
        }
        // What this actor reads goes to other peers (served, or placed), and they check it
        // against its id.
        self.store.get_for_peer(chunk).ok().map(Payload::Bytes)
    }

    /// Keeps a payload already checked against its id (by the caller: hashing twice would
    /// halve what a node can take in).
    fn keep(
        &mut self,
        ctx: &mut Context<'_>,
        chunk: ChunkId,
        payload: Payload,
    ) -> Result<(), Refusal> {
        match payload {
            Payload::Synthetic { len, seed } => {
                self.synthetic.insert(chunk, (len, seed));
            }
            Payload::Bytes(bytes) => {
                self.store
                    .put_trusted(chunk, bytes)
                    .map_err(|_| Refusal::Unavailable)?;
            }
            Payload::Hashed(hashed) => {
                self.store
                    .put_trusted(chunk, hashed.into_bytes())
                    .map_err(|_| Refusal::Unavailable)?;
            }
        }
        ctx.event(Event::Holding { chunk, held: true });
        Ok(())
    }

    fn serve(
        &mut self,
        ctx: &mut Context<'_>,
        from: super::PeerId,
        request: Request,
    ) -> Option<Response> {
        Some(match request {
            Request::Store {
                chunk,
                payload,
                announce,
            } => {
                if self.holds(&chunk) {
                    if announce {
                        ctx.local(ActorKind::Transport, Local::Provide { key: chunk });
                    }
                    Response::Stored
                } else if payload.len() > CHUNK_STORED_BYTES_MAX as u64
                    || !payload_matches(&chunk, &payload)
                    || (!self.synthetic_payloads && matches!(payload, Payload::Synthetic { .. }))
                {
                    ctx.observe(from, Observation::Misbehaved);
                    Response::Refused(Refusal::BadChunk)
                } else if self.for_others_bytes + payload.len() > self.quota_bytes {
                    Response::Refused(Refusal::QuotaFull)
                } else {
                    let len = payload.len();
                    match self.keep(ctx, chunk, payload) {
                        Ok(()) => {
                            self.for_others.insert(chunk, len);
                            self.for_others_bytes += len;
                            if announce {
                                ctx.local(ActorKind::Transport, Local::Provide { key: chunk });
                            }
                            Response::Stored
                        }
                        Err(refusal) => Response::Refused(refusal),
                    }
                }
            }
            Request::Fetch { chunk } => match self.read(&chunk) {
                Some(payload) => Response::Chunk { payload },
                None => Response::NotFound,
            },
            Request::Check { chunks } if chunks.len() > self.check_chunks_max => {
                Response::Refused(Refusal::TooLarge)
            }
            Request::Check { chunks } => Response::Holding {
                missing: chunks.into_iter().filter(|c| !self.holds(c)).collect(),
            },
            Request::Hello { .. }
            | Request::Agree(_)
            | Request::Countersign { .. }
            | Request::ChainRange(_)
            | Request::Fork(_)
            | Request::FindNode { .. }
            | Request::GetProviders { .. }
            | Request::AddProvider { .. } => return None,
        })
    }

    pub fn handle(&mut self, ctx: &mut Context<'_>, input: Input) {
        match input {
            Input::Local(Local::Incoming { from, id, body }) => {
                if let Some(body) = self.serve(ctx, from, body) {
                    ctx.local(ActorKind::Transport, Local::Respond { to: from, id, body });
                }
            }
            // The negotiator checked the payload against its id (it built or fetched it).
            Input::Local(Local::KeepOwn { chunk, payload }) if !self.holds(&chunk) => {
                // A failing own store shows up later as a missing chunk; nothing to answer.
                let _ = self.keep(ctx, chunk, payload);
            }
            Input::Local(Local::Read { chunk, tag }) => {
                let payload = self.read(&chunk);
                ctx.local(
                    ActorKind::Negotiator,
                    Local::ReadDone {
                        tag,
                        chunk,
                        payload,
                    },
                );
            }
            _ => {}
        }
    }
}
