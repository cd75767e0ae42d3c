//! The event queue: a binary heap ordered by (virtual time, sequence number), so events at
//! the same instant come out in the order they were scheduled, on every run.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use cryptosphere::kernel::Time;

/// A heap entry: small and fixed-size, so sifting moves 24 bytes whatever the event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    at: Time,
    seq: u64,
    slot: u32,
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    // Reversed: BinaryHeap is a max-heap and the earliest event must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// Events waiting for their time. The events themselves sit in a slab whose slots are
/// reused, so scheduling allocates only when the number in flight grows.
#[derive(Debug)]
pub struct EventQueue<E> {
    heap: BinaryHeap<Key>,
    slab: Vec<Option<E>>,
    free: Vec<u32>,
    seq: u64,
}

impl<E> Default for EventQueue<E> {
    fn default() -> Self {
        EventQueue::with_capacity(0)
    }
}

impl<E> EventQueue<E> {
    pub fn with_capacity(capacity: usize) -> EventQueue<E> {
        EventQueue {
            heap: BinaryHeap::with_capacity(capacity),
            slab: Vec::with_capacity(capacity),
            free: Vec::new(),
            seq: 0,
        }
    }

    pub fn push(&mut self, at: Time, event: E) {
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slab[slot as usize] = Some(event);
                slot
            }
            None => {
                assert!(
                    self.slab.len() < u32::MAX as usize,
                    "more than 2^32 events in flight"
                );
                self.slab.push(Some(event));
                (self.slab.len() - 1) as u32
            }
        };
        self.heap.push(Key {
            at,
            seq: self.seq,
            slot,
        });
    }

    /// The earliest event, ties broken by scheduling order.
    pub fn pop(&mut self) -> Option<(Time, E)> {
        let key = self.heap.pop()?;
        let event = self.slab[key.slot as usize].take();
        self.free.push(key.slot);
        match event {
            Some(event) => Some((key.at, event)),
            None => unreachable!("every heap key points at a filled slot"),
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Every event waiting, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &E> {
        self.slab.iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_ties_in_scheduling_order() {
        let mut queue = EventQueue::default();
        queue.push(Time(5), "b");
        queue.push(Time(1), "a");
        queue.push(Time(5), "c");
        queue.push(Time(3), "x");
        let order: Vec<&str> = std::iter::from_fn(|| queue.pop().map(|(_, e)| e)).collect();
        assert_eq!(order, ["a", "x", "b", "c"]);
    }
}
