//! Store lookups at one million listed names: listed names, subdomains of listed names, and
//! names that are not listed (the common case on a real network).

use criterion::{Criterion, criterion_main};
use kidsafe::blocklist::StoreBuilder;
use std::hint::black_box;

#[path = "synth.rs"]
mod synth;

/// Lookups of listed, subdomain and unlisted names in a 1M-name store.
pub fn lookups(c: &mut Criterion) {
    let mut names = synth::Names::new(42);
    let mut builder = StoreBuilder::default();
    let listed: Vec<String> = (0..1_000_000).map(|_| names.name()).collect();
    for name in &listed {
        builder.insert(name, 0);
    }
    let store = builder.build();
    let unlisted: Vec<String> = (0..10_000)
        .map(|_| format!("www.{}", names.name()))
        .collect();
    let subdomains: Vec<String> = listed
        .iter()
        .take(10_000)
        .map(|n| format!("cdn.img.{n}"))
        .collect();

    let mut group = c.benchmark_group("store_1m");
    for (label, set) in [
        ("listed", &listed[..10_000]),
        ("subdomain", &subdomains[..]),
        ("unlisted", &unlisted[..]),
    ] {
        let wire: Vec<Vec<Vec<u8>>> = set
            .iter()
            .map(|n| n.split('.').map(|l| l.as_bytes().to_vec()).collect())
            .collect();
        let mut i = 0;
        group.bench_function(label, |b| {
            b.iter(|| {
                let labels = &wire[i % wire.len()];
                i += 1;
                black_box(store.lookup(labels.iter().map(Vec::as_slice)))
            })
        });
    }
    group.finish();
}

// criterion's macros generate undocumented functions.
#[allow(missing_docs)]
mod entry {
    criterion::criterion_group!(benches, super::lookups);
}
criterion_main!(entry::benches);
