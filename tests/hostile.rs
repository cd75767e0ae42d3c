//! A node under attack keeps serving a well-behaved peer. From 127.0.0.2 an attacker sends
//! a garbage handshake, a frame over the size limit, a truncated frame, an undecodable
//! message, an answer to a request never made, and a flood of connections. Each time the
//! node drops the connection (and marks the peer, when it has an identity to mark), and a
//! fresh peer gets a file from it both while the flood is held open and after it. And a peer
//! that answers fetches with wrong bytes has them refused, and is marked, while the file
//! comes whole from an honest holder. A connection that stays silent is closed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{cli, client_handshake, random_file, wait_until, Launch, Node};
use cryptosphere::kernel::{ChainResponse, Frame, Response};
use cryptosphere::wire::codec;
use cryptosphere::wire::noise::Sealer;

/// A TCP connection from 127.0.0.2, so the flood does not share an address with the
/// well-behaved peers on 127.0.0.1.
fn connect_from_elsewhere(to: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = "127.0.0.2:0".parse().unwrap();
    socket.bind(&from.into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
}

/// A completed handshake with a fresh identity.
fn authenticated(to: SocketAddr, seed: u8) -> (TcpStream, Sealer) {
    let mut stream = connect_from_elsewhere(to);
    let (sealer, _) = client_handshake(&mut stream, [seed; 32]);
    (stream, sealer)
}

/// The node closed the connection (rather than waiting for more).
fn assert_dropped(mut stream: TcpStream, what: &str) {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return,
            // Whatever the node sent before closing (for example its own handshake message).
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("{what}: the node kept the connection open ({e})"),
        }
    }
}

fn sealed(sealer: &mut Sealer, plaintext: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    sealer.seal(plaintext, &mut out).unwrap();
    out
}

