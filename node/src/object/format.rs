//! Byte layout of objects: file manifests and directory trees, each stored as one convergent
//! chunk (see `docs/object-format.md` for the layout written out).
//!
//! A stored object is a clear part (magic, version, links) followed by the sealed body. The
//! links list the ids of the children, so a holder of ids alone can walk, verify, repair and
//! garbage-collect a tree; the keys, names, modes and sizes are inside the sealed body, which
//! also authenticates the clear part as associated data.

use crate::ids::{ChunkId, ChunkKey};
use crate::limits::{
    CHUNK_PLAINTEXT_BYTES_MAX, CHUNK_STORED_BYTES_MAX, NAME_BYTES_MAX, TAG_BYTES, TREE_LEVEL_MAX,
};
use crate::object::capability::ReadCap;
use crate::object::crypto::{self, ConvergenceSecret};

/// First four bytes of every stored object.
pub const OBJECT_MAGIC: [u8; 4] = *b"CSOB";
/// The only object format version this code reads and writes.
pub const OBJECT_VERSION: u8 = 1;
/// Magic, version and link count.
pub const CLEAR_HEADER_BYTES: usize = 4 + 1 + 4;
/// One link: kind byte and chunk id.
pub const LINK_BYTES: usize = 1 + 32;
/// Kind, level, total and entry count at the front of a body.
pub const BODY_HEADER_BYTES: usize = 1 + 1 + 8 + 4;
/// A body entry that refers to a chunk or a lower node: key and covered size.
pub const REF_ENTRY_BYTES: usize = 32 + 8;
/// A directory entry without its name: name length, kind, mode and key.
pub const DIR_ENTRY_FIXED_BYTES: usize = 2 + 1 + 4 + 32;
/// Largest mode a directory entry may carry (permission, setuid, setgid and sticky bits).
pub const MODE_MAX: u32 = 0o7777;

/// Fixed bytes of an object with no entries.
pub const OBJECT_OVERHEAD_BYTES: usize = CLEAR_HEADER_BYTES + BODY_HEADER_BYTES + TAG_BYTES;

/// Most ref entries one object can hold within the chunk limit (14,363).
pub const REF_FANOUT_MAX: usize =
    (CHUNK_STORED_BYTES_MAX - OBJECT_OVERHEAD_BYTES) / (LINK_BYTES + REF_ENTRY_BYTES);

/// What a link points at: a data chunk (a leaf) or another object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LinkKind {
    Data = 0,
    Object = 1,
}

/// A child of an object, readable without any key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub kind: LinkKind,
    pub id: ChunkId,
}

/// Whether a node belongs to a file's manifest tree or a directory's tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NodeKind {
    File = 1,
    Directory = 2,
}

/// What a directory entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum EntryKind {
    File = 1,
    Directory = 2,
}

/// A reference from a node to a data chunk (file leaves) or to a lower node (interior
/// nodes). `covered` is the bytes of file (or the directory entries) under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChildRef {
    pub id: ChunkId,
    pub key: ChunkKey,
    pub covered: u64,
}

/// One entry of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: EntryKind,
    /// Unix mode bits, at most 0o7777.
    pub mode: u32,
    pub cap: ReadCap,
}

/// The entries of a node: refs for file nodes and interior directory nodes, named entries
/// for directory leaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entries {
    Refs(Vec<ChildRef>),
    Dir(Vec<DirEntry>),
}

/// A decoded object. Level 0 is the leaf level; a node at level L > 0 has children at L - 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: NodeKind,
    pub level: u8,
    /// File nodes: bytes of file under this node. Directory nodes: entries under it.
    pub total: u64,
    pub entries: Entries,
}

/// An encoded, encrypted object ready to store.
#[derive(Debug, Clone)]
pub struct SealedObject {
    pub id: ChunkId,
    pub key: ChunkKey,
    pub stored: Vec<u8>,
}

