//! Content-defined chunking with FastCDC (2020, normalisation level 1), so that an edit in
//! one place moves only the boundaries near it. No chunk exceeds [`CDC_MAX_BYTES`] (1 MiB).
//!
//! Input is read in groups of whole chunks into a reusable buffer and cut in place: a cut
//! looks at most [`CDC_MAX_BYTES`] ahead, so cutting only where that much input (or the end
//! of input) is buffered gives exactly the boundaries of a streaming chunker, without moving
//! the buffer after every chunk.

use std::io::Read;
use std::ops::Range;

use fastcdc::v2020::FastCDC;

use crate::limits::{CDC_AVG_BYTES, CDC_MAX_BYTES, CDC_MIN_BYTES};

/// A run of whole chunks: their bytes, back to back, and where each one lies.
#[derive(Debug, Default)]
pub struct Group {
    pub bytes: Vec<u8>,
    pub chunks: Vec<Range<usize>>,
}

impl Group {
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }
}

/// Cuts a byte stream into chunks, one group at a time.
#[derive(Debug)]
pub struct Chunker<R> {
    source: R,
    /// Input read past the last cut of the previous group.
    carry: Vec<u8>,
    end_of_input: bool,
}

impl<R: Read> Chunker<R> {
    pub fn new(source: R) -> Chunker<R> {
        Chunker {
            source,
            carry: Vec::new(),
            end_of_input: false,
        }
    }

    /// Refills `group` (reusing its buffers) with the next chunks: at least `group_bytes`
    /// of them unless the input ends first. An empty group means the input has ended.
    pub fn next_group(&mut self, group: &mut Group, group_bytes: usize) -> std::io::Result<()> {
        group.bytes.clear();
        group.chunks.clear();
        group.bytes.extend_from_slice(&self.carry);
        self.carry.clear();
        let wanted = group_bytes + CDC_MAX_BYTES;
        while !self.end_of_input && group.bytes.len() < wanted {
            let missing = (wanted - group.bytes.len()) as u64;
            let read = (&mut self.source)
                .take(missing)
                .read_to_end(&mut group.bytes)?;
            if read == 0 {
                self.end_of_input = true;
            }
        }
        let mut start = 0;
        // At least one chunk per group (unless the input has ended), whatever `group_bytes`.
        while start < group.bytes.len() && (start < group_bytes || group.chunks.is_empty()) {
            let remaining = group.bytes.len() - start;
            if remaining < CDC_MAX_BYTES && !self.end_of_input {
                break;
            }
            let cut = cut_point(&group.bytes[start..]);
            group.chunks.push(start..start + cut);
            start += cut;
        }
        self.carry.extend_from_slice(&group.bytes[start..]);
        group.bytes.truncate(start);
        Ok(())
    }
}

/// Length of the chunk at the front of `bytes` (all of `bytes` is input from that point on,
/// or at least [`CDC_MAX_BYTES`] of it).
fn cut_point(bytes: &[u8]) -> usize {
    let window = &bytes[..bytes.len().min(CDC_MAX_BYTES)];
    let (_, cut) =
        FastCDC::new(window, CDC_MIN_BYTES, CDC_AVG_BYTES, CDC_MAX_BYTES).cut(0, window.len());
    assert!(
        cut > 0 && cut <= CDC_MAX_BYTES,
        "FastCDC cut {cut} of {}",
        window.len()
    );
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastcdc::v2020::StreamCDC;

    fn pseudo_random(len: usize) -> Vec<u8> {
        (0..len as u64)
            .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 29) as u8)
            .collect()
    }

    fn all_chunks(data: &[u8], group_bytes: usize) -> Vec<Vec<u8>> {
        let mut chunker = Chunker::new(data);
        let mut group = Group::default();
        let mut out = Vec::new();
        loop {
            chunker.next_group(&mut group, group_bytes).unwrap();
            if group.is_empty() {
                return out;
            }
            out.extend(group.chunks.iter().map(|r| group.bytes[r.clone()].to_vec()));
        }
    }

    #[test]
    fn groups_cut_exactly_where_a_streaming_chunker_does() {
        for len in [0, 1, 100_000, CDC_MAX_BYTES, 5_000_000] {
            let data = pseudo_random(len);
            let streamed: Vec<Vec<u8>> =
                StreamCDC::new(&data[..], CDC_MIN_BYTES, CDC_AVG_BYTES, CDC_MAX_BYTES)
                    .map(|chunk| chunk.unwrap().data)
                    .collect();
            for group_bytes in [1, 300_000, 8 << 20] {
                assert_eq!(
                    all_chunks(&data, group_bytes),
                    streamed,
                    "len {len}, group {group_bytes}"
                );
            }
        }
    }

    #[test]
    fn chunks_respect_the_maximum_even_on_uniform_input() {
        let zeros = vec![0u8; 3 * CDC_MAX_BYTES + 5];
        let chunks = all_chunks(&zeros, 1 << 20);
        assert!(chunks
            .iter()
            .all(|c| !c.is_empty() && c.len() <= CDC_MAX_BYTES));
        assert_eq!(chunks.concat(), zeros);
    }
}