fn get_through_fresh_peer(name: &str, a: &Node, cap: &str, content: &[u8], dir: &std::path::Path) {
    let peer = Node::start(
        name,
        &Launch {
            bootstrap: vec![a.listen],
            ..Launch::default()
        },
    );
    wait_until(
        "the fresh peer to meet the target",
        Duration::from_secs(30),
        || peer.status()["known_peers"].as_u64().unwrap() >= 1,
    );
    let out = dir.join(name);
    cli(&[
        "get",
        "--api",
        &peer.url(),
        cap,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(&out).unwrap() == content,
        "{name} got different bytes"
    );
}

#[test]
fn a_node_under_attack_keeps_serving_well_behaved_peers() {
    let work = tempfile::tempdir().unwrap();
    let a = Node::start(
        "target",
        &Launch {
            extra: vec!["--connections-per-ip-max".into(), "8".into()],
            ..Launch::default()
        },
    );
    // A holds the only copy, so a peer that gets the file is served by A.
    let file = work.path().join("file");
    let content = random_file(&file, 3 << 20, 11);
    let cap = cli(&["put", "--api", &a.url(), file.to_str().unwrap()]);

    // A garbage handshake.
    let mut garbage = connect_from_elsewhere(a.listen);
    garbage.write_all(&[0x00, 0x40]).unwrap();
    garbage.write_all(&[0xA5; 64]).unwrap();
    assert_dropped(garbage, "garbage handshake");

    // A frame announcing more than the limit.
    let (mut stream, _) = authenticated(a.listen, 1);
    stream.write_all(&u32::MAX.to_be_bytes()).unwrap();
    assert_dropped(stream, "oversized frame");

    // A truncated frame: 1,000 bytes announced, 10 sent, then the end of the stream.
    let (mut stream, _) = authenticated(a.listen, 2);
    stream.write_all(&1_000u32.to_be_bytes()).unwrap();
    stream.write_all(&[7; 10]).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert_dropped(stream, "truncated frame");

    // A well-sealed frame whose message does not decode.
    let (mut stream, mut sealer) = authenticated(a.listen, 3);
    let frame = sealed(
        &mut sealer,
        &[
            cryptosphere::wire::VERSION,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
            0xff,
        ],
    );
    stream.write_all(&frame).unwrap();
    assert_dropped(stream, "undecodable message");

    // A message of the wrong kind: an answer to a request the node never made.
    let (mut stream, mut sealer) = authenticated(a.listen, 4);
    let answer = Frame::Response {
        id: u64::MAX,
        body: Response::Chain(ChainResponse::Noted),
    };
    let frame = sealed(&mut sealer, &codec::encode(&answer).unwrap());
    stream.write_all(&frame).unwrap();
    assert_dropped(stream, "message of the wrong kind");

    let status = a.status();
    assert!(status["protocol_faults"].as_u64().unwrap() >= 3, "{status}");
    assert_eq!(status["peers_marked"].as_u64().unwrap(), 4, "{status}");
    // The garbage handshake had no identity to mark: its address got the strike.
    let metrics = a.metrics();
    let failed = metrics
        .lines()
        .find_map(|line| line.strip_prefix("cryptosphere_handshakes_failed_total "))
        .unwrap();
    assert!(failed.parse::<u64>().unwrap() >= 1, "{metrics}");

    // A flood: 200 connections from one address, held open while a well-behaved peer
    // joins and gets the file.
    let flood: Vec<TcpStream> = (0..200).map(|_| connect_from_elsewhere(a.listen)).collect();
    wait_until(
        "the flood to be turned away",
        Duration::from_secs(10),
        || {
            a.metrics()
                .lines()
                .find_map(|line| line.strip_prefix("cryptosphere_connections_refused_total "))
                .is_some_and(|count| count.parse::<u64>().unwrap() >= 190)
        },
    );
    get_through_fresh_peer("during", &a, &cap, &content, work.path());
    drop(flood);

    // And after every attack.
    get_through_fresh_peer("after", &a, &cap, &content, work.path());
    let status = a.status();
    assert_eq!(status["fetches_failed"].as_u64().unwrap(), 0, "{status}");
}

/// Answers a node's requests as a liar would: every chunk it is asked for comes back as other
/// bytes. Runs until the node hangs up.
fn serve_lies(mut stream: TcpStream, seed: u8) {
    use cryptosphere::kernel::{
        Payload, Refusal, Request, RouteRequest, RouteResponse, StoreRequest, StoreResponse,
    };
    use cryptosphere::wire::noise::LENGTH_BYTES;
    let (mut sealer, mut opener) = client_handshake(&mut stream, [seed; 32]);
    loop {
        let mut prefix = [0u8; LENGTH_BYTES];
        if stream.read_exact(&mut prefix).is_err() {
            return;
        }
        let len = opener.announced(prefix).unwrap();
        let mut sealed = vec![0u8; len];
        if stream.read_exact(&mut sealed).is_err() {
            return;
        }
        let Frame::Request { id, body } = codec::decode(&opener.open(&sealed).unwrap()).unwrap()
        else {
            continue;
        };
        let answer = match body {
            Request::Route(RouteRequest::Hello { .. }) => {
                Response::Route(RouteResponse::Welcome { peers: Vec::new() })
            }
            Request::Route(RouteRequest::FindNode { .. }) => {
                Response::Route(RouteResponse::Nodes { peers: Vec::new() })
            }
            Request::Route(RouteRequest::GetProviders { .. }) => {
                Response::Route(RouteResponse::Providers {
                    providers: Vec::new(),
                    closer: Vec::new(),
                })
            }
            Request::Route(RouteRequest::AddProvider { .. }) => {
                Response::Route(RouteResponse::Added)
            }
            Request::Store(StoreRequest::Fetch { .. }) => Response::Store(StoreResponse::Chunk {
                payload: Payload::Bytes(vec![0x5a; 4096]),
            }),
            _ => Response::Refused(Refusal::NotServed),
        };
        let frame = sealed_frame(&mut sealer, Frame::Response { id, body: answer });
        if stream.write_all(&frame).is_err() {
            return;
        }
    }
}

fn sealed_frame(sealer: &mut Sealer, frame: Frame) -> Vec<u8> {
    sealed(sealer, &codec::encode(&frame).unwrap())
}

#[test]
fn idle_connections_are_closed() {
    let a = Node::start(
        "target",
        &Launch {
            extra: vec!["--idle-timeout".into(), "2".into()],
            ..Launch::default()
        },
    );
    let (stream, _) = authenticated(a.listen, 30);
    let started = std::time::Instant::now();
    assert_dropped(stream, "idle connection");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed too early"
    );
    assert_eq!(a.status()["protocol_faults"].as_u64().unwrap(), 0);
}

