//! Chains: the agreement protocol, the chain rules, fork proofs and disagreements.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cryptosphere::chain::agreement::{accept, complete, finish, propose};
use cryptosphere::chain::rules::{disagreement, verify_range, ChainFault};
use cryptosphere::chain::{
    verify_chain, ForkProof, Outcome, Record, Role, Service, Transaction, RECORD_BYTES,
};
use ed25519_dalek::SigningKey;
use proptest::prelude::*;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn tx(bytes: u64, time: u64) -> Transaction {
    Transaction {
        service: Service::ChunkStored,
        bytes,
        creds: bytes.wrapping_mul(2),
        seconds: 86_400,
        time,
        outcome: Outcome::Delivered,
        commitment: [0; 32],
    }
}

/// Runs the three-message agreement; returns (requester's record, provider's record).
fn trade(
    requester: &SigningKey,
    r_head: Option<&Record>,
    provider: &SigningKey,
    p_head: Option<&Record>,
    t: Transaction,
) -> (Record, Record) {
    let proposal = propose(requester, r_head, provider.verifying_key().to_bytes(), t);
    let (acceptance, pending) = accept(provider, p_head, &proposal).unwrap();
    let (mine, completion) = complete(requester, &proposal, &acceptance).unwrap();
    let theirs = finish(pending, &completion).unwrap();
    (mine, theirs)
}

/// A chain of `length` records for key 1, trading alternately as requester and provider
/// with keys 2..=5; also returns the counterparties' chains.
fn chains(length: usize, seed: u64) -> (Vec<Record>, Vec<Vec<Record>>) {
    let me = key(1);
    let others: Vec<SigningKey> = (2..=5).map(key).collect();
    let mut mine: Vec<Record> = Vec::new();
    let mut theirs: Vec<Vec<Record>> = vec![Vec::new(); others.len()];
    for i in 0..length {
        let o = (seed as usize).wrapping_add(i * 7) % others.len();
        let t = tx(seed.wrapping_add(1000 + i as u64), i as u64);
        let (a, b) = if seed.wrapping_add(i as u64).is_multiple_of(2) {
            trade(&me, mine.last(), &others[o], theirs[o].last(), t)
        } else {
            let (b, a) = trade(&others[o], theirs[o].last(), &me, mine.last(), t);
            (a, b)
        };
        mine.push(a);
        theirs[o].push(b);
    }
    (mine, theirs)
}

#[test]
fn agreement_gives_matching_doubly_signed_halves() {
    let (a, b) = trade(&key(1), None, &key(2), None, tx(10, 5));
    assert!(a.matches(&b) && b.matches(&a));
    assert_eq!((a.role, b.role), (Role::Requester, Role::Provider));
    a.verify_signatures().unwrap();
    b.verify_signatures().unwrap();
    assert_eq!(Record::from_bytes(&a.to_bytes()).unwrap(), a);
    assert!(disagreement(&a, &b).is_none());
}

#[test]
fn each_rule_has_its_own_failure() {
    let (chain, _) = chains(6, 1);
    verify_chain(&chain).unwrap();
    // Sequence numbers start at 1 and increase by one.
    let fault = |records: &[Record]| verify_chain(records).unwrap_err().fault;
    assert_eq!(
        fault(&chain[1..]),
        ChainFault::Sequence {
            expected: 1,
            found: 2
        }
    );
    let mut skipped = chain.clone();
    skipped.remove(2);
    assert!(matches!(
        fault(&skipped),
        ChainFault::Sequence {
            expected: 3,
            found: 4
        }
    ));
    // The previous hash links each record to the one before.
    let mut relinked = chain.clone();
    relinked[3].prev[0] ^= 1;
    assert_eq!(fault(&relinked), ChainFault::Prev);
    // Both signatures verify.
    let mut forged = chain.clone();
    forged[4].counterparty_sig[3] ^= 1;
    let error = verify_chain(&forged).unwrap_err();
    assert_eq!(
        (error.seq, error.fault.clone()),
        (
            5,
            ChainFault::Signature(cryptosphere::chain::record::SignatureFault::Counterparty)
        )
    );
    assert!(error.to_string().contains("record 5"), "{error}");
    // A record of another owner does not belong.
    let (other, _) = chains(2, 2);
    let mut mixed = chain[..1].to_vec();
    mixed.push(Record {
        owner: key(9).verifying_key().to_bytes(),
        ..other[1].clone()
    });
    assert_eq!(fault(&mixed), ChainFault::Owner);
}

