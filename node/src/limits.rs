//! The fixed limits of the object format. Every reader enforces them on input it did not
//! make; every writer stays inside them.

/// Largest plaintext of one chunk (a data chunk or an encoded object body).
pub const CHUNK_PLAINTEXT_BYTES_MAX: usize = 1 << 20;

/// AES-256-GCM tag appended to every ciphertext.
pub const TAG_BYTES: usize = 16;

/// Largest stored chunk: a full plaintext plus its tag. Objects obey the same bound.
pub const CHUNK_STORED_BYTES_MAX: usize = CHUNK_PLAINTEXT_BYTES_MAX + TAG_BYTES;

/// FastCDC parameters (bytes). Content-defined boundaries, never over 1 MiB.
pub const CDC_MIN_BYTES: usize = 128 * 1024;
pub const CDC_AVG_BYTES: usize = 256 * 1024;
pub const CDC_MAX_BYTES: usize = CHUNK_PLAINTEXT_BYTES_MAX;

/// Largest name of a directory entry, in bytes of UTF-8 (the Linux `NAME_MAX`).
pub const NAME_BYTES_MAX: usize = 255;

/// Highest level a manifest node may have (level 0 holds the leaves, so a tree has at most
/// seven levels). With the default 14,363 children per node, four levels already cover
/// more than 2^60 bytes; anything deeper is hostile.
pub const TREE_LEVEL_MAX: u8 = 6;

/// Most directory entries one get writes out (shared subtrees count once per appearance).
pub const EXPORT_ENTRIES_MAX: usize = 1 << 20;

/// Deepest directory nesting that put and get accept.
pub const DIR_DEPTH_MAX: usize = 256;

/// Largest convergence secret file, in bytes; the smallest is 16.
pub const SECRET_BYTES_MAX: usize = 4096;
pub const SECRET_BYTES_MIN: usize = 16;