#[test]
fn a_peer_serving_wrong_chunks_is_refused_and_marked() {
    let work = tempfile::tempdir().unwrap();
    // An honest holder with a file, and a fetcher that knows it.
    let holder = Node::start("holder", &Launch::default());
    let file = work.path().join("file");
    let content = random_file(&file, 2 << 20, 12);
    let cap = cli(&["put", "--api", &holder.url(), file.to_str().unwrap()]);
    let fetcher = Node::start(
        "fetcher",
        &Launch {
            bootstrap: vec![holder.listen],
            ..Launch::default()
        },
    );
    // A liar connects to the fetcher, which asks it for chunks like any peer it knows.
    let liar = connect_from_elsewhere(fetcher.listen);
    let serving = std::thread::spawn(move || serve_lies(liar, 21));
    wait_until("the fetcher to know both", Duration::from_secs(30), || {
        fetcher.status()["known_peers"].as_u64().unwrap() >= 2
    });
    let out = work.path().join("got");
    cli(&[
        "get",
        "--api",
        &fetcher.url(),
        &cap,
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        std::fs::read(&out).unwrap() == content,
        "wrong bytes came back"
    );
    let status = fetcher.status();
    assert_eq!(status["peers_marked"].as_u64().unwrap(), 1, "{status}");
    drop(fetcher);
    let _ = serving.join();
}

/// Reads the next frame the node sends on `stream`.
fn read_frame(stream: &mut TcpStream, opener: &mut cryptosphere::wire::noise::Opener) -> Frame {
    use cryptosphere::wire::noise::LENGTH_BYTES;
    let mut prefix = [0u8; LENGTH_BYTES];
    stream.read_exact(&mut prefix).unwrap();
    let mut sealed = vec![0u8; opener.announced(prefix).unwrap()];
    stream.read_exact(&mut sealed).unwrap();
    codec::decode(&opener.open(&sealed).unwrap()).unwrap()
}

/// Sends `body` as request `id` and returns the answer to it (skipping the node's own
/// requests, which a client written from the document may leave unanswered).
fn ask(
    stream: &mut TcpStream,
    (sealer, opener): &mut (Sealer, cryptosphere::wire::noise::Opener),
    id: u64,
    body: cryptosphere::kernel::Request,
) -> Response {
    stream
        .write_all(&sealed_frame(sealer, Frame::Request { id, body }))
        .unwrap();
    loop {
        if let Frame::Response { id: answered, body } = read_frame(stream, opener) {
            assert_eq!(answered, id, "an answer to another request");
            return body;
        }
    }
}

/// What `docs/wire-protocol.md` promises a client written from it alone: the frame limit
/// is the real plaintext length (a `Store` of exactly 2 MiB is answered, one byte more ends
/// the connection); a `Store` whose bytes are not its id is refused and marked even for a
/// chunk the node holds; a `Welcome` names distinct peers with addresses, never the
/// requester nor a banned peer; and a node announces itself as a provider of what it put.
#[test]
fn a_client_written_from_the_wire_document_gets_what_it_promises() {
    use cryptosphere::kernel::{
        Payload, Refusal, Request, RouteRequest, RouteResponse, StoreRequest, StoreResponse,
    };
    let work = tempfile::tempdir().unwrap();
    let a = Node::start("a", &Launch::default());
    let others: Vec<Node> = ["b", "c"]
        .iter()
        .map(|name| {
            Node::start(
                name,
                &Launch {
                    bootstrap: vec![a.listen],
                    ..Launch::default()
                },
            )
        })
        .collect();
    wait_until("a to know b and c", Duration::from_secs(30), || {
        a.status()["known_peers"].as_u64().unwrap() >= 2
    });
    let file = work.path().join("file");
    random_file(&file, 1 << 20, 13);
    let cap = cli(&["put", "--api", &a.url(), file.to_str().unwrap()]);
    let root = cap
        .parse::<cryptosphere::object::Capability>()
        .unwrap()
        .id();
    let a_id = cryptosphere::ids::decode_base32(&a.peer).unwrap();

    // A frame of exactly 2 MiB of plaintext: a Store of 2,097,111 payload bytes (41 bytes of
    // framing with a one-byte id). No chunk is that large: refused as too large, unmarked,
    // and the connection goes on.
    let mut stream = connect_from_elsewhere(a.listen);
    let mut session = client_handshake(&mut stream, [40; 32]);
    let big = vec![0x33u8; 2_097_111];
    let store = Request::Store(StoreRequest::Store {
        chunk: cryptosphere::object::crypto::chunk_id(&big),
        payload: Payload::Bytes(big),
        announce: false,
    });
    let at_limit = codec::encode(&Frame::Request {
        id: 1,
        body: store.clone(),
    })
    .unwrap();
    assert_eq!(at_limit.len(), 2 << 20);
    assert_eq!(
        ask(&mut stream, &mut session, 1, store),
        Response::Refused(Refusal::TooLarge)
    );
    // Still open: a Fetch of the root is answered with its bytes.
    let fetch = Request::Store(StoreRequest::Fetch { chunk: root });
    assert!(matches!(
        ask(&mut stream, &mut session, 2, fetch),
        Response::Store(StoreResponse::Chunk { .. })
    ));
    assert_eq!(a.status()["peers_marked"].as_u64().unwrap(), 0);

    // A Store of the root the node holds, with other bytes: refused, and the sender marked.
    let lie = Request::Store(StoreRequest::Store {
        chunk: root,
        payload: Payload::Bytes(vec![0x44; 1000]),
        announce: true,
    });
    assert_eq!(
        ask(&mut stream, &mut session, 3, lie),
        Response::Refused(Refusal::BadChunk)
    );
    assert_eq!(a.status()["peers_marked"].as_u64().unwrap(), 1);

    // One byte over the limit ends the connection before the frame is read: the node may
    // close it while the rest is still being written (the write then fails: broken pipe).
    let mut over = at_limit.clone();
    over.push(0);
    let _ = stream.write_all(&sealed(&mut session.0, &over));
    assert_dropped(stream, "a frame one byte over the limit");

    // A peer that says where it listens, then breaks the protocol: banned.
    let mut banned = connect_from_elsewhere(a.listen);
    let mut banned_session = client_handshake(&mut banned, [41; 32]);
    let hello = |port: u16| {
        Request::Route(RouteRequest::Hello {
            listen: Some(SocketAddr::from(([127, 0, 0, 2], port))),
        })
    };
    ask(&mut banned, &mut banned_session, 1, hello(9));
    let stray = Frame::Response {
        id: u64::MAX,
        body: Response::Chain(ChainResponse::Noted),
    };
    banned
        .write_all(&sealed_frame(&mut banned_session.0, stray))
        .unwrap();
    assert_dropped(banned, "a stray answer");

    // The requester gives an address too: it must not be named to itself.
    let mut stream = connect_from_elsewhere(a.listen);
    let mut session = client_handshake(&mut stream, [42; 32]);
    let Response::Route(RouteResponse::Welcome { peers }) =
        ask(&mut stream, &mut session, 1, hello(10))
    else {
        panic!("Hello not answered with Welcome");
    };
    let me = ed25519_dalek::SigningKey::from_bytes(&[42; 32])
        .verifying_key()
        .to_bytes();
    let liar = ed25519_dalek::SigningKey::from_bytes(&[41; 32])
        .verifying_key()
        .to_bytes();
    let ids: std::collections::BTreeSet<[u8; 32]> = peers.iter().map(|p| p.id.0).collect();
    assert_eq!(ids.len(), peers.len(), "repeated contacts: {peers:?}");
    assert!(peers.iter().all(|p| p.addr.is_some()), "{peers:?}");
    assert!(!ids.contains(&me), "the requester was named to itself");
    assert!(!ids.contains(&liar), "a banned peer was named");
    for other in &others {
        let id = cryptosphere::ids::decode_base32(&other.peer).unwrap();
        assert!(ids.contains(&id), "{} missing from {peers:?}", other.name);
    }

    // The publisher is a provider of its root, as b (or c) says.
    let mut stream = connect_from_elsewhere(others[0].listen);
    let mut session = client_handshake(&mut stream, [43; 32]);
    let mut id = 0;
    wait_until(
        "the publisher to announce its root",
        Duration::from_secs(60),
        || {
            id += 1;
            let get = Request::Route(RouteRequest::GetProviders { key: root });
            match ask(&mut stream, &mut session, id, get) {
                Response::Route(RouteResponse::Providers { providers, .. }) => {
                    providers.iter().any(|p| p.id.0 == a_id)
                }
                other => panic!("GetProviders answered {other:?}"),
            }
        },
    );
}

/// The HTTP API under load and abuse: a request whose headers never end is cut off, and so
/// is a body that announces 10 GiB and sends 5 bytes (`408`); ranges are served (`206`,
/// `416`); and 200 concurrent GETs of a 50 MiB object all succeed while the node stays under
/// 300 MiB of resident memory.
#[test]
fn the_http_api_has_timeouts_ranges_and_bounded_memory() {
    let work = tempfile::tempdir().unwrap();
    let a = Node::start("api", &Launch::default());
    let file = work.path().join("object");
    let content = random_file(&file, 50 << 20, 51);
    let cap = cli(&["put", "--api", &a.url(), file.to_str().unwrap()]);
    let object = format!("{}/v1/objects/{cap}", a.url());

    // Headers that never end, and a body that stalls: both run while the rest goes on.
    let api = a.api;
    let slow_headers = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(api).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream
            .write_all(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        (
            read.is_ok(),
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    });
    let stalled_body = std::thread::spawn(move || {
        let mut stream = TcpStream::connect(api).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(90)))
            .unwrap();
        stream
            .write_all(
                b"POST /v1/objects HTTP/1.1\r\nHost: x\r\nContent-Length: 10737418240\r\n\r\nhello",
            )
            .unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    });

    // Ranges.
    let response = ureq::get(&object)
        .set("Range", "bytes=1000000-1000099")
        .call()
        .unwrap();
    assert_eq!(response.status(), 206);
    let total = content.len();
    assert_eq!(
        response.header("Content-Range").unwrap(),
        format!("bytes 1000000-1000099/{total}")
    );
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).unwrap();
    assert!(
        body == content[1_000_000..1_000_100],
        "wrong bytes for a range"
    );
    let response = ureq::get(&object).set("Range", "bytes=-10").call().unwrap();
    assert_eq!(response.status(), 206);
    let mut body = Vec::new();
    response.into_reader().read_to_end(&mut body).unwrap();
    assert!(body == content[total - 10..]);
    match ureq::get(&object)
        .set("Range", &format!("bytes={total}-"))
        .call()
    {
        Err(ureq::Error::Status(416, response)) => assert_eq!(
            response.header("Content-Range").unwrap(),
            format!("bytes */{total}")
        ),
        other => panic!("a range past the end: {other:?}"),
    }

    // 200 concurrent GETs of the 50 MiB object, RSS sampled meanwhile.
    let getters: Vec<_> = (0..200)
        .map(|_| {
            let url = object.clone();
            std::thread::spawn(move || {
                let response = ureq::get(&url)
                    .timeout(Duration::from_secs(900))
                    .call()
                    .unwrap();
                let mut reader = response.into_reader();
                let mut buffer = vec![0u8; 1 << 16];
                let mut got = 0usize;
                let mut digest = 0u64;
                loop {
                    let n = reader.read(&mut buffer).unwrap();
                    if n == 0 {
                        break;
                    }
                    digest = digest.wrapping_add(buffer[..n].iter().map(|b| u64::from(*b)).sum());
                    got += n;
                }
                (got, digest)
            })
        })
        .collect();
    let expected_digest = content
        .iter()
        .map(|b| u64::from(*b))
        .fold(0u64, u64::wrapping_add);
    let mut peak = 0u64;
    while getters.iter().any(|g| !g.is_finished()) {
        peak = peak.max(a.rss_bytes());
        std::thread::sleep(Duration::from_millis(100));
    }
    for getter in getters {
        assert_eq!(getter.join().unwrap(), (total, expected_digest));
    }
    println!(
        "peak RSS during 200 concurrent GETs of 50 MiB: {} MiB",
        peak >> 20
    );
    assert!(peak < 300 << 20, "peak RSS {} MiB", peak >> 20);

    let (closed, after, answer) = slow_headers.join().unwrap();
    assert!(
        closed,
        "the connection with unfinished headers was not closed: {answer}"
    );
    assert!(after < Duration::from_secs(50), "closed after {after:?}");
    let answer = stalled_body.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("sent nothing for 30 s"), "{answer}");
}

