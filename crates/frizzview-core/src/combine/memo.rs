//! The crate's one memo type and its one input hasher.
//!
//! [`GenLru`] is a thread-safe map from keys to shared values, each stamped with the generation
//! (one computation) that last used it and its size in bytes. It holds at most its byte budget
//! of values beyond those used by the current generation (a computation's working set is alive
//! anyway while it runs): inserting evicts the least recently used older values first, and
//! [`GenLru::evict_unused`] drops values unused for a few generations. The engine's results, the
//! local basis' kernel evaluations and normal-equation sums, standard practice's stencils and
//! pieces and the window's decimated exposure curves all use it.
//!
//! [`Lane`] and [`hash_f64`] fingerprint input arrays for cache keys. A lane's step
//! `h -> rotl((h ^ w) * K, 29)` is a bijection of the state for a fixed word and of the word for
//! a fixed state (K is odd), and the finishing mix is a bijection too, so two inputs of equal
//! length that differ only in the words one lane sees never collide. Inputs that differ more
//! widely collide with probability about 2^-64 per pair compared. Why that is safe for the
//! caches: a hashed key is only ever compared with entries that agree with it exactly in
//! everything else (the same visit address, the same shift bits, grid, kernel and sizes), and a
//! cache holds at most a few generations of such entries (tens per visit). Even
//! 10^9 lookups against 100 candidate entries each give a chance of a wrong hit of about
//! 10^11 / 1.8e19 = 5e-9 over the whole session. The input data are the user's own files, not
//! an adversary choosing colliding inputs.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// The multiplier of a [`Lane`] step (odd: multiplication is a bijection mod 2^64).
const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// One chain of the input hasher: feed 64-bit words with [`Lane::add`], then [`Lane::finish`].
#[derive(Clone, Copy, Debug)]
pub struct Lane {
    h: u64,
    n: u64,
}

impl Default for Lane {
    fn default() -> Self {
        Self::new()
    }
}

impl Lane {
    /// A fresh lane.
    #[must_use]
    pub fn new() -> Self {
        Self {
            h: 0x243f_6a88_85a3_08d3,
            n: 0,
        }
    }

    /// A lane with its own starting state (independent lanes of one hash).
    #[must_use]
    pub fn seeded(seed: u64) -> Self {
        Self {
            h: 0x243f_6a88_85a3_08d3 ^ seed.wrapping_mul(K),
            n: 0,
        }
    }

    /// Feed one word.
    #[inline]
    pub fn add(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(K).rotate_left(29);
        self.n += 1;
    }

    /// The fingerprint of the words fed (the count included), murmur3's 64-bit finaliser.
    #[must_use]
    pub fn finish(self) -> u64 {
        let mut h = self.h ^ self.n.wrapping_mul(K);
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Fingerprint of a slice of 64-bit words.
#[must_use]
pub fn hash_words(words: impl Iterator<Item = u64>) -> u64 {
    let mut lane = Lane::new();
    for w in words {
        lane.add(w);
    }
    lane.finish()
}

/// Fingerprint of the bit patterns of `v`: four independent lanes over interleaved elements
/// (one chain is bound by the multiply's latency: ~1 ms per recompute for 30 APOGEE visits),
/// then each lane's result fed, in order, to a fifth.
#[must_use]
pub fn hash_f64(v: &[f64]) -> u64 {
    let mut lanes = [
        Lane::seeded(1),
        Lane::seeded(2),
        Lane::seeded(3),
        Lane::seeded(4),
    ];
    let mut chunks = v.chunks_exact(4);
    for c in &mut chunks {
        for q in 0..4 {
            lanes[q].add(c[q].to_bits());
        }
    }
    for (q, x) in chunks.remainder().iter().enumerate() {
        lanes[q].add(x.to_bits());
    }
    let mut out = Lane::seeded(v.len() as u64);
    for lane in lanes {
        out.add(lane.finish());
    }
    out.finish()
}

#[derive(Debug)]
struct Slot<V> {
    used: u64,
    bytes: usize,
    value: Arc<V>,
}

#[derive(Debug)]
struct Inner<K, V> {
    map: HashMap<K, Slot<V>>,
    bytes: usize,
}

/// A generation-stamped, byte-bounded memo; see the module docs.
#[derive(Debug)]
pub struct GenLru<K, V> {
    inner: Mutex<Inner<K, V>>,
    budget: AtomicUsize,
}

impl<K: Eq + Hash + Clone, V> GenLru<K, V> {
    /// An empty memo holding at most `budget` bytes of values older than the current generation.
    #[must_use]
    pub fn new(budget: usize) -> Self {
        Self {
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                bytes: 0,
            }),
            budget: AtomicUsize::new(budget),
        }
    }

