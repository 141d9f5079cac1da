//! The compact name store: domain name → category bitset, matched by suffix.
//!
//! Keys are names with their labels reversed and joined by [`SEPARATOR`] (`www.example.com` →
//! `com␁example␁www`), held in
//! an [`fst::Map`] whose values are `u64` category bitsets. A lookup walks the automaton label by
//! label from the TLD down and ORs the value of every listed ancestor it passes, so a listed
//! name blocks its subdomains and a name in several lists carries all their categories.
//!
//! Invariants: the map is immutable once built; every key is a name that passed
//! [`check_host_name`](super::parse::check_host_name), so no stored label contains the
//! separator; a lookup allocates nothing and never fails.

use fst::raw::{Node, Output};

/// Joins reversed labels in a key. It sorts below every byte a label may hold (`-`, digits,
/// `_`, letters), so all names under `example.com` sort right after it, before `example-x.com`:
/// that lets the builder fold covered subdomains with a simple stack.
const SEPARATOR: u8 = 0x01;

/// A built, immutable store.
///
/// ```
/// use kidsafe::blocklist::StoreBuilder;
///
/// let mut builder = StoreBuilder::default();
/// builder.insert("casino.example", 2); // category bit 2
/// let store = builder.build();
/// assert_eq!(store.lookup_str("www.casino.example"), 1 << 2); // subdomains match
/// assert_eq!(store.lookup_str("notcasino.example"), 0); // whole labels only
/// ```
#[derive(Clone)]
pub struct Store {
    map: fst::Map<Vec<u8>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("keys", &self.map.len())
            .field("bytes", &self.map.as_fst().size())
            .finish()
    }
}

/// The empty store, built once: building even an empty automaton allocates and checksums, and
/// empty stores are common (profiles without allow lists, no grants in force).
static EMPTY: std::sync::LazyLock<Store> = std::sync::LazyLock::new(|| Store {
    map: fst::MapBuilder::memory()
        .into_inner()
        .ok()
        .and_then(|bytes| fst::Map::new(bytes).ok())
        .unwrap_or_default(),
});

impl Default for Store {
    fn default() -> Self {
        EMPTY.clone()
    }
}

impl Store {
    /// The union of the bitsets of every listed suffix of `labels`, which must iterate the
    /// name's labels from the leftmost to the TLD (as `hickory_proto::rr::Name::iter` does).
    /// Case is folded here, so callers can pass names exactly as they came off the wire.
    pub fn lookup<'a, I>(&self, labels: I) -> u64
    where
        I: DoubleEndedIterator<Item = &'a [u8]>,
    {
        let fst = self.map.as_fst();
        let mut node: Node<'_> = fst.root();
        let mut out = Output::zero();
        let mut bits = 0u64;
        for (depth, label) in labels.rev().enumerate() {
            if depth > 0 {
                let Some(i) = node.find_input(SEPARATOR) else {
                    return bits;
                };
                let t = node.transition(i);
                out = out.cat(t.out);
                node = fst.node(t.addr);
            }
            for &byte in label {
                // A wire label may hold any byte; the separator must not splice two labels.
                if byte == SEPARATOR {
                    return bits;
                }
                let Some(i) = node.find_input(byte.to_ascii_lowercase()) else {
                    return bits;
                };
                let t = node.transition(i);
                out = out.cat(t.out);
                node = fst.node(t.addr);
            }
            if node.is_final() {
                bits |= out.cat(node.final_output()).value();
            }
        }
        bits
    }

    /// Like [`Store::lookup`], but keeps apart the bits of the name itself and those of its
    /// listed ancestors (for exact `=name` and `*.name` rules).
    pub fn lookup_parts<'a, I>(&self, labels: I) -> (u64, u64)
    where
        I: DoubleEndedIterator<Item = &'a [u8]>,
    {
        let fst = self.map.as_fst();
        let mut node: Node<'_> = fst.root();
        let mut out = Output::zero();
        let (mut own, mut ancestors) = (0u64, 0u64);
        let mut labels = labels.rev().peekable();
        let mut depth = 0;
        while let Some(label) = labels.next() {
            if depth > 0 {
                let Some(i) = node.find_input(SEPARATOR) else {
                    return (own, ancestors);
                };
                let t = node.transition(i);
                out = out.cat(t.out);
                node = fst.node(t.addr);
            }
            depth += 1;
            for &byte in label {
                if byte == SEPARATOR {
                    return (own, ancestors);
                }
                let Some(i) = node.find_input(byte.to_ascii_lowercase()) else {
                    return (own, ancestors);
                };
                let t = node.transition(i);
                out = out.cat(t.out);
                node = fst.node(t.addr);
            }
            if node.is_final() {
                let value = out.cat(node.final_output()).value();
                if labels.peek().is_none() {
                    own |= value;
                } else {
                    ancestors |= value;
                }
            }
        }
        (own, ancestors)
    }