#[test]
fn counterparty_halves_agree_and_disagreements_are_attributed() {
    let (chain, theirs) = chains(8, 3);
    for record in &chain {
        let other = theirs
            .iter()
            .flatten()
            .find(|r| r.owner == record.counterparty && r.seq == record.counterparty_seq)
            .unwrap();
        assert!(record.matches(other));
        assert!(disagreement(record, other).is_none());
    }
    // Both parties sign both halves of a dishonest pair: both are responsible.
    let (me, them) = (key(1), key(2));
    let (mut a, mut b) = trade(&me, None, &them, None, tx(100, 1));
    b.tx.bytes = 999;
    b.owner_sig = b.sign(&them);
    b.counterparty_sig = b.sign(&me);
    let found = disagreement(&a, &b).unwrap();
    let mut both = vec![
        me.verifying_key().to_bytes(),
        them.verifying_key().to_bytes(),
    ];
    both.sort();
    assert_eq!(found.responsible, both);
    // A counterparty that countersigned our half but filled its own position with a trade
    // with someone else is the one responsible.
    // (Its position 2 holds a trade with a third key, while our half says position 2.)
    let (_, their_first) = trade(&key(4), None, &them, None, tx(6, 0));
    let (third_half, _) = trade(&them, Some(&their_first), &key(3), None, tx(7, 2));
    assert_eq!(third_half.seq, 2);
    a.counterparty_seq = third_half.seq;
    a.owner_sig = a.sign(&me);
    a.counterparty_sig = a.sign(&them);
    let found = disagreement(&a, &third_half).unwrap();
    assert_eq!(found.responsible, vec![them.verifying_key().to_bytes()]);
}

#[test]
fn agreement_refuses_bad_signatures_and_strangers() {
    let proposal = propose(&key(1), None, key(2).verifying_key().to_bytes(), tx(1, 1));
    assert!(
        accept(&key(3), None, &proposal).is_err(),
        "addressed to another provider"
    );
    let (mut acceptance, _) = accept(&key(2), None, &proposal).unwrap();
    // A proposal that names another requester is not completed by this one (§10).
    assert!(matches!(
        complete(&key(4), &proposal, &acceptance),
        Err(cryptosphere::chain::agreement::AgreementError::NotForMe)
    ));
    complete(&key(1), &proposal, &acceptance).unwrap();
    acceptance.on_requester_half[0] ^= 1;
    assert!(complete(&key(1), &proposal, &acceptance).is_err());
    let self_proposal = propose(&key(2), None, key(2).verifying_key().to_bytes(), tx(1, 1));
    assert!(accept(&key(2), None, &self_proposal).is_err());
}

#[test]
fn a_fork_proof_needs_two_signed_records() {
    let me = key(1);
    let (a, _) = trade(&me, None, &key(2), None, tx(1, 1));
    let (b, _) = trade(&me, None, &key(3), None, tx(2, 2));
    let proof = ForkProof::new(a.clone(), b.clone()).unwrap();
    assert_eq!(proof.offender(), me.verifying_key().to_bytes());
    // One record cannot pose as a fork, nor can a record with a forged owner signature.
    assert!(ForkProof::new(a.clone(), a.clone()).is_err());
    let mut forged = b.clone();
    forged.owner_sig = forged.sign(&key(9));
    assert!(ForkProof::new(a.clone(), forged).is_err());
    let (later, _) = trade(&me, Some(&a), &key(2), None, tx(3, 3));
    assert!(ForkProof::new(a, later).is_err(), "different positions");
}

fn to_bytes(chain: &[Record]) -> Vec<u8> {
    chain.iter().flat_map(|r| r.to_bytes()).collect()
}