    /// The lock, also after a panic elsewhere: every update below leaves the map and its byte
    /// count consistent before anything can panic, so a poisoned lock holds valid data.
    fn lock(&self) -> MutexGuard<'_, Inner<K, V>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The byte budget.
    #[must_use]
    pub fn budget(&self) -> usize {
        self.budget.load(Ordering::Relaxed)
    }

    /// Change the byte budget (applied at the next insertion).
    pub fn set_budget(&self, bytes: usize) {
        self.budget.store(bytes, Ordering::Relaxed);
    }

    /// The value under `key` if `valid` accepts it, now marked as used by `gen_`.
    pub fn get(&self, key: &K, gen_: u64, valid: impl FnOnce(&V) -> bool) -> Option<Arc<V>> {
        let mut inner = self.lock();
        let slot = inner.map.get_mut(key)?;
        if !valid(&slot.value) {
            return None;
        }
        slot.used = slot.used.max(gen_);
        Some(Arc::clone(&slot.value))
    }

    /// Store `value` (of `bytes` bytes) under `key` as used by `gen_`, then evict the least
    /// recently used values of older generations until those fit the budget.
    pub fn insert(&self, key: K, value: Arc<V>, bytes: usize, gen_: u64) {
        let budget = self.budget();
        let mut inner = self.lock();
        let slot = Slot {
            used: gen_,
            bytes,
            value,
        };
        inner.bytes += bytes;
        if let Some(old) = inner.map.insert(key, slot) {
            inner.bytes -= old.bytes;
        }
        if inner.bytes <= budget {
            return;
        }
        let current: usize = inner
            .map
            .values()
            .filter(|s| s.used >= gen_)
            .map(|s| s.bytes)
            .sum();
        if inner.bytes - current <= budget {
            return;
        }
        let mut older: Vec<(u64, K)> = inner
            .map
            .iter()
            .filter(|(_, s)| s.used < gen_)
            .map(|(k, s)| (s.used, k.clone()))
            .collect();
        older.sort_by_key(|(used, _)| *used);
        for (_, k) in older {
            if inner.bytes - current <= budget {
                break;
            }
            if let Some(s) = inner.map.remove(&k) {
                inner.bytes -= s.bytes;
            }
        }
    }

    /// The value under `key` if `valid` accepts it, else the one `make` builds (stored with the
    /// size `size` gives); and whether it was found. The lock is not held while `make` runs.
    pub fn get_or_make(
        &self,
        key: K,
        gen_: u64,
        valid: impl FnOnce(&V) -> bool,
        make: impl FnOnce() -> V,
        size: impl FnOnce(&V) -> usize,
    ) -> (Arc<V>, bool) {
        if let Some(v) = self.get(&key, gen_, valid) {
            return (v, true);
        }
        let v = Arc::new(make());
        let bytes = size(&v);
        self.insert(key, Arc::clone(&v), bytes, gen_);
        (v, false)
    }

    /// Drop the values whose last use is `keep` or more generations before `gen_`, except those
    /// `spare` accepts.
    pub fn evict_unused(&self, gen_: u64, keep: u64, spare: impl Fn(&K) -> bool) {
        self.evict_unused_by(gen_, keep, |k, _| spare(k));
    }

    /// [`GenLru::evict_unused`] with a `spare` that also sees the value.
    pub fn evict_unused_by(&self, gen_: u64, keep: u64, spare: impl Fn(&K, &V) -> bool) {
        let mut inner = self.lock();
        inner
            .map
            .retain(|k, s| s.used + keep > gen_ || spare(k, &s.value));
        inner.bytes = inner.map.values().map(|s| s.bytes).sum();
    }