/// Builds a tar stream in memory from `(path, kind, mode, bytes)` entries, where kind is
/// `'f'` (file), `'d'` (directory) or `'l'` (a symbolic link to `bytes`).
fn tar_of(entries: &[(&str, char, u32, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, mode, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(*mode);
        header.set_mtime(0);
        match kind {
            'f' => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, path, *bytes).unwrap();
            }
            'd' => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_size(0);
                builder
                    .append_data(&mut header, path, std::io::empty())
                    .unwrap();
            }
            _ => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                let target = std::str::from_utf8(bytes).unwrap();
                builder.append_link(&mut header, path, target).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// Writes raw bytes after a tar header by hand (the tar crate refuses to write `..` or an
/// absolute path itself).
fn tar_with_raw_path(path: &str) -> Vec<u8> {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o644);
    header.set_size(1);
    header.set_mtime(0);
    header.set_cksum();
    let mut out = header.as_bytes().to_vec();
    out.push(b'x');
    out.resize(1024, 0);
    out.resize(2048, 0);
    out
}

/// Every file and directory under `root`: relative path, mode bits and (files) bytes.
fn tree_of(root: &std::path::Path) -> Vec<(String, u32, Option<Vec<u8>>)> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let mode = meta.permissions().mode() & 0o7777;
            if meta.is_dir() {
                stack.push(path);
                found.push((name, mode, None));
            } else {
                found.push((name, mode, Some(std::fs::read(&path).unwrap())));
            }
        }
    }
    found.sort();
    found
}