/// What is wrong with a stored object. The reader adds the id of the chunk it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectError {
    #[error("it does not start with the object magic \"CSOB\"")]
    BadMagic,
    #[error("it has object format version {0}; this program reads version {OBJECT_VERSION}")]
    UnsupportedVersion(u8),
    #[error("it is truncated: the {0} is cut short")]
    Truncated(&'static str),
    #[error("it is {0} bytes, over the {CHUNK_STORED_BYTES_MAX} byte chunk limit")]
    TooLarge(usize),
    #[error("it has {0} unexpected bytes after its last entry")]
    TrailingBytes(usize),
    #[error("its body does not decrypt under the given key (wrong key or altered bytes)")]
    Decrypt,
    #[error("link {index} has unknown kind {kind}")]
    BadLinkKind { index: usize, kind: u8 },
    #[error("link {index} points at {found:?} where a {expected:?} belongs")]
    LinkKindMismatch {
        index: usize,
        expected: LinkKind,
        found: LinkKind,
    },
    #[error("unknown node kind {0}")]
    BadNodeKind(u8),
    #[error("entry {index} has unknown kind {kind}")]
    BadEntryKind { index: usize, kind: u8 },
    #[error("its level {0} is deeper than the limit of {TREE_LEVEL_MAX}")]
    LevelTooDeep(u8),
    #[error("it has {links} links but {entries} entries")]
    CountMismatch { links: usize, entries: usize },
    #[error("entry {index} has an invalid name: {reason}")]
    InvalidName { index: usize, reason: &'static str },
    #[error("entry {index} is not in strictly increasing name order")]
    NamesNotSorted { index: usize },
    #[error("entry {index} has mode {mode:o}, above {MODE_MAX:o}")]
    BadMode { index: usize, mode: u32 },
    #[error(
        "entry {index} covers {covered} bytes; a data chunk holds 1 to {CHUNK_PLAINTEXT_BYTES_MAX}"
    )]
    BadChunkLength { index: usize, covered: u64 },
    #[error("entry {index} covers nothing")]
    EmptyChild { index: usize },
    #[error("it declares a total of {declared} but its entries add up to {sum}")]
    TotalMismatch { declared: u64, sum: u64 },
}

impl Node {
    /// The links this node's clear part carries, in entry order.
    pub fn links(&self) -> Vec<Link> {
        let child_kind = self.child_link_kind();
        match &self.entries {
            Entries::Refs(refs) => refs
                .iter()
                .map(|r| Link {
                    kind: child_kind,
                    id: r.id,
                })
                .collect(),
            Entries::Dir(entries) => entries
                .iter()
                .map(|e| Link {
                    kind: LinkKind::Object,
                    id: e.cap.id,
                })
                .collect(),
        }
    }

    fn child_link_kind(&self) -> LinkKind {
        if self.kind == NodeKind::File && self.level == 0 {
            LinkKind::Data
        } else {
            LinkKind::Object
        }
    }

    fn entry_count(&self) -> usize {
        match &self.entries {
            Entries::Refs(refs) => refs.len(),
            Entries::Dir(entries) => entries.len(),
        }
    }

    /// Bytes this node will occupy once sealed.
    pub fn stored_len(&self) -> usize {
        let entries = match &self.entries {
            Entries::Refs(refs) => refs.len() * (LINK_BYTES + REF_ENTRY_BYTES),
            Entries::Dir(entries) => entries
                .iter()
                .map(|e| LINK_BYTES + DIR_ENTRY_FIXED_BYTES + e.name.len())
                .sum(),
        };
        OBJECT_OVERHEAD_BYTES + entries
    }

    /// Encodes and convergently encrypts the node. The caller keeps nodes within the chunk
    /// limit; a larger one is a bug in the writer.
    pub fn seal(&self, secret: Option<&ConvergenceSecret>) -> SealedObject {
        let links = self.links();
        let mut clear = Vec::with_capacity(CLEAR_HEADER_BYTES + links.len() * LINK_BYTES);
        clear.extend_from_slice(&OBJECT_MAGIC);
        clear.push(OBJECT_VERSION);
        clear.extend_from_slice(&(links.len() as u32).to_le_bytes());
        for link in &links {
            clear.push(link.kind as u8);
            clear.extend_from_slice(&link.id.0);
        }
        let mut body = Vec::with_capacity(self.stored_len());
        body.push(self.kind as u8);
        body.push(self.level);
        body.extend_from_slice(&self.total.to_le_bytes());
        body.extend_from_slice(&(self.entry_count() as u32).to_le_bytes());
        match &self.entries {
            Entries::Refs(refs) => {
                for r in refs {
                    body.extend_from_slice(&r.key.0);
                    body.extend_from_slice(&r.covered.to_le_bytes());
                }
            }
            Entries::Dir(entries) => {
                for e in entries {
                    body.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
                    body.extend_from_slice(e.name.as_bytes());
                    body.push(e.kind as u8);
                    body.extend_from_slice(&e.mode.to_le_bytes());
                    body.extend_from_slice(&e.cap.key.0);
                }
            }
        }
        let key = crypto::derive_key(&[&clear, &body], secret);
        let sealed = crypto::seal(&key, &body, &clear);
        let mut stored = clear;
        stored.extend_from_slice(&sealed);
        assert!(
            stored.len() <= CHUNK_STORED_BYTES_MAX,
            "writer built a {} byte object",
            stored.len()
        );
        debug_assert_eq!(stored.len(), self.stored_len());
        SealedObject {
            id: crypto::chunk_id(&stored),
            key,
            stored,
        }
    }