    /// Keep only the values whose key `f` accepts.
    pub fn retain(&self, f: impl Fn(&K) -> bool) {
        let mut inner = self.lock();
        inner.map.retain(|k, _| f(k));
        inner.bytes = inner.map.values().map(|s| s.bytes).sum();
    }

    /// Drop everything.
    pub fn clear(&self) {
        let mut inner = self.lock();
        inner.map.clear();
        inner.bytes = 0;
    }

    /// Number of values held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// True when nothing is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held (as reported at insertion).
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_budget_evicts_the_least_recently_used_older_values() {
        let m: GenLru<u32, Vec<u8>> = GenLru::new(250);
        for (g, k) in (1..=3).zip([1u32, 2, 3]) {
            m.insert(k, Arc::new(vec![0; 100]), 100, g);
        }
        // 300 bytes: generations 1 and 2 hold 200 beyond the current one (100): within budget.
        assert_eq!((m.len(), m.bytes()), (3, 300));
        // Key 1 used again in generation 4, then key 4 inserted in generation 5: the older
        // values are keys 1 (gen 4), 2 (gen 2), 3 (gen 3) = 300 > 250, so key 2 goes.
        assert!(m.get(&1, 4, |_| true).is_some());
        m.insert(4, Arc::new(vec![0; 100]), 100, 5);
        assert!(m.get(&2, 5, |_| true).is_none());
        assert_eq!((m.len(), m.bytes()), (3, 300));
        // A value larger than the budget is still kept while it is current...
        m.insert(5, Arc::new(vec![0; 1000]), 1000, 6);
        assert!(m.get(&5, 6, |_| true).is_some());
        // ...and everything older than the budget allows is gone.
        assert!(m.bytes() - 1000 <= 250, "{}", m.bytes());
        m.evict_unused(9, 2, |_| false);
        assert!(m.is_empty());
    }

    #[test]
    fn evict_unused_by_spares_what_the_value_test_accepts() {
        let m: GenLru<u32, u32> = GenLru::new(1 << 20);
        m.insert(1, Arc::new(10), 4, 1);
        m.insert(2, Arc::new(20), 4, 1);
        m.insert(3, Arc::new(30), 4, 3);
        // In generation 3 with keep 2, the values last used in generation 1 are unused; the
        // one holding 20 is spared.
        m.evict_unused_by(3, 2, |_, v| *v == 20);
        assert!(m.get(&1, 3, |_| true).is_none());
        assert!(m.get(&2, 3, |_| true).is_some());
        assert!(m.get(&3, 3, |_| true).is_some());
        assert_eq!(m.bytes(), 8);
    }

    #[test]
    fn get_or_make_checks_validity_and_counts_sizes() {
        let m: GenLru<&str, u64> = GenLru::new(1 << 20);
        let (a, hit) = m.get_or_make("a", 1, |_| true, || 7, |_| 8);
        assert!(!hit && *a == 7);
        let (_, hit) = m.get_or_make("a", 2, |_| true, || 9, |_| 8);
        assert!(hit);
        let (b, hit) = m.get_or_make("a", 3, |v| *v == 9, || 9, |_| 8);
        assert!(!hit && *b == 9, "an invalid entry is rebuilt");
        assert_eq!(m.bytes(), 8);
        m.retain(|k| *k != "a");
        assert_eq!(m.bytes(), 0);
    }

    #[test]
    fn the_hasher_separates_single_word_changes_and_lengths() {
        let base: Vec<f64> = (0..1001).map(|i| f64::from(i) * 0.37).collect();
        let h0 = hash_f64(&base);
        for i in [0, 1, 2, 3, 500, 1000] {
            for bit in [0, 1, 31, 52, 63] {
                let mut v = base.clone();
                v[i] = f64::from_bits(v[i].to_bits() ^ (1 << bit));
                assert_ne!(hash_f64(&v), h0, "element {i} bit {bit}");
            }
        }
        assert_ne!(hash_f64(&base[..1000]), h0);
        assert_ne!(hash_f64(&[]), hash_f64(&[0.0]));
        assert_ne!(
            hash_words([1, 2].into_iter()),
            hash_words([2, 1].into_iter())
        );
    }
}