fn from_bytes(bytes: &[u8]) -> Option<Vec<Record>> {
    bytes
        .chunks(RECORD_BYTES)
        .map(|c| Record::from_bytes(c).ok())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn random_valid_chains_verify(length in 1usize..24, seed in any::<u64>()) {
        let (chain, theirs) = chains(length, seed);
        prop_assert!(verify_chain(&chain).is_ok());
        for other in &theirs {
            prop_assert!(verify_chain(other).is_ok());
        }
    }

    #[test]
    fn any_single_bit_change_is_rejected(length in 1usize..8, seed in any::<u64>(), pick in any::<prop::sample::Index>()) {
        let (chain, _) = chains(length, seed);
        let mut bytes = to_bytes(&chain);
        let bit = pick.index(bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        if let Some(decoded) = from_bytes(&bytes) {
            prop_assert!(verify_chain(&decoded).is_err(), "bit {} accepted", bit);
        }
    }

    #[test]
    fn conflicting_records_make_a_proof(seed in any::<u64>(), length in 1usize..6) {
        let (chain, _) = chains(length, seed);
        let last = chain.last().unwrap();
        let head = if chain.len() > 1 { Some(&chain[chain.len() - 2]) } else { None };
        let (conflict, _) = trade(&key(1), head, &key(7), None, tx(seed, seed));
        let proof = ForkProof::new(last.clone(), conflict).unwrap();
        prop_assert!(proof.verify().is_ok());
    }

    #[test]
    fn truncated_or_reordered_chains_are_prefixes_or_rejected(length in 2usize..12, seed in any::<u64>(), cut in any::<prop::sample::Index>(), swap in any::<prop::sample::Index>()) {
        let (chain, _) = chains(length, seed);
        let n = cut.index(chain.len()) + 1;
        // A prefix is a valid chain in its own right, and the rest continues it.
        prop_assert!(verify_chain(&chain[..n]).is_ok());
        prop_assert!(verify_range(chain.get(n.wrapping_sub(1)), &chain[n..]).is_ok());
        // Without its start it is not a chain; reordered it is rejected.
        prop_assert!(verify_chain(&chain[1..]).is_err());
        let i = swap.index(chain.len() - 1);
        let mut reordered = chain.clone();
        reordered.swap(i, i + 1);
        prop_assert!(verify_chain(&reordered).is_err());
    }

    #[test]
    fn the_record_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = Record::from_bytes(&bytes);
    }
}

mod exchange {
    use super::*;
    use cryptosphere::chain::exchange::{
        ChainBook, ExchangeError, RangeRequest, Received, RECENT_RECORDS,
    };
    use std::sync::Arc;

    fn owner() -> [u8; 32] {
        key(1).verifying_key().to_bytes()
    }

    /// The outer `chains`, shared as the book holds them.
    fn chains(length: usize, seed: u64) -> (Vec<Arc<Record>>, Vec<Vec<Arc<Record>>>) {
        let (mine, theirs) = super::chains(length, seed);
        let share = |run: Vec<Record>| run.into_iter().map(Arc::new).collect::<Vec<_>>();
        (share(mine), theirs.into_iter().map(share).collect())
    }

    #[test]
    fn chains_are_fetched_incrementally_within_limits() {
        let (chain, _) = chains(90, 4);
        let mut book = ChainBook::default();
        // A first read asks for the recent end of the chain.
        let request = book.next_request(owner());
        assert_eq!((request.from_seq, request.max), (0, RECENT_RECORDS));
        let request = RangeRequest { max: 20, ..request };
        let received = book
            .receive(&request, ChainBook::serve(&chain[..50], &request))
            .unwrap();
        assert_eq!(received.added, 20);
        assert_eq!(book.chain(&owner()), &chain[30..50]);
        let mut added = Vec::new();
        loop {
            let mut request = book.next_request(owner());
            request.max = 20;
            let answer = ChainBook::serve(&chain, &request);
            assert!(answer.len() <= 20);
            let received = book.receive(&request, answer).unwrap();
            assert_eq!(received.fork, None);
            if received.added == 0 {
                break;
            }
            added.push(received.added);
        }
        // Each answer repeats the last 8 records held.
        assert_eq!(added, [12, 12, 12, 4]);
        assert_eq!(book.chain(&owner()), &chain[30..]);
    }

