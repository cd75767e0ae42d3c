//! The JSON form of a record, as `cryptosphere chain show --json` and the node's
//! `GET /v1/chain` print it: every field of the body in words and numbers, ids in base32,
//! and the record's hash. Signatures are left out (a chain file carries them).

use super::Record;
use crate::ids::encode_base32;

pub fn record_json(r: &Record) -> serde_json::Value {
    serde_json::json!({
        "seq": r.seq,
        "prev": encode_base32(&r.prev),
        "counterparty": encode_base32(&r.counterparty),
        "counterparty_seq": r.counterparty_seq,
        "role": format!("{:?}", r.role).to_lowercase(),
        "service": format!("{:?}", r.tx.service),
        "bytes": r.tx.bytes,
        "creds": r.tx.creds,
        "seconds": r.tx.seconds,
        "time": r.tx.time,
        "outcome": format!("{:?}", r.tx.outcome).to_lowercase(),
        "hash": encode_base32(&r.hash()),
    })
}
