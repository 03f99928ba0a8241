//! Fitting the live view to its terminal: the columns of a task's line, and the rows a resize
//! reflowed.

use super::Screen;

/// The id column's width and whether CPU and memory are shown, for ids at most `max_id`
/// wide on a terminal `width` wide (None: no terminal, everything in full). The id takes at
/// most a third of the line (but 12 columns at least); below 72 columns CPU and memory go.
pub(super) fn layout(max_id: usize, width: Option<usize>) -> (usize, bool) {
    match width {
        None => (max_id, true),
        Some(w) => (max_id.min((w / 3).max(12)), w >= 72),
    }
}

/// After the terminal narrowed, the frame drawn at the old width may have been reflowed onto
/// more rows than the live view accounts for: those rows are cleared (above the frame the next
/// draw writes) so that no stale frame stays behind. indicatif pads every line but the last to
/// the width instead of ending it, so a terminal that reflows sees the frame as one long line.
pub(super) fn clear_reflowed(screen: &mut Screen, width: usize) {
    if width < screen.width
        && width > 0
        && let Some(last) = screen.drawn.last()
    {
        let extra = extra_rows(screen.drawn.len(), *last, screen.width, width);
        if extra > 0 {
            // suspend clears the frame as drawn, then this clears the rows the reflow added.
            screen.multi.suspend(|| eprint!("\x1b[{extra}A\x1b[J"));
        }
    }
    screen.width = width;
}

/// The rows beyond `lines` that a frame of `lines` lines drawn `old` wide (the last one `last`
/// wide) takes once a terminal `new` wide reflowed it as one line.
pub(super) fn extra_rows(lines: usize, last: usize, old: usize, new: usize) -> usize {
    let rows = (lines.saturating_sub(1) * old + last.max(1)).div_ceil(new.max(1));
    rows.saturating_sub(lines)
}
