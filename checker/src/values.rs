//! What the checker knows about each distinct value: the partition it was sent to, how its send
//! ended, where it was acknowledged, first read and found in the final log. One fixed-size
//! [`ValueState`] per value keeps memory in proportion to distinct values, not to operations.

pub use crate::intern::NO_ID;
use crate::intern::{Interner, ValueId};

/// "No offset / no index" in the `u64` fields of [`ValueState`].
pub const NONE: u64 = u64::MAX;
/// "No partition" in [`ValueState::part`].
pub const NO_PART: u32 = u32::MAX;

pub const INVOKED: u8 = 1;
pub const OK: u8 = 2;
pub const FAIL: u8 = 4;
pub const INFO: u8 = 8;
pub const READ: u8 = 16;
pub const IN_FINAL: u8 = 32;
/// Some broker's dump holds the value at an offset where the final log does not hold it (a
/// value the final log holds at the same offset is resolved without touching its state).
pub const IN_DUMP: u8 = 64;
/// The send asked for acks=1 or 0 (a schedule's `produce N acks 1` in a run whose producers use
/// acks=all): Kafka promises nothing of it beyond the leader, so its loss is excused whatever
/// the run's own `acks`.
pub const WEAK_ACKS: u8 = 128;
/// `ack_node` / `ack_epoch` of a send that named no acknowledging broker or epoch.
pub const NO_ACK_BY: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
pub struct ValueState {
    /// The partition the value was sent to (a `PartIdx` of the partition registry).
    pub part: u32,
    pub flags: u8,
    /// How many attempts the send took, from its completion (saturating); 0 when no
    /// completion was seen. (It fits in what was padding: a state stays 72 bytes.)
    pub attempts: u8,
    /// The broker and leader epoch an `ok` send names (NO_ACK_BY when it names none).
    pub ack_node: u32,
    pub ack_epoch: u32,
    pub ack_offset: u64,
    pub invoke_index: u64,
    /// History index of the send's completion (`ok`, `fail` or `info`).
    pub completion_index: u64,
    pub ok_time_ns: u64,
    pub read_index: u64,
    pub read_offset: u64,
    pub final_offset: u64,
}

impl Default for ValueState {
    fn default() -> Self {
        ValueState {
            part: NO_PART,
            flags: 0,
            attempts: 0,
            ack_node: NO_ACK_BY,
            ack_epoch: NO_ACK_BY,
            ack_offset: NONE,
            invoke_index: NONE,
            completion_index: NONE,
            ok_time_ns: NONE,
            read_index: NONE,
            read_offset: NONE,
            final_offset: NONE,
        }
    }
}

impl ValueState {
    pub fn has(&self, flag: u8) -> bool {
        self.flags & flag != 0
    }

    /// How many attempts the value's send took: `None` when it was invoked and never
    /// completed (it may have been retried); a value never sent counts as one attempt.
    pub fn send_attempts(&self) -> Option<u32> {
        match self.attempts {
            0 if self.has(INVOKED) => None,
            0 => Some(1),
            n => Some(u32::from(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_stays_72_bytes() {
        // Memory grows with distinct values: one state each (docs/results.md "Speed and
        // memory"). The attempts count must not grow it.
        assert_eq!(std::mem::size_of::<ValueState>(), 72);
    }
}

/// The interner and the state of every value, indexed by [`ValueId`].
#[derive(Default)]
pub struct Values {
    pub interner: Interner,
    pub states: Vec<ValueState>,
}

impl Values {
    /// The id of `value`, adding a fresh state when it is new; `None` past 4 billion values.
    pub fn id(&mut self, value: &str) -> Option<ValueId> {
        let (id, new) = self.interner.intern(value)?;
        if new {
            self.grow_states();
        }
        Some(id)
    }

    /// [`Values::id`] of every value in order, interned on two threads; an id is [`NO_ID`]
    /// past 4 billion values. The new values get their states from [`Values::grow_states`],
    /// which the caller calls once it has freed what it can.
    pub fn ids<'v>(
        &mut self,
        values: impl Iterator<Item = &'v str> + Clone + Send + Sync,
    ) -> Vec<ValueId> {
        self.interner.intern_all(values)
    }

    /// Gives every id handed out a state (ids of the two shards interleave, so a new id may
    /// lie a few places past the last state).
    pub fn grow_states(&mut self) {
        let bound = self.interner.id_bound();
        if self.states.len() < bound {
            self.states.resize(bound, ValueState::default());
        }
    }

    /// Makes room for `more` values of `bytes` bytes in all.
    pub fn reserve(&mut self, more: usize, bytes: usize) {
        self.interner.reserve(more, bytes);
        // Ids of the two shards interleave, so `more` values reach a little past `more` ids;
        // room for that spares a reallocation that would copy (and double) every state.
        self.states.reserve(more + more / 16 + 64);
    }

    /// The id of `value`, which a log holds where `held` is: most records sit where the final
    /// log holds them, and comparing with that one string is much cheaper than a hash-table
    /// probe into millions of values.
    pub fn id_at(&mut self, held: Option<ValueId>, value: &str) -> Option<ValueId> {
        if let Some(id) = held {
            if self.interner.get(id) == value {
                return Some(id);
            }
        }
        self.id(value)
    }

    pub fn state(&self, id: ValueId) -> &ValueState {
        &self.states[id as usize]
    }

    pub fn state_mut(&mut self, id: ValueId) -> &mut ValueState {
        &mut self.states[id as usize]
    }

    pub fn name(&self, id: ValueId) -> String {
        self.interner.get(id).to_string()
    }

    /// Distinct values.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.interner.len()
    }
}
