//! Value interning: every distinct record value (a string the workload made unique) gets a
//! 4-byte [`ValueId`]; the strings live once, back to back, in arenas. The values are split
//! into two shards by a bit of their hash, each with its own arena and table, so that the
//! final log's millions of values can be interned on two threads at once
//! ([`Interner::intern_all`]); the shard is the id's lowest bit. It owns only the mapping
//! between strings and ids, not what the checker knows about a value.

use hashbrown::HashTable;

/// The id of an interned value: (index in its shard << 1) | shard. Ids of one shard are dense,
/// in order of first appearance, so the ids in use are nearly dense.
pub type ValueId = u32;

const SHARDS: usize = 2;

/// One shard: an arena of strings with a hash table of local indices into it.
#[derive(Default)]
struct Shard {
    arena: String,
    /// `ends[i]` is where value `i` ends in `arena`; it starts where `i - 1` ends.
    ends: Vec<usize>,
    /// (local index, 32-bit hash of the value): the stored hash lets the table grow without
    /// reading the arena, and rejects most non-matching slots without touching it.
    table: HashTable<(u32, u32)>,
}

impl Shard {
    /// The local index of `value` (hash `h`), interning it if new; true when it was new.
    fn intern(&mut self, value: &str, h: u32) -> Option<(u32, bool)> {
        let (arena, ends) = (&self.arena, &self.ends);
        let matches = |&(i, other): &(u32, u32)| other == h && get(arena, ends, i) == value;
        if let Some(&(i, _)) = self.table.find(table_hash(h), matches) {
            return Some((i, false));
        }
        // Local indices stay below 2^31 so that the id (index << 1 | shard) fits a u32 and
        // is never ValueId::MAX.
        let i = u32::try_from(self.ends.len())
            .ok()
            .filter(|&i| i < (1 << 31) - 1)?;
        self.arena.push_str(value);
        self.ends.push(self.arena.len());
        self.table
            .insert_unique(table_hash(h), (i, h), |&(_, other)| table_hash(other));
        Some((i, true))
    }

    fn reserve(&mut self, more: usize, bytes: usize) {
        self.table.reserve(more, |&(_, h)| table_hash(h));
        self.ends.reserve(more);
        self.arena.reserve(bytes);
    }
}

/// Interned strings in two shards.
#[derive(Default)]
pub struct Interner {
    shards: [Shard; SHARDS],
}

fn shard_of(h: u32) -> usize {
    (h >> 31) as usize
}

fn id_of(shard: usize, local: u32) -> ValueId {
    (local << 1) | shard as u32
}

impl Interner {
    /// The string of an id this interner returned.
    pub fn get(&self, id: ValueId) -> &str {
        let shard = &self.shards[(id & 1) as usize];
        get(&shard.arena, &shard.ends, id >> 1)
    }

