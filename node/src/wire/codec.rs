//! The plaintext of a frame: the protocol version, then the kernel's `Frame` in postcard
//! (serde's compact binary format: varint integers and lengths, enum variants by index).
//! Decoding is strict: an unknown version, an unknown variant, a short or over-long body, or
//! bytes left over are all errors.

use super::{WireError, VERSION};
use crate::kernel::Frame;

/// Encodes `frame` as a frame plaintext.
pub fn encode(frame: &Frame) -> Result<Vec<u8>, WireError> {
    let mut out = vec![VERSION];
    postcard::to_io(frame, &mut out).map_err(|e| WireError::Unencodable(e.to_string()))?;
    Ok(out)
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
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::{Payload, Request, Response};
    use crate::ChunkId;

    #[test]
    fn frames_round_trip_and_strays_are_refused() {
        let frames = [
            Frame::Request {
                id: 7,
                body: Request::Fetch {
                    chunk: ChunkId([3; 32]),
                },
            },
            Frame::Response {
                id: u64::MAX,
                body: Response::Chunk {
                    payload: Payload::Bytes(vec![9; 300]),
                },
            },
        ];
        for frame in frames {
            let bytes = encode(&frame).unwrap();
            assert_eq!(decode(&bytes).unwrap(), frame);
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(matches!(decode(&longer), Err(WireError::Undecodable(_))));
            assert!(matches!(
                decode(&bytes[..bytes.len() - 1]),
                Err(WireError::Truncated(_))
            ));
            let mut other = bytes.clone();
            other[0] = 2;
            assert_eq!(decode(&other), Err(WireError::Version(2)));
        }
        assert!(decode(&[]).is_err());
        let synthetic = Frame::Response {
            id: 1,
            body: Response::Chunk {
                payload: Payload::Synthetic { len: 3, seed: 1 },
            },
        };
        assert!(matches!(encode(&synthetic), Err(WireError::Unencodable(_))));
    }
}