    /// Every listed suffix of a dotted name with its bits, shortest first (for `explain`).
    pub fn matching_suffixes(&self, name: &str) -> Vec<(String, u64)> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let labels: Vec<&str> = name.split('.').collect();
        (0..labels.len())
            .rev()
            .filter_map(|start| {
                let suffix = labels[start..].join(".");
                let (own, _) = self.lookup_parts(suffix.split('.').map(str::as_bytes));
                (own != 0).then_some((suffix, own))
            })
            .collect()
    }

    /// Looks up a dotted name (tests, `explain`, tools); the hot path uses [`Store::lookup`].
    pub fn lookup_str(&self, name: &str) -> u64 {
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.is_empty() {
            return 0;
        }
        self.lookup(name.split('.').map(str::as_bytes))
    }

    /// A store from automaton bytes written by [`Store::as_bytes`], if they are a well-formed
    /// automaton whose checksum holds.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        let map = fst::Map::new(bytes).ok()?;
        map.as_fst().verify().ok()?;
        Some(Self { map })
    }

    /// The automaton's bytes (for the compiled-store cache).
    pub fn as_bytes(&self) -> &[u8] {
        self.map.as_fst().as_bytes()
    }

    /// How many keys the store holds after redundant subdomains were folded away.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Bytes of the automaton (what the store costs in RAM).
    pub fn size_bytes(&self) -> usize {
        self.map.as_fst().size()
    }
}

/// A generous bound on automaton bytes per name (real lists need about 12, random names 17).
/// Reserved, not touched, so the excess costs address space only.
const AUTOMATON_BYTES_PER_NAME: usize = 32;

/// A capacity every large buffer of a build is given, so that the allocator maps it on its own
/// and returns it to the OS when it is freed.
///
/// glibc's malloc serves a request from a private mapping only above its mmap threshold (128 KiB
/// at first), and every time it frees such a mapping no larger than `DEFAULT_MMAP_THRESHOLD_MAX`
/// (32 MiB on 64-bit systems, 512 KiB on 32-bit ones; see mallopt(3)) it raises that threshold to
/// the mapping's size and its trim threshold to twice that. Freeing the first build's 20–27 MB
/// buffers did exactly that, so every later build took its buffers from the builder thread's
/// heap, which is trimmed only from the top: about 42 MB of freed scratch stayed resident after
/// the first reload of a million names (live heap 10.9 MiB, RSS 67 MiB; `malloc_trim` brought it
/// to 20 MiB). Reserving above the ceiling keeps every such buffer a mapping of its own and never
/// moves the thresholds. The pages past what a build writes are never touched, so the excess is
/// address space, not memory; musl maps large requests on its own anyway.
pub(crate) const ALWAYS_MAPPED: usize = (32 << 20) + (64 << 10);

/// Requests below this are served from the heap whatever the mmap threshold (its default).
const HEAP_SIZED: usize = 128 << 10;

/// The capacity to reserve for a build buffer that needs `bytes`: at least [`ALWAYS_MAPPED`]
/// when it would be mapped at all.
pub(crate) fn scratch_capacity(bytes: usize) -> usize {
    if bytes >= HEAP_SIZED {
        bytes.max(ALWAYS_MAPPED)
    } else {
        bytes
    }
}

/// One pending key (16 bytes): its first 8 bytes (big-endian, zero-padded), a slice of the builder's arena
/// and its category bit. The prefix settles most comparisons of the sort without touching the
/// arena, which at a million names is the difference between cache hits and misses.
#[derive(Clone, Copy)]
struct Pending {
    prefix: u64,
    start: u32,
    len: u8,
    bit: u8,
}

/// Collects names, then sorts, merges and compiles them into a [`Store`] in one pass.
///
/// Names live in one arena, not in a `String` each: at a million names that halves the peak
/// memory of a build.
#[derive(Default)]
pub struct StoreBuilder {
    arena: Vec<u8>,
    pending: Vec<Pending>,
}

impl StoreBuilder {
    /// A builder with room for `arena_bytes` of names and `names` entries before it grows.
    /// Large reservations are rounded up past the allocator's mmap ceiling (see
    /// [`ALWAYS_MAPPED`]), so the build's scratch goes back to the OS when it is dropped.
    pub fn with_capacity(arena_bytes: usize, names: usize) -> Self {
        let entry = std::mem::size_of::<Pending>();
        let pending = scratch_capacity(names.saturating_mul(entry)).div_ceil(entry);
        Self {
            arena: Vec::with_capacity(scratch_capacity(arena_bytes)),
            pending: Vec::with_capacity(pending),
        }
    }