    /// A first read takes the chain's recent end; a later run with a gap after what is held
    /// replaces it; an answer wholly before the run held adds nothing and blames no one.
    #[test]
    fn runs_from_the_recent_end_are_believed() {
        let (chain, _) = chains(100, 4);
        let mut book = ChainBook::default();
        let request = book.next_request(owner());
        let answer = ChainBook::serve(&chain, &request);
        assert_eq!(answer.first().map(|r| r.seq), Some(37));
        assert_eq!(book.receive(&request, answer).unwrap().added, 64);
        assert_eq!(book.chain(&owner()), &chain[36..]);

        let mut book = ChainBook::default();
        let request = book.next_request(owner());
        book.receive(&request, chain[..20].to_vec()).unwrap();
        let request = book.next_request(owner());
        assert_eq!(request.from_seq, 13);
        assert_eq!(
            book.receive(&request, chain[50..].to_vec()).unwrap().added,
            50
        );
        assert_eq!(book.chain(&owner()), &chain[50..]);
        let old = book.receive(&request, chain[10..30].to_vec()).unwrap();
        assert_eq!(old, Received::default());
        assert_eq!(book.chain(&owner()), &chain[50..]);
        // A run is checked like a chain: a broken link or signature inside it is refused.
        let mut broken = chain[60..].to_vec();
        Arc::make_mut(&mut broken[5]).counterparty_sig[0] ^= 1;
        let mut fresh = ChainBook::default();
        let request = fresh.next_request(owner());
        assert!(matches!(
            fresh.receive(&request, broken),
            Err(ExchangeError::Invalid(e)) if e.seq == 66
        ));
        let mut gapped = chain[60..70].to_vec();
        gapped.remove(4);
        assert!(fresh.receive(&request, gapped).is_err());
        assert!(fresh.chain(&owner()).is_empty());
        // An answer must be a run before anything of it is dropped or compared: a junk
        // record ahead of a genuine later one does not get the later one appended to the
        // held run (which would leave a hole in it).
        let mut book = ChainBook::default();
        let request = book.next_request(owner());
        book.receive(&request, chain[49..60].to_vec()).unwrap();
        let request = book.next_request(owner());
        let mut junk = chain[10].clone();
        Arc::make_mut(&mut junk).seq = 0;
        assert!(book
            .receive(&request, vec![junk, chain[90].clone()])
            .is_err());
        assert!(book
            .receive(&request, vec![chain[20].clone(), chain[90].clone()])
            .is_err());
        assert_eq!(book.chain(&owner()), &chain[49..60]);
        // Nor does the last position: nothing could follow it.
        let mut last = chain[95].clone();
        Arc::make_mut(&mut last).seq = u64::MAX;
        assert!(book.receive(&request, vec![last]).is_err());
        assert_eq!(book.chain(&owner()), &chain[49..60]);
    }

    /// The book holds at most its bound in records: the chains extended longest ago are cut
    /// back to their last 8 records (the next read goes on from there), then the oldest of
    /// those go whole.
    #[test]
    fn the_book_is_bounded_and_cuts_back_the_chains_extended_longest_ago() {
        let (mine, theirs) = chains(40, 4);
        assert!(theirs.iter().all(|c| c.len() == 10));
        let read = |book: &mut ChainBook, chain: &[Arc<Record>]| {
            let request = book.next_request(chain[0].owner);
            book.receive(&request, ChainBook::serve(chain, &request))
                .unwrap()
        };
        let mut book = ChainBook::with_records_max(52);
        read(&mut book, &mine);
        read(&mut book, &theirs[0]);
        assert_eq!(book.records(), 50);
        assert_eq!(
            book.chain(&owner()),
            &mine[..],
            "within the bound, nothing goes"
        );
        read(&mut book, &mine); // nothing new: not extended, so it is still the oldest
        read(&mut book, &theirs[1]);
        assert_eq!(book.records(), 28);
        assert_eq!(book.chain(&owner()), &mine[32..], "cut back to its tail");
        assert_eq!(book.next_request(owner()).from_seq, 33);
        assert_eq!(book.chain(&theirs[0][0].owner), &theirs[0][..]);

        let mut book = ChainBook::with_records_max(20);
        read(&mut book, &mine);
        assert_eq!(
            book.chain(&owner()),
            &mine[20..],
            "one run alone keeps its end"
        );
        read(&mut book, &theirs[0]);
        assert_eq!(book.records(), 18);
        read(&mut book, &theirs[1]);
        assert_eq!(book.records(), 18);
        assert!(
            book.chain(&owner()).is_empty(),
            "the oldest tail goes whole"
        );
        assert_eq!(book.chain(&theirs[0][0].owner), &theirs[0][2..]);
        assert_eq!(book.chain(&theirs[1][0].owner), &theirs[1][..]);
        assert_eq!(book.next_request(owner()).from_seq, 0);
    }