    /// Decrypts and checks a stored object with its key.
    pub fn open(stored: &[u8], key: &ChunkKey) -> Result<Node, ObjectError> {
        let (links, clear_len) = parse_links(stored)?;
        let (clear, sealed) = stored.split_at(clear_len);
        if sealed.len() < TAG_BYTES {
            return Err(ObjectError::Truncated("authentication tag"));
        }
        let body = crypto::open(key, sealed, clear).map_err(|_| ObjectError::Decrypt)?;
        parse_body(&body, &links)
    }
}

/// Reads the clear part of a stored object: its links, and where the sealed body starts.
/// Needs no key: this is what verify, repair and garbage collection walk.
pub fn parse_links(stored: &[u8]) -> Result<(Vec<Link>, usize), ObjectError> {
    if stored.len() > CHUNK_STORED_BYTES_MAX {
        return Err(ObjectError::TooLarge(stored.len()));
    }
    let mut cursor = Cursor::new(stored);
    if cursor.take(4, "magic")? != OBJECT_MAGIC {
        return Err(ObjectError::BadMagic);
    }
    let version = cursor.u8("version")?;
    if version != OBJECT_VERSION {
        return Err(ObjectError::UnsupportedVersion(version));
    }
    let count = cursor.u32("link count")? as usize;
    // Bound the allocation by what the bytes can hold, not by what the header claims.
    if count > cursor.remaining() / LINK_BYTES {
        return Err(ObjectError::Truncated("link list"));
    }
    let mut links = Vec::with_capacity(count);
    for index in 0..count {
        let kind = match cursor.u8("link list")? {
            0 => LinkKind::Data,
            1 => LinkKind::Object,
            kind => return Err(ObjectError::BadLinkKind { index, kind }),
        };
        links.push(Link {
            kind,
            id: ChunkId(cursor.array32("link list")?),
        });
    }
    Ok((links, cursor.position))
}

fn parse_body(body: &[u8], links: &[Link]) -> Result<Node, ObjectError> {
    let mut cursor = Cursor::new(body);
    let kind = match cursor.u8("body header")? {
        1 => NodeKind::File,
        2 => NodeKind::Directory,
        other => return Err(ObjectError::BadNodeKind(other)),
    };
    let level = cursor.u8("body header")?;
    if level > TREE_LEVEL_MAX {
        return Err(ObjectError::LevelTooDeep(level));
    }
    let total = cursor.u64("body header")?;
    let count = cursor.u32("body header")? as usize;
    if count != links.len() {
        return Err(ObjectError::CountMismatch {
            links: links.len(),
            entries: count,
        });
    }
    let mut node = Node {
        kind,
        level,
        total,
        entries: Entries::Refs(Vec::new()),
    };
    let expected_link = node.child_link_kind();
    for (index, link) in links.iter().enumerate() {
        if link.kind != expected_link {
            return Err(ObjectError::LinkKindMismatch {
                index,
                expected: expected_link,
                found: link.kind,
            });
        }
    }
    let sum = if kind == NodeKind::Directory && level == 0 {
        let entries = parse_dir_entries(&mut cursor, links)?;
        let sum = entries.len() as u64;
        node.entries = Entries::Dir(entries);
        sum
    } else {
        let mut refs = Vec::with_capacity(count);
        let mut sum: u64 = 0;
        for (index, link) in links.iter().enumerate() {
            let key = ChunkKey(cursor.array32("entry list")?);
            let covered = cursor.u64("entry list")?;
            if link.kind == LinkKind::Data {
                if covered == 0 || covered > CHUNK_PLAINTEXT_BYTES_MAX as u64 {
                    return Err(ObjectError::BadChunkLength { index, covered });
                }
            } else if covered == 0 {
                return Err(ObjectError::EmptyChild { index });
            }
            sum = sum.checked_add(covered).ok_or(ObjectError::TotalMismatch {
                declared: total,
                sum: u64::MAX,
            })?;
            refs.push(ChildRef {
                id: link.id,
                key,
                covered,
            });
        }
        node.entries = Entries::Refs(refs);
        sum
    };
    if cursor.remaining() != 0 {
        return Err(ObjectError::TrailingBytes(cursor.remaining()));
    }
    if sum != total {
        return Err(ObjectError::TotalMismatch {
            declared: total,
            sum,
        });
    }
    Ok(node)
}