    /// Adds a normalised name (see the module invariants) in category bit `bit` (0–63).
    /// Names longer than 253 bytes and bits past 63 are ignored: callers never produce them.
    pub fn insert(&mut self, name: &str, bit: u8) {
        if usize::from(bit) >= crate::category::MAX_CATEGORIES {
            return;
        }
        let Ok(len) = u8::try_from(name.len()) else {
            return;
        };
        let Ok(start) = u32::try_from(self.arena.len()) else {
            return;
        };
        for (i, label) in name.rsplit('.').enumerate() {
            if i > 0 {
                self.arena.push(SEPARATOR);
            }
            self.arena.extend_from_slice(label.as_bytes());
        }
        let key = &self.arena[start as usize..];
        let mut head = [0u8; 8];
        let n = key.len().min(8);
        head[..n].copy_from_slice(&key[..n]);
        self.pending.push(Pending {
            prefix: u64::from_be_bytes(head),
            start,
            len,
            bit,
        });
    }

    /// How many names were inserted (duplicates included).
    pub fn inserted(&self) -> usize {
        self.pending.len()
    }

    /// Sorts, merges duplicates, drops subdomains already covered by a listed ancestor with the
    /// same or more categories, and compiles the automaton.
    pub fn build(self) -> Store {
        if self.pending.is_empty() {
            return Store::default();
        }
        // Sized up front so the automaton is one allocation that is never moved: a growing
        // Vec would leave its old copies in the allocator, which keeps them resident. Large
        // ones are reserved past the mmap ceiling (see `ALWAYS_MAPPED`).
        let estimate = scratch_capacity(
            self.pending
                .len()
                .saturating_mul(AUTOMATON_BYTES_PER_NAME)
                .max(4096),
        );
        let Ok(mut bytes) = self.compile_into(Vec::with_capacity(estimate)) else {
            return Store::default(); // writing to a Vec cannot fail
        };
        // A large automaton keeps its reservation past the mmap ceiling: shrunk to its length,
        // it would raise glibc's mmap threshold when a later reload frees it. The untouched
        // tail is address space only.
        bytes.shrink_to(scratch_capacity(bytes.len()));
        let map = fst::Map::new(bytes).unwrap_or_else(|_| empty_map());
        Store { map }
    }

    /// [`StoreBuilder::build`], but writes the automaton to `out` (a file) instead of memory,
    /// and returns `out`. The names and the automaton are then never in memory together: at a
    /// million names that is 11 MB less at the peak of a build. Read the bytes back with
    /// [`Store::from_bytes`].
    pub fn build_into<W: std::io::Write>(self, out: W) -> std::io::Result<W> {
        self.compile_into(out).map_err(|e| match e {
            fst::Error::Io(e) => e,
            other => std::io::Error::other(other),
        })
    }

    fn compile_into<W: std::io::Write>(self, out: W) -> fst::Result<W> {
        let StoreBuilder { arena, mut pending } = self;
        let key = |p: &Pending| &arena[p.start as usize..p.start as usize + usize::from(p.len)];
        // Zero padding sorts below every key byte (the separator is 1), so comparing prefixes
        // first gives the same order as comparing whole keys.
        pending.sort_unstable_by(|a, b| a.prefix.cmp(&b.prefix).then_with(|| key(a).cmp(key(b))));

        let mut builder = fst::MapBuilder::new(out)?;
        // Ancestors of the current key that are themselves stored: (key, accumulated bits).
        let mut ancestors: Vec<(&[u8], u64)> = Vec::new();
        let mut i = 0;
        while i < pending.len() {
            let current = key(&pending[i]);
            let mut bits = 0;
            while i < pending.len() && key(&pending[i]) == current {
                bits |= 1u64 << u32::from(pending[i].bit);
                i += 1;
            }
            while let Some((ancestor, _)) = ancestors.last() {
                if is_label_prefix(ancestor, current) {
                    break;
                }
                ancestors.pop();
            }
            let inherited = ancestors.last().map_or(0, |(_, b)| *b);
            if bits & !inherited == 0 {
                continue; // fully covered by an ancestor already
            }
            match builder.insert(current, bits) {
                Ok(()) => {}
                Err(fst::Error::Io(e)) => return Err(e.into()),
                // Keys arrive sorted and unique, so no other error can happen.
                Err(_) => continue,
            }
            ancestors.push((current, bits | inherited));
        }
        drop(ancestors);
        drop(pending);
        drop(arena);
        builder.into_inner()
    }
}

