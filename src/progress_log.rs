//! Progress for logs: indicatif draws nothing when stderr is not a terminal (a log file, a batch
//! job's output), so long commands also write a line each time another tenth of their work is done.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicUsize, Ordering};

pub struct TenthsLog {
    enabled: bool,
    tenths_logged: AtomicUsize,
}

impl TenthsLog {
    /// Logs only when stderr is not a terminal, where the bar itself shows.
    pub fn for_stderr() -> Self {
        Self { enabled: !std::io::stderr().is_terminal(), tenths_logged: AtomicUsize::new(0) }
    }

    /// Whether `done` of `total` is the first report past another tenth; callable from any thread.
    pub fn crossed_tenth(&self, done: usize, total: usize) -> bool {
        let tenths = done * 10 / total.max(1);
        self.enabled && tenths > self.tenths_logged.fetch_max(tenths, Ordering::Relaxed)
    }

    /// Counts the tenths up to `done` as logged, for work resumed where an earlier run logged them.
    pub fn resume_at(&self, done: usize, total: usize) {
        self.crossed_tenth(done, total);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_for_each_tenth_crossed_and_none_in_between() {
        let log = TenthsLog { enabled: true, tenths_logged: AtomicUsize::new(0) };
        let logged: Vec<usize> =
            [1, 99, 100, 150, 199, 250, 380, 1000].into_iter().filter(|&done| log.crossed_tenth(done, 1000)).collect();
        assert_eq!(logged, [100, 250, 380, 1000]);
        let terminal = TenthsLog { enabled: false, tenths_logged: AtomicUsize::new(0) };
        assert!(!terminal.crossed_tenth(1000, 1000));
    }
}
