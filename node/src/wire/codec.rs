//! The plaintext of a frame: the protocol version, then the kernel's `Frame` in postcard
//! (serde's compact binary format: varint integers and lengths, enum variants by index).
//! Decoding is strict: an unknown version, an unknown variant, a short or over-long body,
//! bytes left over, or an integer in more varint bytes than it needs (so every message has
//! exactly one encoding) are all errors.

use super::{WireError, VERSION};
use crate::kernel::Frame;

/// Encodes `frame` as a frame plaintext.
pub fn encode(frame: &Frame) -> Result<Vec<u8>, WireError> {
    let mut out = vec![VERSION];
    postcard::to_io(frame, &mut out).map_err(|e| WireError::Unencodable(e.to_string()))?;
    Ok(out)
}

/// Bytes of `frame`'s plaintext (the version byte and the postcard body): what the frame
/// limit counts. Fails only for a frame that cannot travel (a synthetic payload).
pub fn plaintext_len(frame: &Frame) -> Result<u64, WireError> {
    let mut counter = Counter(0);
    postcard::to_io(frame, &mut counter).map_err(|e| WireError::Unencodable(e.to_string()))?;
    Ok(1 + counter.0 as u64)
}

/// Decodes a frame plaintext.
pub fn decode(bytes: &[u8]) -> Result<Frame, WireError> {
    let (&version, body) = bytes
        .split_first()
        .ok_or(WireError::Truncated("an empty frame has no version"))?;
    if version != VERSION {
        return Err(WireError::Version(version));
    }
    let (frame, rest) = postcard::take_from_bytes::<Frame>(body).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => {
            WireError::Truncated("the message ends before its last field")
        }
        other => WireError::Undecodable(other.to_string()),
    })?;
    if !rest.is_empty() {
        return Err(WireError::Undecodable(format!(
            "{} bytes follow the message",
            rest.len()
        )));
    }
    // postcard accepts over-long varints, which only ever lengthen a message: a message is
    // in its one canonical form exactly when re-encoding it takes as many bytes.
    let mut counter = Counter(0);
    postcard::to_io(&frame, &mut counter).map_err(|e| WireError::Undecodable(e.to_string()))?;
    if counter.0 != body.len() {
        return Err(WireError::Undecodable(
            "an integer is encoded in more bytes than it needs".into(),
        ));
    }
    Ok(frame)
}

/// Counts bytes written.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Payload, Request, Response, RouteRequest, StoreRequest, StoreResponse};
    use crate::ChunkId;

    /// The examples of `docs/wire-protocol.md`, byte for byte.
    #[test]
    fn documented_examples_hold() {
        let hello = Frame::Request {
            id: 5,
            body: Request::Route(RouteRequest::Hello {
                listen: Some("127.0.0.1:7420".parse().unwrap()),
            }),
        };
        assert_eq!(
            encode(&hello).unwrap(),
            [2, 0, 5, 0, 0, 1, 0, 127, 0, 0, 1, 0xfc, 0x39]
        );
        let v6 = Frame::Request {
            id: 300,
            body: Request::Route(RouteRequest::Hello {
                listen: Some("[::1]:1".parse().unwrap()),
            }),
        };
        let mut expected = vec![2, 0, 0xac, 0x02, 0, 0, 1, 1];
        expected.extend_from_slice(&[0; 15]);
        expected.extend_from_slice(&[1, 1]);
        assert_eq!(encode(&v6).unwrap(), expected);
        let chunk = Frame::Response {
            id: 5,
            body: Response::Store(StoreResponse::Chunk {
                payload: Payload::Bytes(vec![0xaa; 3]),
            }),
        };
        assert_eq!(
            encode(&chunk).unwrap(),
            [2, 1, 5, 1, 1, 3, 0xaa, 0xaa, 0xaa]
        );
        let refused = Frame::Response {
            id: 0,
            body: Response::Refused(crate::kernel::Refusal::TooLarge),
        };
        assert_eq!(encode(&refused).unwrap(), [2, 1, 0, 4, 3]);
    }

    #[test]
    fn frames_round_trip_and_strays_are_refused() {
        let frames = [
            Frame::Request {
                id: 7,
                body: Request::Store(StoreRequest::Fetch {
                    chunk: ChunkId([3; 32]),
                }),
            },
            Frame::Response {
                id: u64::MAX,
                body: Response::Store(StoreResponse::Chunk {
                    payload: Payload::Bytes(vec![9; 300]),
                }),
            },
        ];
        for frame in frames {
            let bytes = encode(&frame).unwrap();
            assert_eq!(decode(&bytes).unwrap(), frame);
            assert_eq!(plaintext_len(&frame).unwrap(), bytes.len() as u64);
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(matches!(decode(&longer), Err(WireError::Undecodable(_))));
            assert!(matches!(
                decode(&bytes[..bytes.len() - 1]),
                Err(WireError::Truncated(_))
            ));
            let mut other = bytes.clone();
            other[0] = 1;
            assert_eq!(decode(&other), Err(WireError::Version(1)));
        }
        assert!(decode(&[]).is_err());
        // Store protocol (1), Fetch (1), with id 1 written as an over-long varint.
        let mut overlong = vec![VERSION, 0, 0x81, 0x00, 1, 1];
        overlong.extend_from_slice(&[3; 32]);
        assert!(matches!(decode(&overlong), Err(WireError::Undecodable(_))));
        let synthetic = Frame::Response {
            id: 1,
            body: Response::Store(StoreResponse::Chunk {
                payload: Payload::Synthetic { len: 3, seed: 1 },
            }),
        };
        assert!(matches!(encode(&synthetic), Err(WireError::Unencodable(_))));
    }
}
