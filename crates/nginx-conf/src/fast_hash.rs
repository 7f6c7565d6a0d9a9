//! A fast hash for the short keys a configuration is looked up by (paths, host names): eight
//! bytes per multiply. Not for keys an attacker chooses to collide: the configuration's own
//! paths and names only.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed by configuration paths or names, hashed with [`FastHasher`].
pub type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// A `HashSet` of configuration paths, names or addresses, hashed with [`FastHasher`].
pub type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// The hasher of [`FastMap`].
#[derive(Default)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let word = u64::from_le_bytes(c.try_into().unwrap_or_default());
            self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_keys_hash_equal_and_a_map_finds_them() {
        let mut map: FastMap<&str, usize> = FastMap::default();
        for (i, name) in ["a.test", "www.a.test", "a-very-long-host-name.example"]
            .iter()
            .enumerate()
        {
            map.insert(name, i);
        }
        assert_eq!(map.get("www.a.test"), Some(&1));
        assert_eq!(map.get("a-very-long-host-name.example"), Some(&2));
        assert_eq!(map.get("b.test"), None);
    }
}
