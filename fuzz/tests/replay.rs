//! Every seed loads, and every input a fuzz run once crashed on (kept under
//! `tests/fuzz/regressions/<target>/`) now ends in an error instead of a panic.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use prunelab_fuzz::targets::TARGETS;

#[test]
fn every_seed_loads() {
    for target in &TARGETS {
        for (i, seed) in (target.seeds)().iter().enumerate() {
            assert_eq!((target.run)(seed), Ok(()), "seed {i} of {}", target.name);
        }
    }
}

/// A repair only mends framing (lengths, checksums): a valid seed stays valid through it.
#[test]
fn a_repaired_seed_still_loads() {
    for target in &TARGETS {
        for (i, seed) in (target.seeds)().iter().enumerate() {
            let mut repaired = seed.clone();
            (target.repair)(&mut repaired);
            assert_eq!(
                (target.run)(&repaired),
                Ok(()),
                "seed {i} of {} after its repair",
                target.name
            );
        }
    }
}

#[test]
fn saved_crashes_are_errors_now() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fuzz/regressions");
    let mut replayed = 0;
    for target in &TARGETS {
        let Ok(entries) = std::fs::read_dir(root.join(target.name)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let input = std::fs::read(&path).unwrap();
            let result = catch_unwind(AssertUnwindSafe(|| (target.run)(&input)));
            let outcome = result.unwrap_or_else(|_| panic!("{} still panics", path.display()));
            assert!(outcome.is_err(), "{} loads as valid", path.display());
            replayed += 1;
        }
    }
    assert!(
        replayed >= 2,
        "only {replayed} regression inputs found under {}",
        root.display()
    );
}