fn parse_dir_entries(
    cursor: &mut Cursor<'_>,
    links: &[Link],
) -> Result<Vec<DirEntry>, ObjectError> {
    let mut entries: Vec<DirEntry> = Vec::with_capacity(links.len());
    for (index, link) in links.iter().enumerate() {
        let name_len = cursor.u16("entry list")? as usize;
        let name_bytes = cursor.take(name_len, "entry list")?;
        let name = std::str::from_utf8(name_bytes).map_err(|_| ObjectError::InvalidName {
            index,
            reason: "not UTF-8",
        })?;
        check_name(name).map_err(|reason| ObjectError::InvalidName { index, reason })?;
        if let Some(previous) = entries.last() {
            if previous.name.as_bytes() >= name.as_bytes() {
                return Err(ObjectError::NamesNotSorted { index });
            }
        }
        let kind = match cursor.u8("entry list")? {
            1 => EntryKind::File,
            2 => EntryKind::Directory,
            kind => return Err(ObjectError::BadEntryKind { index, kind }),
        };
        let mode = cursor.u32("entry list")?;
        if mode > MODE_MAX {
            return Err(ObjectError::BadMode { index, mode });
        }
        let key = ChunkKey(cursor.array32("entry list")?);
        entries.push(DirEntry {
            name: name.to_owned(),
            kind,
            mode,
            cap: ReadCap { id: link.id, key },
        });
    }
    Ok(entries)
}

/// Checks one directory entry name; the error says why it is refused.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > NAME_BYTES_MAX {
        return Err("it is longer than 255 bytes");
    }
    if name == "." || name == ".." {
        return Err("it is \".\" or \"..\"");
    }
    if name.contains('/') {
        return Err("it contains '/'");
    }
    if name.contains('\0') {
        return Err("it contains a NUL byte");
    }
    Ok(())
}

