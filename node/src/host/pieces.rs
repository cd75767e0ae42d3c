//! A bounded channel of byte pieces between two threads: a `Write` on one side, a `Read` on
//! the other, and an error sent through it is a read error (so a stream that broke off is
//! never mistaken for one that ended).

use std::io::{self, Read, Write};
use std::sync::mpsc::{Receiver, SyncSender};

/// The writing side; dropping it ends the stream.
#[derive(Debug)]
pub struct PieceWriter(SyncSender<io::Result<Vec<u8>>>);

/// The reading side.
#[derive(Debug)]
pub struct PieceReader {
    pieces: Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    taken: usize,
}

/// A channel holding at most `bound` pieces in flight.
pub fn channel(bound: usize) -> (PieceWriter, PieceReader) {
    let (send, receive) = std::sync::mpsc::sync_channel(bound);
    (
        PieceWriter(send),
        PieceReader {
            pieces: receive,
            current: Vec::new(),
            taken: 0,
        },
    )
}

impl PieceWriter {
    /// Ends the stream with `error`, which the reader returns instead of the end.
    pub fn fail(&mut self, error: io::Error) {
        let _ = self.0.send(Err(error));
    }
}

impl Write for PieceWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(Ok(buf.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reader is gone"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for PieceReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.taken == self.current.len() {
            match self.pieces.recv() {
                Ok(piece) => {
                    self.current = piece?;
                    self.taken = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.taken);
        buf[..n].copy_from_slice(&self.current[self.taken..self.taken + n]);
        self.taken += n;
        Ok(n)
    }
}

/// Copies `source` (read on this thread) into `sink` (run on a scoped thread with the
/// reading side), pieces of at most `piece_bytes`, and returns what `sink` returns. A read
/// error of `source` reaches `sink` as its own read error.
pub fn bridge<T: Send>(
    mut source: impl Read,
    piece_bytes: usize,
    sink: impl FnOnce(PieceReader) -> T + Send,
) -> T {
    let (mut writer, reader) = channel(4);
    std::thread::scope(|scope| {
        let sinking = scope.spawn(move || sink(reader));
        let mut buffer = vec![0u8; piece_bytes];
        loop {
            match source.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => {
                    if writer.write_all(&buffer[..n]).is_err() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    writer.fail(e);
                    break;
                }
            }
        }
        drop(writer);
        match sinking.join() {
            Ok(done) => done,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}
