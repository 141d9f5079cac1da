//! Deterministic synthetic domain names for benches and examples: realistic label structure
//! (2–4 labels, common TLDs, 4–14 character labels), no randomness crate needed.

/// A small xorshift generator: reproducible names from a seed.
pub struct Names {
    state: u64,
}

const TLDS: &[&str] = &[
    "com", "net", "org", "info", "xyz", "top", "al", "de", "fr", "ru", "io", "co.uk", "com.br",
];
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz-";

impl Names {
    /// A generator seeded with `seed` (non-zero).
    pub fn new(seed: u64) -> Self {
        Self { state: seed.max(1) }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    fn label(&mut self, out: &mut String) {
        let len = 4 + (self.next() % 11) as usize;
        for i in 0..len {
            let mut b = ALPHABET[(self.next() % ALPHABET.len() as u64) as usize];
            if b == b'-' && (i == 0 || i + 1 == len) {
                b = b'x';
            }
            out.push(char::from(b));
        }
    }

    /// The next name.
    pub fn name(&mut self) -> String {
        let mut out = String::with_capacity(40);
        let extra = match self.next() % 10 {
            0..=5 => 0,
            6..=8 => 1,
            _ => 2,
        };
        for _ in 0..extra {
            self.label(&mut out);
            out.push('.');
        }
        self.label(&mut out);
        out.push('.');
        out.push_str(TLDS[(self.next() % TLDS.len() as u64) as usize]);
        out
    }
}
