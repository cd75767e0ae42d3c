//! The three messages that give two peers matching, doubly signed records of one service.
//!
//! 1. The requester proposes: the transaction, and where its half will sit on its chain.
//! 2. The provider builds both halves (it now knows both positions), signs both, and sends
//!    the two signatures back.
//! 3. The requester checks them, signs both halves, appends its own, and sends its signature
//!    of the provider's half; the provider checks it and appends its own.
//!
//! Each step is a pure function of keys, chain heads and the message received.

use ed25519_dalek::SigningKey;

use super::record::{signature_ok, Record, Role, Transaction};

/// Step 1, requester to provider.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Proposal {
    pub requester: [u8; 32],
    pub requester_seq: u64,
    pub requester_prev: [u8; 32],
    pub provider: [u8; 32],
    pub tx: Transaction,
}

/// Step 2, provider to requester.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Acceptance {
    pub provider_seq: u64,
    pub provider_prev: [u8; 32],
    /// The provider's signature on the requester's half.
    #[serde(with = "crate::wire::fixed::bytes64")]
    pub on_requester_half: [u8; 64],
    /// The provider's signature on its own half.
    #[serde(with = "crate::wire::fixed::bytes64")]
    pub on_provider_half: [u8; 64],
}

/// Step 3, requester to provider: its signature on the provider's half.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub on_provider_half: [u8; 64],
}

/// Why a step refused the message it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AgreementError {
    #[error("the proposal is addressed to another provider")]
    NotForMe,
    #[error("a party cannot trade with itself")]
    SelfDealing,
    #[error("the other party's key is not a valid ed25519 key")]
    BadKey,
    #[error("the other party's signature does not verify")]
    BadSignature,
}

fn head_position(head: Option<&Record>) -> (u64, [u8; 32]) {
    head.map_or((1, [0u8; 32]), |h| (h.seq.saturating_add(1), h.hash()))
}

fn halves(proposal: &Proposal, provider_seq: u64, provider_prev: [u8; 32]) -> (Record, Record) {
    let requester = Record {
        owner: proposal.requester,
        seq: proposal.requester_seq,
        prev: proposal.requester_prev,
        counterparty: proposal.provider,
        counterparty_seq: provider_seq,
        role: Role::Requester,
        tx: proposal.tx,
        owner_sig: [0; 64],
        counterparty_sig: [0; 64],
    };
    let provider = Record {
        owner: proposal.provider,
        seq: provider_seq,
        prev: provider_prev,
        counterparty: proposal.requester,
        counterparty_seq: proposal.requester_seq,
        role: Role::Provider,
        tx: proposal.tx,
        owner_sig: [0; 64],
        counterparty_sig: [0; 64],
    };
    (requester, provider)
}

fn check(key: &[u8; 32], record: &Record, signature: &[u8; 64]) -> Result<(), AgreementError> {
    if !super::signature::key_usable(key) {
        return Err(AgreementError::BadKey);
    }
    if signature_ok(key, &record.signed_message(), signature) {
        Ok(())
    } else {
        Err(AgreementError::BadSignature)
    }
}

/// Step 1: the requester, whose chain ends at `head`, proposes `tx` to `provider`.
pub fn propose(
    requester: &SigningKey,
    head: Option<&Record>,
    provider: [u8; 32],
    tx: Transaction,
) -> Proposal {
    let (requester_seq, requester_prev) = head_position(head);
    Proposal {
        requester: requester.verifying_key().to_bytes(),
        requester_seq,
        requester_prev,
        provider,
        tx,
    }
}

/// The provider's half, waiting for the requester's signature.
#[derive(Debug, Clone)]
pub struct PendingHalf {
    record: Record,
}

/// Step 2: the provider, whose chain ends at `head`, accepts `proposal`.
pub fn accept(
    provider: &SigningKey,
    head: Option<&Record>,
    proposal: &Proposal,
) -> Result<(Acceptance, PendingHalf), AgreementError> {
    if proposal.provider != provider.verifying_key().to_bytes() {
        return Err(AgreementError::NotForMe);
    }
    if proposal.requester == proposal.provider {
        return Err(AgreementError::SelfDealing);
    }
    if !super::signature::key_usable(&proposal.requester) {
        return Err(AgreementError::BadKey);
    }
    let (provider_seq, provider_prev) = head_position(head);
    let (requester_half, mut provider_half) = halves(proposal, provider_seq, provider_prev);
    let on_requester_half = requester_half.sign(provider);
    provider_half.owner_sig = provider_half.sign(provider);
    let acceptance = Acceptance {
        provider_seq,
        provider_prev,
        on_requester_half,
        on_provider_half: provider_half.owner_sig,
    };
    Ok((
        acceptance,
        PendingHalf {
            record: provider_half,
        },
    ))
}

/// Step 3: the requester checks the acceptance; returns its own finished record (to append)
/// and the completion for the provider.
pub fn complete(
    requester: &SigningKey,
    proposal: &Proposal,
    acceptance: &Acceptance,
) -> Result<(Record, Completion), AgreementError> {
    if proposal.requester != requester.verifying_key().to_bytes() {
        return Err(AgreementError::NotForMe);
    }
    let (mut mine, theirs) = halves(proposal, acceptance.provider_seq, acceptance.provider_prev);
    check(&proposal.provider, &mine, &acceptance.on_requester_half)?;
    check(&proposal.provider, &theirs, &acceptance.on_provider_half)?;
    mine.owner_sig = mine.sign(requester);
    mine.counterparty_sig = acceptance.on_requester_half;
    Ok((
        mine,
        Completion {
            on_provider_half: theirs.sign(requester),
        },
    ))
}

/// Step 4 (on the provider, no message): the provider's finished record, to append.
pub fn finish(pending: PendingHalf, completion: &Completion) -> Result<Record, AgreementError> {
    let mut record = pending.record;
    check(&record.counterparty, &record, &completion.on_provider_half)?;
    record.counterparty_sig = completion.on_provider_half;
    Ok(record)
}