    /// An answer to a request made before the chain was evicted is a run of its own: taken
    /// in, and the peer that sent it did nothing wrong.
    #[test]
    fn an_answer_to_an_evicted_chain_is_taken_in_as_a_run() {
        let (mine, theirs) = chains(40, 4);
        let mut book = ChainBook::with_records_max(12);
        let request = book.next_request(owner());
        book.receive(&request, ChainBook::serve(&mine[..30], &request))
            .unwrap();
        let late = book.next_request(owner());
        assert_eq!(late.from_seq, 23);
        let other = &theirs[0];
        let asked = book.next_request(other[0].owner);
        book.receive(&asked, ChainBook::serve(other, &asked))
            .unwrap();
        assert!(book.chain(&owner()).is_empty(), "evicted");
        let received = book.receive(&late, ChainBook::serve(&mine, &late)).unwrap();
        assert_eq!(received.added, 18);
        assert_eq!(book.chain(&owner()), &mine[28..]);
        assert_eq!(book.records(), 12);
    }

    /// Fork proofs are kept up to the book's bound; past it, the one learned longest ago
    /// goes, and its forker is no longer disqualified (a stranger again).
    #[test]
    fn fork_proofs_are_bounded_and_the_oldest_goes() {
        let fork_of = |n: u8| {
            let (a, _) = trade(&key(n), None, &key(9), None, tx(1, 1));
            let (b, _) = trade(&key(n), None, &key(9), None, tx(2, 2));
            ForkProof::new(a, b).unwrap()
        };
        let mut book = ChainBook::with_limits(1024, 2);
        for n in [11, 12] {
            assert!(book.learn_fork(fork_of(n)));
        }
        assert!(!book.learn_fork(fork_of(11)), "known already");
        assert!(book.learn_fork(fork_of(13)));
        let forker = |n: u8| key(n).verifying_key().to_bytes();
        assert!(!book.disqualified(&forker(11)), "the oldest went");
        assert!(book.disqualified(&forker(12)) && book.disqualified(&forker(13)));
        assert_eq!(cryptosphere::chain::exchange::FORKS_MAX, 65_536);
    }

    /// The overlap an answer repeats is compared, not verified again; an overlap that
    /// differs without proving a fork (a broken signature) still fails.
    #[test]
    fn a_changed_overlap_without_a_fork_proof_is_refused() {
        let (chain, _) = chains(20, 5);
        let mut book = ChainBook::default();
        let request = book.next_request(owner());
        book.receive(&request, chain[..12].to_vec()).unwrap();
        let request = book.next_request(owner());
        let mut answer = ChainBook::serve(&chain, &request);
        assert_eq!(answer[0].seq, 5, "the last 8 held come again");
        Arc::make_mut(&mut answer[2]).counterparty_sig[3] ^= 1;
        assert!(matches!(
            book.receive(&request, answer),
            Err(ExchangeError::Invalid(_))
        ));
        assert_eq!(book.chain(&owner()), &chain[..12]);
        let answer = ChainBook::serve(&chain, &request);
        assert_eq!(book.receive(&request, answer).unwrap().added, 8);
        assert_eq!(book.chain(&owner()), &chain[..]);
    }

    #[test]
    fn invalid_answers_are_not_believed() {
        let (chain, _) = chains(10, 5);
        let mut book = ChainBook::default();
        let request = book.next_request(owner());
        let mut bad = chain.clone();
        Arc::make_mut(&mut bad[6]).owner_sig[9] ^= 1;
        assert!(
            matches!(book.receive(&request, bad), Err(ExchangeError::Invalid(e)) if e.seq == 7)
        );
        assert!(
            book.chain(&owner()).is_empty(),
            "nothing of a bad answer is kept"
        );
        let too_many = RangeRequest { max: 3, ..request };
        assert!(matches!(
            book.receive(&too_many, chain.clone()),
            Err(ExchangeError::TooMany { .. })
        ));
        // No record stands at position 0.
        let mut zero = chain[..3].to_vec();
        Arc::make_mut(&mut zero[0]).seq = 0;
        assert!(matches!(
            book.receive(&request, zero),
            Err(ExchangeError::Invalid(e)) if e.seq == 0
        ));
        let (stranger, _) = chains(3, 6);
        let stranger: Vec<Arc<Record>> = stranger
            .into_iter()
            .map(|r| {
                Arc::new(Record {
                    owner: [7; 32],
                    ..Record::clone(&r)
                })
            })
            .collect();
        assert!(book.receive(&request, stranger).is_err());
        assert_eq!(book.receive(&request, chain.clone()).unwrap().added, 10);
    }

