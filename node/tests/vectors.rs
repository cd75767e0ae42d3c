//! The test vectors of docs/object-format.md. The expected values were computed by
//! docs/object-format-vectors.py, an independent implementation of the documented layout
//! (Python's hashlib and the `cryptography` package), not by this code.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use cryptosphere::object::format::{DirEntry, EntryKind};
use cryptosphere::object::{crypto, ConvergenceSecret, WriteConfig, Writer};
use cryptosphere::store::Store;

const HELLO: &[u8] = b"hello, cryptosphere\n";
const HELLO_DATA_KEY: &str = "gqqfrbnhlijxpglcf5fcuxv2vdfgzdlpiuqsfdzjgjexohd3j6wa";
const HELLO_DATA_ID: &str = "ptsaabkp6km2bzbj2kbnksvpedorjvhwsjcsp7fi6rdk2qdf7eiq";
const HELLO_ROOT_LEN: usize = 112;
const HELLO_CAP: &str = "cs:r:rmi2hjyu7xphfjtrp4itjreki5emzvxnccvdux7pmnpaxznwehsa:4o6iupjelz6l6g4s4ew7p7bvsuv2xh7mnnuxwvfdz7yfdwdr46gq";
const HELLO_SECRET_CAP: &str = "cs:r:n6vvof23gu5umdhe6au2ohig2h2i7faouexx2wehuiw4u4wehlbq:glc6qcrqdf2erfc54tqz367riuzo7oskbauvg527wmsjd7lup7da";
const EMPTY_CAP: &str = "cs:r:qxe3pdqkcgxn2daxafqaqkeusiwkz7qjjosceri5bdq4syuhjjqa:5mutcabibrgcmzoocghpsicaxyrqhn7hennicjzt5v3zj2v6aqta";
const DIR_CAP: &str = "cs:r:z4wbok2b33qrllnwpiwueiuwuk5snqtqoovhw4sq2copcdk3ugwq:lcdmunl4at72il4t46y4jt2aoxs4mzfienzycugph5rcsyhqathq";
const DIR_VERIFY_CAP: &str = "cs:v:z4wbok2b33qrllnwpiwueiuwuk5snqtqoovhw4sq2copcdk3ugwq";

fn put(
    store: &Store,
    content: &[u8],
    secret: Option<ConvergenceSecret>,
) -> cryptosphere::object::ReadCap {
    let mut writer = Writer::new(store, WriteConfig::default(), secret);
    let (cap, size) = writer.put_file(content, &mut |_| {}).unwrap();
    assert_eq!(size, content.len() as u64);
    writer.finish(Some(cap)).unwrap();
    cap
}

#[test]
fn data_chunk_vector() {
    let chunk = crypto::seal_chunk(HELLO, None);
    assert_eq!(
        cryptosphere::ids::encode_base32(&chunk.key.0),
        HELLO_DATA_KEY
    );
    assert_eq!(chunk.id.to_base32(), HELLO_DATA_ID);
}

#[test]
fn file_and_directory_vectors() {
    let store = Store::memory();
    let hello = put(&store, HELLO, None);
    assert_eq!(hello.to_string(), HELLO_CAP);
    assert_eq!(store.get(&hello.id).unwrap().len(), HELLO_ROOT_LEN);

    let secret = ConvergenceSecret::new((0u8..32).collect()).unwrap();
    assert_eq!(
        put(&store, HELLO, Some(secret)).to_string(),
        HELLO_SECRET_CAP
    );
    assert_eq!(put(&store, b"", None).to_string(), EMPTY_CAP);

    let mut writer = Writer::new(&store, WriteConfig::default(), None);
    let entry = DirEntry {
        name: "hello.txt".into(),
        kind: EntryKind::File,
        mode: 0o644,
        cap: hello,
    };
    let dir = writer.put_directory(vec![entry]).unwrap();
    writer.finish(Some(dir)).unwrap();
    assert_eq!(dir.to_string(), DIR_CAP);
    assert_eq!(dir.verify_cap().to_string(), DIR_VERIFY_CAP);
}