fn empty_map() -> fst::Map<Vec<u8>> {
    fst::Map::default()
}

/// Whether `ancestor` is `key` or a whole-label suffix of it in reversed form
/// (`com␁example` is one of `com␁example␁www`, not of `com␁examples`).
fn is_label_prefix(ancestor: &[u8], key: &[u8]) -> bool {
    key.starts_with(ancestor) && (key.len() == ancestor.len() || key[ancestor.len()] == SEPARATOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(entries: &[(&str, u8)]) -> Store {
        let mut b = StoreBuilder::default();
        for (name, bits) in entries {
            b.insert(name, *bits);
        }
        b.build()
    }

    #[test]
    fn suffix_matching_is_label_wise() {
        let s = store(&[("example.com", 0), ("ads.other.net", 1)]);
        assert_eq!(s.lookup_str("example.com"), 1);
        assert_eq!(s.lookup_str("www.example.com"), 1);
        assert_eq!(s.lookup_str("a.b.c.example.com."), 1);
        assert_eq!(s.lookup_str("notexample.com"), 0);
        assert_eq!(s.lookup_str("example.com.evil"), 0);
        assert_eq!(s.lookup_str("com"), 0);
        assert_eq!(s.lookup_str("other.net"), 0);
        assert_eq!(s.lookup_str("x.ads.other.net"), 2);
        assert_eq!(s.lookup_str(""), 0);
    }

    #[test]
    fn case_is_folded_and_dotted_labels_never_match() {
        let s = store(&[("ads.example.com", 0)]);
        assert_eq!(
            s.lookup(["ADS", "Example", "COM"].into_iter().map(str::as_bytes)),
            1
        );
        // One wire label `ads.example` under `com` is not the name ads.example.com,
        // and a label holding the separator byte cannot splice two labels either.
        assert_eq!(
            s.lookup(["ads.example", "com"].into_iter().map(str::as_bytes)),
            0
        );
        assert_eq!(
            s.lookup(["ads\u{1}example", "com"].into_iter().map(str::as_bytes)),
            0
        );
    }

    #[test]
    fn ancestors_union_their_categories() {
        let s = store(&[
            ("example.com", 0),
            ("sub.example.com", 1),
            ("example.com", 2),
        ]);
        assert_eq!(s.lookup_str("example.com"), 0b101);
        assert_eq!(s.lookup_str("x.sub.example.com"), 0b111);
    }

    #[test]
    fn covered_subdomains_are_folded_away() {
        let s = store(&[
            ("example.com", 0),
            ("a.example.com", 0),
            ("b.example.com", 1),
            ("b.example.com", 0),
            ("example-x.com", 0),
            ("c.example.com", 0),
        ]);
        // a and c add nothing to example.com; b adds bit 2.
        assert_eq!(s.len(), 3);
        assert_eq!(s.lookup_str("c.example.com"), 1);
        assert_eq!(s.lookup_str("b.example.com"), 3);
        assert_eq!(s.lookup_str("example-x.com"), 1);
    }

    #[test]
    fn own_bits_and_ancestor_bits_are_kept_apart() {
        let s = store(&[("example.com", 0), ("www.example.com", 1)]);
        let parts = |n: &str| s.lookup_parts(n.split('.').map(str::as_bytes));
        assert_eq!(parts("example.com"), (1, 0));
        assert_eq!(parts("www.example.com"), (2, 1));
        assert_eq!(parts("a.www.example.com"), (0, 3));
        assert_eq!(parts("other.com"), (0, 0));
        assert_eq!(
            s.matching_suffixes("a.www.example.com."),
            vec![
                ("example.com".to_string(), 1),
                ("www.example.com".to_string(), 2)
            ]
        );
    }

    #[test]
    fn building_into_a_writer_gives_the_same_automaton() {
        let entries = [("example.com", 0), ("a.example.com", 1), ("other.net", 2)];
        let in_memory = store(&entries);
        let mut b = StoreBuilder::default();
        for (name, bit) in entries {
            b.insert(name, bit);
        }
        let written = b.build_into(Vec::new()).expect("write");
        assert_eq!(written, in_memory.as_bytes());
        let read = Store::from_bytes(written).expect("valid");
        assert_eq!(read.lookup_str("x.a.example.com"), 0b11);
    }

    #[test]
    fn empty_store_matches_nothing() {
        let s = Store::default();
        assert!(s.is_empty());
        assert_eq!(s.lookup_str("example.com"), 0);
    }
}