    /// Values interned so far.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.ends.len()).sum()
    }

    /// One past the highest id handed out.
    pub fn id_bound(&self) -> usize {
        self.shards
            .iter()
            .enumerate()
            .map(|(s, shard)| match shard.ends.len() {
                0 => 0,
                n => id_of(s, n as u32 - 1) as usize + 1,
            })
            .max()
            .unwrap_or(0)
    }

    /// A read-only copy of the strings interned so far, for another thread: ids it knows mean
    /// the same value in both.
    pub fn freeze(&self) -> Frozen {
        Frozen {
            shards: [0, 1].map(|s| (self.shards[s].arena.clone(), self.shards[s].ends.clone())),
        }
    }

    /// Makes room for `more` values of `bytes` bytes in all, without growing the tables and
    /// the arenas step by step.
    pub fn reserve(&mut self, more: usize, bytes: usize) {
        for shard in &mut self.shards {
            shard.reserve(more / SHARDS + more / 16, bytes / SHARDS + bytes / 16);
        }
    }

    /// The id of `value` if it was interned before.
    #[cfg(test)]
    pub fn lookup(&self, value: &str) -> Option<ValueId> {
        let h = hash32(value);
        let s = shard_of(h);
        let shard = &self.shards[s];
        let matches =
            |&(i, other): &(u32, u32)| other == h && get(&shard.arena, &shard.ends, i) == value;
        shard
            .table
            .find(table_hash(h), matches)
            .map(|&(i, _)| id_of(s, i))
    }

    /// The id of `value`, interning it if new; the bool is true when it was new. Returns
    /// `None` only past 4 billion distinct values.
    pub fn intern(&mut self, value: &str) -> Option<(ValueId, bool)> {
        let h = hash32(value);
        let s = shard_of(h);
        let (local, new) = self.shards[s].intern(value, h)?;
        Some((id_of(s, local), new))
    }

    /// The ids [`Interner::intern`] would give every value, in order, interned on one thread
    /// per shard; [`NO_ID`] past 4 billion values.
    pub fn intern_all<'v, I>(&mut self, values: I) -> Vec<ValueId>
    where
        I: Iterator<Item = &'v str> + Clone + Send + Sync,
    {
        let hashes: Vec<u32> = values.clone().map(hash32).collect();
        let (first, second) = self.shards.split_at_mut(1);
        // Each thread keeps the ids of its own shard's values, in order.
        let work = |s: usize, shard: &mut Shard| -> Vec<ValueId> {
            let mine = hashes
                .iter()
                .zip(values.clone())
                .filter(|(&h, _)| shard_of(h) == s);
            mine.map(|(&h, v)| {
                shard
                    .intern(v, h)
                    .map_or(NO_ID, |(local, _)| id_of(s, local))
            })
            .collect()
        };
        let (a, b) = std::thread::scope(|scope| {
            let other = scope.spawn(|| work(1, &mut second[0]));
            let a = work(0, &mut first[0]);
            // A panic on the other thread is a bug in this crate; it is re-raised here.
            (
                a,
                other
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            )
        });
        let (mut a, mut b) = (a.into_iter(), b.into_iter());
        let mut next = |h: &u32| match shard_of(*h) {
            0 => a.next(),
            _ => b.next(),
        };
        hashes.iter().map(|h| next(h).unwrap_or(NO_ID)).collect()
    }
}

/// What [`Interner::intern_all`] gives a value past 4 billion; never a real id.
pub const NO_ID: ValueId = ValueId::MAX;

/// Interned strings frozen at one moment ([`Interner::freeze`]).
pub struct Frozen {
    shards: [(String, Vec<usize>); SHARDS],
}

impl Frozen {
    /// The string of `id`, when it was interned before the freeze.
    pub fn get(&self, id: ValueId) -> Option<&str> {
        let (arena, ends) = &self.shards[(id & 1) as usize];
        let local = id >> 1;
        ((local as usize) < ends.len()).then(|| get(arena, ends, local))
    }
}

fn get<'a>(arena: &'a str, ends: &[usize], local: u32) -> &'a str {
    let id = local as usize;
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
    fn interning_returns_stable_ids() {
        let mut interner = Interner::default();
        let values: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
        let mut ids = Vec::new();
        for v in &values {
            let (id, new) = interner.intern(v).unwrap();
            assert!(new);
            ids.push(id);
        }
        assert_eq!(interner.len(), 10_000);
        assert!(
            interner.id_bound() < 10_000 + 1_000,
            "ids stay nearly dense"
        );
        for (v, &id) in values.iter().zip(&ids) {
            assert_eq!(interner.intern(v), Some((id, false)));
            assert_eq!(interner.lookup(v), Some(id));
            assert_eq!(interner.get(id), v);
        }
        assert_eq!(interner.lookup("10000"), None);
        let (empty, new) = interner.intern("").unwrap();
        assert!(new);
        assert_eq!(interner.get(empty), "");
    }

    #[test]
    fn interning_on_two_threads_gives_what_one_would() {
        let values: Vec<String> = (0..5_000).map(|i| format!("v{}", i % 3_000)).collect();
        let refs: Vec<&str> = values.iter().map(String::as_str).collect();
        let mut one = Interner::default();
        let expected: Vec<_> = refs.iter().map(|v| one.intern(v)).collect();
        let expected: Vec<ValueId> = expected.iter().map(|got| got.unwrap().0).collect();
        let mut two = Interner::default();
        assert_eq!(two.intern_all(refs.iter().copied()), expected);
        let frozen = two.freeze();
        for (v, id) in refs.iter().zip(&expected) {
            assert_eq!(frozen.get(*id), Some(*v));
        }
    }
}
