//! `prunelab-fuzz TARGET SECONDS [SEED]`: fuzz one loader for a while and report executions,
//! outcomes and crashes; `prunelab-fuzz replay TARGET FILE…` runs saved inputs once.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prunelab_fuzz::guard::{self, BoundedAllocator, InputLog};
use prunelab_fuzz::mutate::mutate;
use prunelab_fuzz::rng::Rng;
use prunelab_fuzz::targets::{TARGETS, Target, find};

#[global_allocator]
static ALLOCATOR: BoundedAllocator = BoundedAllocator;

/// One input may take this long; a loader that needs more on a fuzz input of kilobytes hangs.
const HANG_LIMIT: Duration = Duration::from_secs(20);

/// Inputs kept for mutation, at most; beyond it new outcomes are counted but not kept.
const MAX_CORPUS: usize = 4096;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["replay", target, files @ ..] if !files.is_empty() => replay(target, files),
        [target, seconds] => fuzz(target, seconds, "0"),
        [target, seconds, seed] => fuzz(target, seconds, seed),
        _ => Err(usage()),
    };
    match status {
        Ok(0) => {}
        Ok(code) => std::process::exit(code),
        Err(message) => {
            eprintln!("error: {message}");
            std::process::exit(2);
        }
    }
}

fn usage() -> String {
    let names: Vec<String> = TARGETS.iter().map(|t| format!("  {:<12} {}", t.name, t.what)).collect();
    format!(
        "usage: prunelab-fuzz TARGET SECONDS [SEED] | prunelab-fuzz replay TARGET FILE…\ntargets:\n{}",
        names.join("\n")
    )
}

fn target(name: &str) -> Result<&'static Target, String> {
    find(name).ok_or_else(|| format!("no target {name:?}\n{}", usage()))
}

/// Runs one input, returning its outcome class, or the panic's message.
fn run_one(target: &Target, input: &[u8]) -> Result<String, String> {
    // A panic recorded by the hook but not propagated (on another thread) is a crash too,
    // and must not be blamed on a later input.
    let _stale = guard::take_panic_message();
    let outcome = match catch_unwind(AssertUnwindSafe(|| (target.run)(input))) {
        Ok(Ok(())) => Ok("ok".into()),
        Ok(Err(message)) => Ok(outcome_class(&message)),
        Err(_) => Err(guard::take_panic_message()),
    };
    match guard::pending_panic() {
        Some(message) if outcome.is_ok() => Err(message),
        _ => outcome,
    }
}

/// An error message with its numbers blanked, so "needs 812 bytes" and "needs 96 bytes" are
/// one outcome.
fn outcome_class(message: &str) -> String {
    let mut class = String::new();
    for c in message.chars().take(120) {
        if !c.is_ascii_digit() {
            class.push(c);
        } else if !class.ends_with('#') {
            class.push('#');
        }
    }
    class
}

fn replay(name: &str, files: &[&str]) -> Result<i32, String> {
    let target = target(name)?;
    guard::capture_panics();
    let mut failures = 0;
    for file in files {
        let input = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
        match run_one(target, &input) {
            Ok(outcome) => println!("{file}: {outcome}"),
            Err(panic) => {
                failures += 1;
                println!("{file}: PANIC {panic}");
            }
        }
    }
    Ok(i32::from(failures > 0))
}

fn fuzz(name: &str, seconds: &str, seed: &str) -> Result<i32, String> {
    let target = target(name)?;
    let seconds: u64 = seconds
        .parse()
        .map_err(|_| format!("SECONDS {seconds:?} is not a whole number"))?;
    let seed: u64 = seed
        .parse()
        .map_err(|_| format!("SEED {seed:?} is not a whole number"))?;
    let out = PathBuf::from(std::env::var("PRUNELAB_FUZZ_OUT").unwrap_or_else(|_| "target/fuzz".into())).join(name);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut log = InputLog::create(&out.join("current-input")).map_err(|e| e.to_string())?;
    log.watch(HANG_LIMIT);
    guard::capture_panics();

    let mut corpus = (target.seeds)();
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for seed_input in &corpus {
        log.begin(seed_input).map_err(|e| e.to_string())?;
        let outcome = run_one(target, seed_input).map_err(|panic| format!("a seed panics: {panic}"))?;
        log.end();
        if outcome != "ok" {
            return Err(format!("a seed of {name} does not load: {outcome}"));
        }
        *outcomes.entry(outcome).or_default() += 1;
    }

    let mut rng = Rng::new(seed);
    let (start, deadline) = (Instant::now(), Instant::now() + Duration::from_secs(seconds));
    let mut next_report = start + Duration::from_secs(10);
    let (mut executions, mut crashes) = (0u64, Vec::new());
    let mut crash_sites = HashSet::new();
    while Instant::now() < deadline {
        let parent = &corpus[rng.below(corpus.len())];
        let mut input = mutate(parent, &corpus, &mut rng);
        if rng.below(2) == 0 {
            (target.repair)(&mut input);
        }
        log.begin(&input).map_err(|e| e.to_string())?;
        let result = run_one(target, &input);
        log.end();
        executions += 1;
        match result {
            Ok(outcome) => {
                let count = outcomes.entry(outcome).or_default();
                *count += 1;
                if *count == 1 && corpus.len() < MAX_CORPUS {
                    corpus.push(input);
                }
            }
            Err(panic) => {
                let path = save_crash(&out, &input)?;
                let site = panic.lines().next().unwrap_or_default().to_string();
                if crash_sites.insert(site) {
                    println!("CRASH {name}: {panic}\n  input: {}", path.display());
                }
                crashes.push(path);
            }
        }
        if Instant::now() >= next_report {
            eprintln!(
                "{name}: {executions} executions, {} outcomes, corpus {}",
                outcomes.len(),
                corpus.len()
            );
            next_report += Duration::from_secs(10);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{name}: {executions} executions in {elapsed:.0} s ({:.0}/s), {} distinct outcomes, corpus {} inputs, {} crash(es) at {} site(s), largest allocation {} bytes",
        executions as f64 / elapsed,
        outcomes.len(),
        corpus.len(),
        crashes.len(),
        crash_sites.len(),
        guard::largest_request()
    );
    if std::env::var_os("PRUNELAB_FUZZ_OUTCOMES").is_some() {
        let mut sorted: Vec<_> = outcomes.into_iter().collect();
        sorted.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        for (outcome, count) in sorted {
            println!("  {count:>8}  {outcome}");
        }
    }
    let _ = std::fs::remove_file(log.path());
    Ok(i32::from(!crashes.is_empty()))
}

/// Saves a crashing input under a name made from its contents (FNV-1a), so repeats collapse.
fn save_crash(out: &Path, input: &[u8]) -> Result<PathBuf, String> {
    let hash = input.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let path = out.join(format!("crash-{hash:016x}.bin"));
    std::fs::write(&path, input).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(path)
}
