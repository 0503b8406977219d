//! Progress bars and status lines on stderr; silent when stderr is not a terminal or with
//! `--quiet`.

use std::cell::OnceCell;
use std::io::IsTerminal;

use circuitry_circuits::analysis::WorkProgress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The run's progress display.
pub struct Progress {
    multi: MultiProgress,
    quiet: bool,
    interactive: bool,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let interactive = !quiet && std::io::stderr().is_terminal();
        let multi = MultiProgress::with_draw_target(if interactive {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Progress {
            multi,
            quiet,
            interactive,
        }
    }

    /// A bar over `len` items (prompts, steps).
    pub fn bar(&self, message: &str, len: u64) -> ProgressBar {
        if !self.interactive {
            return ProgressBar::hidden();
        }
        let style = ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({eta})")
            .expect("valid template")
            .progress_chars("=> ");
        self.multi.add(
            ProgressBar::new(len)
                .with_style(style)
                .with_message(message.to_string()),
        )
    }

    /// A spinner for work of unknown length (loading a model).
    pub fn spinner(&self, message: &str) -> ProgressBar {
        if !self.interactive {
            return ProgressBar::hidden();
        }
        let bar = self
            .multi
            .add(ProgressBar::new_spinner().with_message(message.to_string()));
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    }

    /// A line of status (printed unless quiet, above any bars).
    pub fn status(&self, line: &str) {
        if self.quiet {
            return;
        }
        if self.interactive {
            let _ = self.multi.println(line);
        } else {
            eprintln!("{line}");
        }
    }
}

/// An analysis's own work after its forward passes, as a bar drawn from its first report and
/// cleared when dropped.
pub struct WorkBar<'a> {
    progress: &'a Progress,
    message: String,
    bar: OnceCell<ProgressBar>,
}

impl<'a> WorkBar<'a> {
    pub fn new(progress: &'a Progress, message: String) -> WorkBar<'a> {
        WorkBar {
            progress,
            message,
            bar: OnceCell::new(),
        }
    }
}

impl WorkProgress for WorkBar<'_> {
    fn advance(&self, done: u64, total: u64) {
        let bar = self
            .bar
            .get_or_init(|| self.progress.bar(&self.message, total));
        bar.set_length(total);
        bar.set_position(done);
    }
}

impl Drop for WorkBar<'_> {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}
