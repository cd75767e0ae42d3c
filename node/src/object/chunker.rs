//! Content-defined chunking with FastCDC (2020), so that an edit in one place moves only the
//! boundaries near it. No chunk exceeds [`CDC_MAX_BYTES`] (1 MiB).

use std::io::Read;

use fastcdc::v2020::StreamCDC;

use crate::limits::{CDC_AVG_BYTES, CDC_MAX_BYTES, CDC_MIN_BYTES};

/// Splits a byte stream into chunks; each item is one chunk's plaintext.
pub fn chunks<R: Read>(source: R) -> impl Iterator<Item = std::io::Result<Vec<u8>>> {
    StreamCDC::new(source, CDC_MIN_BYTES, CDC_AVG_BYTES, CDC_MAX_BYTES).map(|item| {
        item.map(|chunk| chunk.data).map_err(|e| match e {
            fastcdc::v2020::Error::IoError(io) => io,
            other => std::io::Error::other(other.to_string()),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_input_and_respect_the_maximum() {
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i * 2654435761) as u8).collect();
        let mut joined = Vec::new();
        for chunk in chunks(&data[..]) {
            let chunk = chunk.unwrap();
            assert!(chunk.len() <= CDC_MAX_BYTES);
            assert!(!chunk.is_empty());
            joined.extend_from_slice(&chunk);
        }
        assert_eq!(joined, data);
        assert_eq!(chunks(&[][..]).count(), 0);
    }
}