    #[test]
    fn two_peers_serving_different_histories_reveal_a_fork() {
        let me = key(1);
        let (honest, _) = chains(5, 7);
        // The owner rewrites its history from record 3 on, one record longer.
        let mut forked = honest[..2].to_vec();
        for i in 0..4u64 {
            let (record, _) = trade(
                &me,
                forked.last().map(|r| &**r),
                &key(6),
                None,
                tx(500 + i, 90 + i),
            );
            forked.push(Arc::new(record));
        }
        let mut book = ChainBook::default();
        let request = book.next_request(owner());
        book.receive(&request, ChainBook::serve(&honest, &request))
            .unwrap();
        let again = RangeRequest {
            from_seq: 1,
            ..request
        };
        let received = book
            .receive(&again, ChainBook::serve(&forked, &again))
            .unwrap();
        let proof = received.fork.expect("a fork proof");
        proof.verify().unwrap();
        assert_eq!(proof.a.seq, 3);
        assert!(book.disqualified(&owner()));
        // Longest chain wins: the longer valid history is the one kept.
        assert_eq!(book.chain(&owner()), &forked[..]);
        // Another peer can be told of the fork with the proof alone.
        let mut other = ChainBook::default();
        assert!(other.learn_fork(proof.clone()));
        assert!(other.disqualified(&owner()));
        assert!(!other.learn_fork(ForkProof {
            a: proof.a.clone(),
            b: proof.a.clone()
        }));
    }

    #[test]
    fn a_history_cut_back_and_rewritten_is_caught() {
        let me = key(1);
        let (honest, _) = chains(20, 8);
        let mut book = ChainBook::default();
        let request = book.next_request(owner());
        book.receive(&request, ChainBook::serve(&honest, &request))
            .unwrap();
        // The owner keeps its first 9 records and rewrites the 10th.
        let mut rewritten = honest[..9].to_vec();
        let last = rewritten.last().map(|r| &**r);
        let (forged, _) = trade(&me, last, &key(6), None, tx(777, 777));
        rewritten.push(Arc::new(forged));
        let request = book.next_request(owner());
        assert!(
            request.from_seq > 10,
            "the request starts past the rewritten record"
        );
        let answer = ChainBook::serve(&rewritten, &request);
        assert_eq!(
            answer.first().map(|r| r.seq),
            Some(3),
            "a shorter chain sends its last 8 records"
        );
        let received = book.receive(&request, answer).unwrap();
        assert_eq!(received.fork.map(|p| p.a.seq), Some(10));
        assert!(book.disqualified(&owner()));
        // The longer, valid history is kept.
        assert_eq!(book.chain(&owner()), &honest[..]);
    }
}

/// Signs `message` for the key `[a]B + T_key` (its bytes `key`) with a nonce point
/// `[r]B + T_r`: a signature whose `R` and key carry small-order (torsion) components. The
/// cofactored equation holds; the cofactorless one holds only by chance.
fn torsion_sign(
    a: &curve25519_dalek::Scalar,
    key: &[u8; 32],
    message: &[u8],
    nonce: u64,
    torsion_r: usize,
) -> [u8; 64] {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
    use curve25519_dalek::Scalar;
    use sha2::{Digest, Sha512};
    let wide = |digest: sha2::digest::Output<Sha512>| {
        Scalar::from_bytes_mod_order_wide(&<[u8; 64]>::from(digest))
    };
    let r = wide(Sha512::digest(nonce.to_le_bytes()));
    let big_r = (r * B + EIGHT_TORSION[torsion_r]).compress().to_bytes();
    let k = wide(
        Sha512::new()
            .chain_update(big_r)
            .chain_update(key)
            .chain_update(message)
            .finalize(),
    );
    let s = r + k * a;
    let mut signature = [0u8; 64];
    signature[..32].copy_from_slice(&big_r);
    signature[32..].copy_from_slice(s.as_bytes());
    signature
}

