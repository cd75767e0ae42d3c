//! The wire decoders on hostile bytes (proptest as the fuzzer): frames of every kind round
//! trip through the codec; arbitrary bytes, and single-byte changes of real frames, give an
//! error or a frame (never a panic); sealed frames with any bit flipped are refused; the
//! handshake survives arbitrary messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use cryptosphere::chain::agreement::propose;
use cryptosphere::chain::exchange::RangeRequest;
use cryptosphere::chain::{Outcome, Service, Transaction};
use cryptosphere::kernel::{
    ChainRequest, ChainResponse, Contact, Frame, Payload, PeerId, Refusal, Request, Response,
    RouteRequest, RouteResponse, StoreRequest, StoreResponse,
};
use cryptosphere::wire::codec::{decode, encode};
use cryptosphere::wire::noise::{Handshake, NoiseIdentity, Opener, Sealer};
use cryptosphere::wire::WireError;
use cryptosphere::ChunkId;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

fn request() -> impl Strategy<Value = Request> {
    let id = any::<[u8; 32]>().prop_map(ChunkId);
    let addr = proptest::option::of(
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| SocketAddr::from((ip, port))),
    );
    let hello_addr = addr.clone();
    prop_oneof![
        hello_addr.prop_map(|listen| Request::Route(RouteRequest::Hello { listen })),
        (
            id.clone(),
            proptest::collection::vec(any::<u8>(), 0..2_000),
            any::<bool>()
        )
            .prop_map(|(chunk, bytes, announce)| {
                Request::Store(StoreRequest::Store {
                    chunk,
                    payload: Payload::Bytes(bytes),
                    announce,
                })
            }),
        any::<[u8; 32]>().prop_map(|target| Request::Route(RouteRequest::FindNode {
            target: PeerId(target)
        })),
        id.clone()
            .prop_map(|key| Request::Route(RouteRequest::GetProviders { key })),
        (id.clone(), addr.clone())
            .prop_map(|(key, addr)| Request::Route(RouteRequest::AddProvider { key, addr })),
        id.clone()
            .prop_map(|chunk| Request::Store(StoreRequest::Fetch { chunk })),
        proptest::collection::vec(id, 0..20)
            .prop_map(|chunks| Request::Store(StoreRequest::Check { chunks })),
        (any::<u8>(), any::<u64>()).prop_map(|(seed, bytes)| {
            let tx = Transaction {
                service: Service::ChunkServed,
                bytes,
                creds: 1,
                seconds: 0,
                time: 5,
                outcome: Outcome::Delivered,
                commitment: [seed; 32],
            };
            let key = SigningKey::from_bytes(&[seed; 32]);
            Request::Chain(ChainRequest::Agree(Box::new(propose(
                &key,
                None,
                [seed ^ 1; 32],
                tx,
            ))))
        }),
        any::<[u8; 32]>().prop_map(|half| {
            let mut on_provider_half = [0u8; 64];
            on_provider_half[..32].copy_from_slice(&half);
            Request::Chain(ChainRequest::Countersign { on_provider_half })
        }),
        (any::<[u8; 32]>(), any::<u64>(), any::<u32>()).prop_map(|(owner, from_seq, max)| {
            Request::Chain(ChainRequest::Range(RangeRequest {
                owner,
                from_seq,
                max,
            }))
        }),
    ]
}

fn response() -> impl Strategy<Value = Response> {
    let contact = (any::<[u8; 32]>(), any::<bool>()).prop_map(|(id, listens)| Contact {
        id: PeerId(id),
        addr: listens.then(|| "[::1]:9".parse().unwrap()),
    });
    let contacts = proptest::collection::vec(contact, 0..10);
    prop_oneof![
        contacts
            .clone()
            .prop_map(|peers| Response::Route(RouteResponse::Welcome { peers })),
        contacts
            .clone()
            .prop_map(|peers| Response::Route(RouteResponse::Nodes { peers })),
        (contacts.clone(), contacts).prop_map(|(providers, closer)| {
            Response::Route(RouteResponse::Providers { providers, closer })
        }),
        Just(Response::Route(RouteResponse::Added)),
        Just(Response::Store(StoreResponse::Stored)),
        Just(Response::Refused(Refusal::QuotaFull)),
        Just(Response::Refused(Refusal::NotServed)),
        proptest::collection::vec(any::<u8>(), 0..2_000).prop_map(|bytes| {
            Response::Store(StoreResponse::Chunk {
                payload: Payload::Bytes(bytes),
            })
        }),
        Just(Response::Store(StoreResponse::NotFound)),
        Just(Response::Refused(Refusal::Busy)),
        Just(Response::Chain(ChainResponse::Noted)),
        Just(Response::Chain(ChainResponse::Records(Vec::new()))),
    ]
}

fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<u64>(), request()).prop_map(|(id, body)| Frame::Request { id, body }),
        (any::<u64>(), response()).prop_map(|(id, body)| Frame::Response { id, body }),
    ]
}

fn session() -> (Sealer, Opener) {
    let a = NoiseIdentity::generate(&SigningKey::from_bytes(&[1; 32])).unwrap();
    let b = NoiseIdentity::generate(&SigningKey::from_bytes(&[2; 32])).unwrap();
    let mut i = Handshake::new(&a, true).unwrap();
    let mut r = Handshake::new(&b, false).unwrap();
    r.read(&i.write().unwrap()).unwrap();
    i.read(&r.write().unwrap()).unwrap();
    r.read(&i.write().unwrap()).unwrap();
    let (sealer, _, _) = i.finish(1 << 20).unwrap();
    let (_, opener, _) = r.finish(1 << 20).unwrap();
    (sealer, opener)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_frame_round_trips(frame in frame()) {
        let bytes = encode(&frame).unwrap();
        prop_assert_eq!(decode(&bytes).unwrap(), frame);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..4_000)) {
        let _ = decode(&bytes);
        let mut versioned = vec![1u8];
        versioned.extend_from_slice(&bytes);
        let _ = decode(&versioned);
    }

    #[test]
    fn changed_frames_decode_to_an_error_or_some_frame(frame in frame(), at in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = encode(&frame).unwrap();
        let at = at.index(bytes.len());
        bytes[at] = byte;
        if let Ok(other) = decode(&bytes) {
            // Whatever decodes must encode back to exactly these bytes: no two readings.
            prop_assert_eq!(encode(&other).unwrap(), bytes);
        }
    }

    #[test]
    fn sealed_frames_with_a_flipped_bit_are_refused(frame in frame(), bit in any::<prop::sample::Index>()) {
        let (mut sealer, mut opener) = session();
        let mut sealed = Vec::new();
        sealer.seal(&encode(&frame).unwrap(), &mut sealed).unwrap();
        let body = &mut sealed[4..];
        let bit = bit.index(body.len() * 8);
        body[bit / 8] ^= 1 << (bit % 8);
        prop_assert_eq!(opener.open(body), Err(WireError::Decrypt));
    }

    #[test]
    fn arbitrary_sealed_bytes_and_handshakes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..70_000), prefix in any::<[u8; 4]>()) {
        let (_, mut opener) = session();
        let _ = opener.announced(prefix);
        prop_assert!(opener.open(&bytes).is_err());
        let b = NoiseIdentity::generate(&SigningKey::from_bytes(&[3; 32])).unwrap();
        let mut responder = Handshake::new(&b, false).unwrap();
        let _ = responder.read(&bytes);
        let mut initiator = Handshake::new(&b, true).unwrap();
        let _ = initiator.write().unwrap();
        prop_assert!(initiator.read(&bytes).is_err());
    }
}
