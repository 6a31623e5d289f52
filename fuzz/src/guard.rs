//! What turns a bad input into a reported bug instead of a lost one: the input under test is
//! on disk before it runs (an abort or a kill leaves it behind), panics are caught with their
//! message and location, a watchdog ends an input that runs too long, and the allocator
//! refuses any single request above a bound (a length field trusted before it was checked).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// No loader may ask for more in one allocation: above the audio decoder's own bound
/// (2^27 samples, 512 MiB), and far above anything a fuzz input of kilobytes justifies.
pub const MAX_ALLOCATION: usize = 1 << 30;

static LARGEST_REQUEST: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, refusing single requests above [`MAX_ALLOCATION`]; Rust then
/// reports "memory allocation of N bytes failed" and aborts, leaving the input on disk.
pub struct BoundedAllocator;

impl BoundedAllocator {
    fn admit(size: usize) -> bool {
        LARGEST_REQUEST.fetch_max(size, Ordering::Relaxed);
        size <= MAX_ALLOCATION
    }
}

// SAFETY: every call is forwarded to `System` unchanged, or refused with a null pointer,
// which `GlobalAlloc` allows.
unsafe impl GlobalAlloc for BoundedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::admit(layout.size()) {
            unsafe { System.alloc(layout) }
        } else {
            std::ptr::null_mut()
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::admit(layout.size()) {
            unsafe { System.alloc_zeroed(layout) }
        } else {
            std::ptr::null_mut()
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if Self::admit(new_size) {
            unsafe { System.realloc(ptr, layout, new_size) }
        } else {
            std::ptr::null_mut()
        }
    }
}

/// The largest single allocation requested so far.
pub fn largest_request() -> usize {
    LARGEST_REQUEST.load(Ordering::Relaxed)
}

static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

/// Panics are caught per input; the hook keeps the message and location for the report
/// instead of printing a backtrace per input.
pub fn capture_panics() {
    std::panic::set_hook(Box::new(|info| {
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(info.to_string());
        }
    }));
}

/// The message of a panic the hook saw since the last take, if any.
pub fn pending_panic() -> Option<String> {
    LAST_PANIC.lock().ok().and_then(|mut last| last.take())
}

pub fn take_panic_message() -> String {
    LAST_PANIC
        .lock()
        .ok()
        .and_then(|mut last| last.take())
        .unwrap_or_else(|| "a panic without a message".into())
}

/// Nanoseconds since `EPOCH` at which the current input started, 0 when none runs.
static RUNNING_SINCE: AtomicU64 = AtomicU64::new(0);

/// Keeps the input under test on disk and times it.
pub struct InputLog {
    file: std::fs::File,
    path: PathBuf,
    epoch: Instant,
}

impl InputLog {
    pub fn create(path: &Path) -> std::io::Result<Self> {
        Ok(Self {
            file: std::fs::File::create(path)?,
            path: path.to_path_buf(),
            epoch: Instant::now(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn begin(&mut self, input: &[u8]) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        self.file.write_all(input)?;
        let now = self.epoch.elapsed().as_nanos() as u64;
        RUNNING_SINCE.store(now.max(1), Ordering::Release);
        Ok(())
    }

    pub fn end(&self) {
        RUNNING_SINCE.store(0, Ordering::Release);
    }

    /// Ends the process (status 3) when one input runs longer than `limit`, saying where the
    /// input is.
    pub fn watch(&self, limit: Duration) {
        let (epoch, path) = (self.epoch, self.path.clone());
        std::thread::spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(250));
                let since = RUNNING_SINCE.load(Ordering::Acquire);
                if since != 0 && epoch.elapsed().saturating_sub(Duration::from_nanos(since)) > limit {
                    eprintln!(
                        "HANG: one input ran longer than {} s; it is in {}",
                        limit.as_secs(),
                        path.display()
                    );
                    std::process::exit(3);
                }
            }
        });
    }
}