/// Signatures that carry torsion components get one verdict whatever the batch: each record
/// alone, every prefix of the chain, and every window of it checked after the record before
/// agree; a chain that is valid has every prefix valid; and one bad signature fails every
/// batch that holds it and no other.
#[test]
fn torsion_carrying_signatures_get_one_verdict_in_every_batch() {
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT as B, EIGHT_TORSION};
    use curve25519_dalek::Scalar;
    // The owner's key carries a torsion component of order 8: a mixed-order key, not weak.
    let a = Scalar::from_bytes_mod_order([7; 32]);
    let owner = (a * B + EIGHT_TORSION[1]).compress().to_bytes();
    // The counterparty's is a clean key; its signatures' R carry the torsion.
    let c = Scalar::from_bytes_mod_order([9; 32]);
    let counterparty = (c * B).compress().to_bytes();
    let length = 24;
    let mut chain: Vec<Record> = Vec::new();
    for i in 0..length {
        let mut record = Record {
            owner,
            seq: i as u64 + 1,
            prev: chain.last().map_or([0; 32], Record::hash),
            counterparty,
            counterparty_seq: i as u64 + 1,
            role: if i % 2 == 0 {
                Role::Requester
            } else {
                Role::Provider
            },
            tx: tx(100 + i as u64, i as u64),
            owner_sig: [0; 64],
            counterparty_sig: [0; 64],
        };
        let message = record.signed_message();
        record.owner_sig = torsion_sign(&a, &owner, &message, 2 * i as u64, i % 8);
        record.counterparty_sig =
            torsion_sign(&c, &counterparty, &message, 2 * i as u64 + 1, (i + 3) % 8);
        chain.push(record);
    }
    // The cofactorless check (ed25519-dalek's own) refuses some of them: they really carry
    // torsion that a batch with random weights would see or not by chance.
    let cofactorless = chain
        .iter()
        .filter(|r| {
            let key = ed25519_dalek::VerifyingKey::from_bytes(&r.owner).unwrap();
            let signature = ed25519_dalek::Signature::from_bytes(&r.owner_sig);
            ed25519_dalek::Verifier::verify(&key, &r.signed_message(), &signature).is_err()
        })
        .count();
    assert!(cofactorless > length / 2, "{cofactorless} of {length}");
    // One rule everywhere: all pass.
    for record in &chain {
        record.verify_signatures().unwrap();
    }
    for end in 0..=length {
        verify_chain(&chain[..end]).unwrap();
        for start in 1..end {
            verify_range(Some(&chain[start - 1]), &chain[start..end]).unwrap();
        }
    }
    // A fork proof made of two torsion-carrying records is a proof like any other.
    let mut twin = chain[4].clone();
    twin.tx.bytes += 1;
    twin.owner_sig = torsion_sign(&a, &owner, &twin.signed_message(), 999, 5);
    ForkProof::new(chain[4].clone(), twin).unwrap();

    // Record 10's owner signature made wrong (S off by one): refused alone, and by exactly
    // the batches that hold it (the record's hash covers its signatures, so the link of the
    // record after it breaks as well).
    let bad = 10;
    let mut broken = chain.clone();
    let mut s = [0u8; 32];
    s.copy_from_slice(&broken[bad].owner_sig[32..]);
    let s = Scalar::from_canonical_bytes(s).unwrap() + Scalar::ONE;
    broken[bad].owner_sig[32..].copy_from_slice(s.as_bytes());
    assert!(broken[bad].verify_signatures().is_err());
    for end in 0..=length {
        let verdict = verify_chain(&broken[..end]);
        if end > bad {
            let error = verdict.unwrap_err();
            assert_eq!(error.index, bad, "prefix of {end}");
            assert!(matches!(error.fault, ChainFault::Signature(_)));
        } else {
            verdict.unwrap();
        }
        for start in 1..end {
            // (A window right after the bad record fails too: the record its first one
            // links to is not the one given as `before`.)
            let verdict = verify_range(Some(&broken[start - 1]), &broken[start..end]);
            assert_eq!(
                verdict.is_ok(),
                !(start - 1..end).contains(&bad),
                "window {start}..{end}"
            );
        }
    }
}
