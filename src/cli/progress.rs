//! The progress bar of the long commands (`audit seal`, `audit verify`, `rotate-keys`,
//! `migrate run`): an `indicatif` bar
//! on stderr, drawn only when stderr is a terminal, so piped or captured output is unchanged.

use crate::observe::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar fed by a [`Progress`] callback; cleared when dropped.
pub(crate) struct Bar(ProgressBar);

impl Bar {
    /// A bar on stderr, hidden when stderr is not a terminal.
    pub(crate) fn stderr() -> Bar {
        let target = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>14} [{bar:40}] {human_pos}/{human_len} ({per_sec}, {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Bar(bar)
    }

    /// Shows `p`: a new phase restarts the bar; a phase without a total shows a count.
    pub(crate) fn show(&self, p: Progress) {
        if self.0.message() != p.phase {
            self.0.reset();
            self.0.set_message(p.phase);
        }
        match p.total {
            Some(total) => self.0.set_length(total.max(p.done)),
            None => self.0.unset_length(),
        }
        self.0.set_position(p.done);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