/// A bounds-checked reader over untrusted bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Cursor<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, position: 0 }
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], ObjectError> {
        if self.remaining() < len {
            return Err(ObjectError::Truncated(what));
        }
        let slice = &self.bytes[self.position..self.position + len];
        self.position += len;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ObjectError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ObjectError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, ObjectError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, ObjectError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, ObjectError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    fn array32(&mut self, what: &'static str) -> Result<[u8; 32], ObjectError> {
        self.array(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_leaf() -> Node {
        let refs = (0..3u8)
            .map(|i| ChildRef {
                id: ChunkId([i; 32]),
                key: ChunkKey([i + 10; 32]),
                covered: 100 + i as u64,
            })
            .collect();
        Node {
            kind: NodeKind::File,
            level: 0,
            total: 303,
            entries: Entries::Refs(refs),
        }
    }

    fn dir_leaf(names: &[&str]) -> Node {
        let entries = names
            .iter()
            .map(|n| DirEntry {
                name: (*n).to_owned(),
                kind: EntryKind::File,
                mode: 0o644,
                cap: ReadCap {
                    id: ChunkId([1; 32]),
                    key: ChunkKey([2; 32]),
                },
            })
            .collect();
        Node {
            kind: NodeKind::Directory,
            level: 0,
            total: names.len() as u64,
            entries: Entries::Dir(entries),
        }
    }

    #[test]
    fn nodes_round_trip() {
        for node in [file_leaf(), dir_leaf(&["a", "b", "héllo"]), dir_leaf(&[])] {
            let sealed = node.seal(None);
            assert_eq!(sealed.stored.len(), node.stored_len());
            assert_eq!(Node::open(&sealed.stored, &sealed.key).unwrap(), node);
            let (links, _) = parse_links(&sealed.stored).unwrap();
            assert_eq!(links, node.links());
        }
    }

    #[test]
    fn fanout_fits_the_chunk_limit() {
        let refs = vec![
            ChildRef {
                id: ChunkId([0; 32]),
                key: ChunkKey([0; 32]),
                covered: 1
            };
            REF_FANOUT_MAX
        ];
        let node = Node {
            kind: NodeKind::File,
            level: 0,
            total: REF_FANOUT_MAX as u64,
            entries: Entries::Refs(refs),
        };
        assert!(node.stored_len() <= CHUNK_STORED_BYTES_MAX);
        assert!(node.stored_len() + LINK_BYTES + REF_ENTRY_BYTES > CHUNK_STORED_BYTES_MAX);
    }

    /// Seals a body we wrote by hand, so the decoder sees a well-encrypted but ill-formed node.
    fn seal_raw(links: &[Link], body: &[u8]) -> SealedObject {
        let mut clear = OBJECT_MAGIC.to_vec();
        clear.push(OBJECT_VERSION);
        clear.extend_from_slice(&(links.len() as u32).to_le_bytes());
        for l in links {
            clear.push(l.kind as u8);
            clear.extend_from_slice(&l.id.0);
        }
        let key = crypto::derive_key(&[&clear, body], None);
        let mut stored = clear.clone();
        stored.extend_from_slice(&crypto::seal(&key, body, &clear));
        SealedObject {
            id: crypto::chunk_id(&stored),
            key,
            stored,
        }
    }

    fn body_of(node: &Node) -> (Vec<Link>, Vec<u8>) {
        let sealed = node.seal(None);
        let (links, clear_len) = parse_links(&sealed.stored).unwrap();
        let body = crypto::open(
            &sealed.key,
            &sealed.stored[clear_len..],
            &sealed.stored[..clear_len],
        )
        .unwrap();
        (links, body)
    }

    #[test]
    fn truncated_bodies_are_refused_at_every_length() {
        let (links, body) = body_of(&file_leaf());
        for len in 0..body.len() {
            let sealed = seal_raw(&links, &body[..len]);
            let err = Node::open(&sealed.stored, &sealed.key).unwrap_err();
            assert!(
                matches!(err, ObjectError::Truncated(_)),
                "len {len}: {err:?}"
            );
        }
        let mut longer = body.clone();
        longer.push(0);
        let sealed = seal_raw(&links, &longer);
        assert_eq!(
            Node::open(&sealed.stored, &sealed.key),
            Err(ObjectError::TrailingBytes(1))
        );
    }

    #[test]
    fn truncated_clear_parts_are_refused() {
        let sealed = file_leaf().seal(None);
        for len in 0..CLEAR_HEADER_BYTES + 3 * LINK_BYTES + TAG_BYTES {
            assert!(
                Node::open(&sealed.stored[..len], &sealed.key).is_err(),
                "len {len}"
            );
        }
    }

    #[test]
    fn inconsistent_bodies_are_refused() {
        let (links, mut body) = body_of(&file_leaf());
        body[2] ^= 1; // total
        let sealed = seal_raw(&links, &body);
        assert!(matches!(
            Node::open(&sealed.stored, &sealed.key),
            Err(ObjectError::TotalMismatch { .. })
        ));

        let (links, body) = body_of(&dir_leaf(&["b", "a"]));
        let sealed = seal_raw(&links, &body);
        assert_eq!(
            Node::open(&sealed.stored, &sealed.key),
            Err(ObjectError::NamesNotSorted { index: 1 })
        );

        let long = "x".repeat(NAME_BYTES_MAX + 1);
        let (links, body) = body_of(&dir_leaf(&[long.as_str()]));
        let sealed = seal_raw(&links, &body);
        assert!(matches!(
            Node::open(&sealed.stored, &sealed.key),
            Err(ObjectError::InvalidName { index: 0, .. })
        ));

        let (links, body) = body_of(&dir_leaf(&["a/b"]));
        let sealed = seal_raw(&links, &body);
        assert!(matches!(
            Node::open(&sealed.stored, &sealed.key),
            Err(ObjectError::InvalidName { index: 0, .. })
        ));
    }

    #[test]
    fn wrong_key_and_altered_clear_part_do_not_decrypt() {
        let sealed = file_leaf().seal(None);
        assert_eq!(
            Node::open(&sealed.stored, &ChunkKey([0; 32])),
            Err(ObjectError::Decrypt)
        );
        let mut altered = sealed.stored.clone();
        altered[CLEAR_HEADER_BYTES + 5] ^= 1; // a link id
        assert_eq!(Node::open(&altered, &sealed.key), Err(ObjectError::Decrypt));
    }

    #[test]
    fn hostile_link_count_does_not_allocate() {
        let mut stored = OBJECT_MAGIC.to_vec();
        stored.push(OBJECT_VERSION);
        stored.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            parse_links(&stored),
            Err(ObjectError::Truncated("link list"))
        );
    }
}