/// Directories go through the API: `put --api DIR` (a tar stream) gives the capability a
/// local `put DIR` gives; `?format=json` lists a directory and describes a file;
/// `?format=tar` streams the tree; `get --api` writes it back with its modes. A tar that
/// holds a link, climbs out with `..`, is absolute, names a path twice or breaks off is
/// refused with `400` naming the entry, and the node goes on serving.
#[test]
fn directories_go_through_the_api_as_tar_streams_and_json_listings() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let a = Node::start("dirs", &Launch::default());
    let tree = work.path().join("tree");
    std::fs::create_dir_all(tree.join("sub/deeper")).unwrap();
    std::fs::create_dir(tree.join("empty")).unwrap();
    let big = random_file(&tree.join("big"), 3 << 20, 61);
    std::fs::write(tree.join("sub/a"), b"hello\n").unwrap();
    std::fs::write(tree.join("sub/deeper/run"), b"#!/bin/sh\n").unwrap();
    let mode = |path: &str, mode: u32| {
        std::fs::set_permissions(tree.join(path), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    mode("sub/a", 0o600);
    mode("sub/deeper/run", 0o755);
    mode("sub", 0o750);
    let tree_text = tree.to_str().unwrap();
    let local = work.path().join("local");
    let local_cap = cli(&["--data-dir", local.to_str().unwrap(), "put", tree_text]);
    let cap = cli(&["put", "--api", &a.url(), tree_text]);
    assert_eq!(cap, local_cap, "put --api DIR and a local put DIR differ");

    // A listing, and a file described.
    let listing = a.api_json(&format!("/v1/objects/{cap}?format=json"));
    assert_eq!(listing["kind"], "directory");
    let entries = listing["entries"].as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["big", "empty", "sub"]);
    assert_eq!(entries[0]["kind"], "file");
    assert_eq!(entries[0]["size"], big.len());
    assert_eq!(entries[0]["mode"], 0o644);
    assert_eq!(entries[1]["entries"], 0);
    assert_eq!(entries[2]["kind"], "directory");
    assert_eq!(entries[2]["mode"], 0o750);
    assert_eq!(entries[2]["entries"], 2);
    let big_cap = entries[0]["cap"].as_str().unwrap();
    let file = a.api_json(&format!("/v1/objects/{big_cap}?format=json"));
    assert_eq!(
        file,
        serde_json::json!({ "kind": "file", "size": big.len() })
    );

    // The tree as a tar stream: each directory before what it holds, modes as put.
    let url = format!("{}/v1/objects/{cap}?format=tar", a.url());
    let response = ureq::get(&url).call().unwrap();
    assert_eq!(response.header("Content-Type"), Some("application/x-tar"));
    let mut archive = tar::Archive::new(response.into_reader());
    let mut seen = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let mode = entry.header().mode().unwrap();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        seen.push((path, mode, bytes.len()));
        if seen.last().unwrap().0 == "big" {
            assert!(bytes == big, "the tar's big file differs");
        }
    }
    let expected = [
        ("big", 0o644, big.len()),
        ("empty/", 0o755, 0),
        ("sub/", 0o750, 0),
        ("sub/a", 0o600, 6),
        ("sub/deeper/", 0o755, 0),
        ("sub/deeper/run", 0o755, 10),
    ];
    let expected: Vec<(String, u32, usize)> = expected
        .iter()
        .map(|(p, m, n)| (p.to_string(), *m, *n))
        .collect();
    assert_eq!(seen, expected);

    // Back out through the CLI, modes and bytes as they went in.
    let out = work.path().join("out");
    cli(&[
        "get",
        "--api",
        &a.url(),
        &cap,
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(tree_of(&out), tree_of(&tree));

    // A tar from another writer ("./" prefixes, directories implied) lands on the same tree.
    let by_hand = tar_of(&[
        ("./", 'd', 0o700, b""),
        ("./big", 'f', 0o644, &big),
        ("./empty/", 'd', 0o755, b""),
        ("./sub/deeper/run", 'f', 0o755, b"#!/bin/sh\n"),
        ("./sub/a", 'f', 0o600, b"hello\n"),
        ("./sub/", 'd', 0o750, b""),
    ]);
    let objects = format!("{}/v1/objects", a.url());
    // The status and the text of a tar body's answer.
    let post = |body: &[u8]| match ureq::post(&objects)
        .set("Content-Type", "application/x-tar")
        .send_bytes(body)
    {
        Ok(response) => (response.status(), response.into_string().unwrap()),
        Err(ureq::Error::Status(status, response)) => (status, response.into_string().unwrap()),
        Err(e) => panic!("posting a tar: {e}"),
    };
    let (status, answer) = post(&by_hand);
    assert_eq!((status, answer.trim()), (201, cap.as_str()));

    // Wrong asks.
    let refused = |url: &str, status: u16, words: &str| match ureq::get(url).call() {
        Err(ureq::Error::Status(got, response)) => {
            let text = response.into_string().unwrap();
            assert_eq!(got, status, "{url}: {text}");
            assert!(text.contains(words), "{url}: {text}");
        }
        other => panic!("{url}: {other:?}"),
    };
    let object = format!("{}/v1/objects/{cap}", a.url());
    refused(&object, 422, "?format=tar");
    refused(
        &format!("{object}?format=zip"),
        400,
        "format=\"zip\" is not tar or json",
    );
    refused(
        &format!("{object}?size=1"),
        400,
        "unknown parameter \"size\"",
    );
    refused(
        &format!("{}/v1/objects/{big_cap}?format=tar", a.url()),
        422,
        "names a file",
    );

    // Bad tar streams, each refused by name.
    let mut truncated = tar_of(&[("f", 'f', 0o644, &big[..100_000])]);
    truncated.truncate(50_000);
    let bad: [(&str, Vec<u8>, &str); 6] = [
        (
            "a link",
            tar_of(&[("l", 'l', 0o777, b"/etc/passwd")]),
            "tar entry \"l\" is a symbolic link",
        ),
        (
            "'..'",
            tar_with_raw_path("../evil"),
            "tar entry \"../evil\" climbs out of the tree",
        ),
        (
            "absolute",
            tar_with_raw_path("/etc/evil"),
            "tar entry \"/etc/evil\" is an absolute path",
        ),
        (
            "a path twice",
            tar_of(&[("x", 'f', 0o644, b"1"), ("x", 'f', 0o644, b"2")]),
            "tar entry \"x\" names a path that an earlier entry already used",
        ),
        (
            "a file where a directory is",
            tar_of(&[("x", 'f', 0o644, b"1"), ("x/y", 'f', 0o644, b"2")]),
            "tar entry \"x/y\" names a path that an earlier entry already used",
        ),
        (
            "a stream that breaks off",
            truncated,
            "cannot read the tar stream",
        ),
    ];
    for (what, body, words) in bad {
        let (status, text) = post(&body);
        assert_eq!(status, 400, "{what}: {text}");
        assert!(text.contains(words), "{what}: {text}");
    }
    // A directory holding a link, through the CLI: refused, the entry named, exit 2.
    std::os::unix::fs::symlink("/etc/passwd", tree.join("link")).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cryptosphere"))
        .args(["put", "--api", &a.url(), tree_text])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("tar entry \"./link\" is a symbolic link")
            || stderr.contains("tar entry \"link\" is a symbolic link"),
        "{stderr}"
    );
    // Still serving.
    let again = ureq::get(&format!("{object}?format=json")).call().unwrap();
    assert_eq!(again.status(), 200);
}
