//! The per-query cost of counting: one blocked query recorded, one forwarded query recorded.

use std::hint::black_box;

use criterion::{Criterion, criterion_main};
use kidsafe::category::Categories;
use kidsafe::policy::BlockReason;
use kidsafe::stats::{Counters, Outcome};

/// Recording into a runtime's counter matrix (what the query path does).
pub fn record(c: &mut Criterion) {
    let categories = Categories::with_custom(["custom"]).expect("fits");
    let profiles = vec![
        "child".to_string(),
        "pre-teen".into(),
        "teen".into(),
        "staff".into(),
    ];
    let counters = Counters::new(profiles, &categories, vec!["lab".into(), "library".into()]);
    let mut i = 0u8;
    c.bench_function("stats_record_blocked", |b| {
        b.iter(|| {
            i = i.wrapping_add(1);
            counters.record_blocked(
                black_box(usize::from(i % 4)),
                BlockReason::Category(i % 18),
                Some(1),
            );
        })
    });
    c.bench_function("stats_record_outcome", |b| {
        b.iter(|| counters.record(black_box(Outcome::Forwarded)))
    });
}

// criterion's macros generate undocumented functions.
#[allow(missing_docs)]
mod entry {
    criterion::criterion_group!(benches, super::record);
}
criterion_main!(entry::benches);
