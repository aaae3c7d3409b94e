//! Value interning: every distinct record value (a string the workload made unique) gets a
//! 4-byte [`ValueId`]; the strings live once, back to back, in one arena. It owns only the
//! mapping between strings and ids, not what the checker knows about a value.

use hashbrown::HashTable;

/// The id of an interned value; ids are dense, in order of first appearance.
pub type ValueId = u32;

/// An arena of strings with a hash table of ids into it.
#[derive(Default)]
pub struct Interner {
    arena: String,
    /// `ends[id]` is where value `id` ends in `arena`; it starts where `id - 1` ends.
    ends: Vec<usize>,
    /// (id, 32-bit hash of the value): the stored hash lets the table grow without reading
    /// the arena, and rejects most non-matching slots without touching it.
    table: HashTable<(ValueId, u32)>,
}

impl Interner {
    /// The string of an id this interner returned.
    pub fn get(&self, id: ValueId) -> &str {
        let id = id as usize;
        let start = if id == 0 { 0 } else { self.ends[id - 1] };
        &self.arena[start..self.ends[id]]
    }

    /// A read-only copy of the strings interned so far, for another thread: ids below its
    /// length mean the same value in both.
    pub fn freeze(&self) -> Frozen {
        Frozen {
            arena: self.arena.clone(),
            ends: self.ends.clone(),
        }
    }

    /// Makes room for `more` values without growing the table step by step.
    pub fn reserve(&mut self, more: usize) {
        self.table.reserve(more, |&(_, h)| table_hash(h));
        self.ends.reserve(more);
    }

    /// The id of `value` if it was interned before.
    #[cfg(test)]
    pub fn lookup(&self, value: &str) -> Option<ValueId> {
        let h = hash32(value);
        let matches = |&(id, other): &(ValueId, u32)| other == h && self.get(id) == value;
        self.table.find(table_hash(h), matches).map(|&(id, _)| id)
    }

    /// The id of `value`, interning it if new; the bool is true when it was new. Returns
    /// `None` only past 4 billion distinct values.
    pub fn intern(&mut self, value: &str) -> Option<(ValueId, bool)> {
        let h = hash32(value);
        let (arena, ends) = (&self.arena, &self.ends);
        let matches = |&(id, other): &(ValueId, u32)| other == h && get(arena, ends, id) == value;
        if let Some(&(id, _)) = self.table.find(table_hash(h), matches) {
            return Some((id, false));
        }
        let id = ValueId::try_from(self.ends.len())
            .ok()
            .filter(|&id| id != ValueId::MAX)?;
        self.arena.push_str(value);
        self.ends.push(self.arena.len());
        self.table
            .insert_unique(table_hash(h), (id, h), |&(_, other)| table_hash(other));
        Some((id, true))
    }
}

/// Interned strings frozen at one moment ([`Interner::freeze`]).
pub struct Frozen {
    arena: String,
    ends: Vec<usize>,
}

impl Frozen {
    /// The string of `id`, when it was interned before the freeze.
    pub fn get(&self, id: ValueId) -> Option<&str> {
        ((id as usize) < self.ends.len()).then(|| get(&self.arena, &self.ends, id))
    }
}

fn get<'a>(arena: &'a str, ends: &[usize], id: ValueId) -> &'a str {
    let id = id as usize;
    let start = if id == 0 { 0 } else { ends[id - 1] };
    &arena[start..ends[id]]
}

/// A fast hasher for the checker's own small keys (process ids, partition indices, offsets):
/// FxHash words with a final avalanche. Inputs are the run's own files, so hash flooding is
/// not a concern.
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0 = (self.0.rotate_left(5) ^ hash_bytes(bytes)).wrapping_mul(K);
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(K);
    }

    fn write_usize(&mut self, n: usize) {
        self.write_u64(n as u64);
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn finish(&self) -> u64 {
        fmix64(self.0)
    }
}

/// A `HashMap` with [`FastHasher`].
pub type FastMap<K, V> = std::collections::HashMap<K, V, std::hash::BuildHasherDefault<FastHasher>>;

const K: u64 = 0xf135_7aea_2e62_a9c5;

/// The 32-bit hash kept beside each id.
fn hash32(value: &str) -> u32 {
    hash_str(value) as u32
}

/// The table's 64-bit hash, derived from the stored 32 bits alone.
fn table_hash(h: u32) -> u64 {
    fmix64(u64::from(h))
}

/// FxHash over 8-byte words with a final avalanche, so that values differing only in their
/// last digits still spread over the table's low bits.
pub fn hash_str(value: &str) -> u64 {
    fmix64(hash_bytes(value.as_bytes()))
}

fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hash = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        hash = (hash.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let mut tail = [0u8; 8];
    tail[..chunks.remainder().len()].copy_from_slice(chunks.remainder());
    (hash.rotate_left(5) ^ u64::from_le_bytes(tail)).wrapping_mul(K)
}

/// MurmurHash3's 64-bit finaliser.
pub fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_returns_stable_dense_ids() {
        let mut interner = Interner::default();
        let values: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
        for (i, v) in values.iter().enumerate() {
            assert_eq!(interner.intern(v), Some((i as ValueId, true)));
        }
        for (i, v) in values.iter().enumerate() {
            assert_eq!(interner.intern(v), Some((i as ValueId, false)));
            assert_eq!(interner.lookup(v), Some(i as ValueId));
            assert_eq!(interner.get(i as ValueId), v);
        }
        assert_eq!(interner.lookup("10000"), None);
        assert_eq!(interner.intern(""), Some((10_000, true)));
        assert_eq!(interner.get(10_000), "");
    }
}
