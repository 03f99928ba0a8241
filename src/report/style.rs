//! How the displays meet a terminal: whether to colour (`--color`, `NO_COLOR`, a terminal or
//! not) and how wide it is (read again at each use: a terminal may be resized mid-run), with
//! the pure functions that fit text and table columns into a width. Widths are display
//! columns; ANSI escapes never count. Nothing written to a file goes through here.

use std::io::IsTerminal;

use clap::ValueEnum;

/// `--color`: colour on a terminal (unless `NO_COLOR` is set), always, or never.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// The stream a display writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// The narrowest terminal the displays fit; narrower ones get this width (and wrap).
pub const MIN_WIDTH: usize = 40;

/// What a piece of text means, for its colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Bad,
    Warn,
    Plain,
}

/// Colour on or off, and the terminal (if any) whose width the text must fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    color: bool,
    terminal: Option<Stream>,
    /// A width that is not read from a terminal (tests).
    fixed: Option<usize>,
}

impl Style {
    /// No colour, no width: for files and tests.
    pub fn plain() -> Self {
        Self {
            color: false,
            terminal: None,
            fixed: None,
        }
    }

    /// As on a terminal `width` wide that never changes.
    #[cfg(test)]
    pub(crate) fn fixed(width: usize, color: bool) -> Self {
        Self {
            color,
            terminal: None,
            fixed: Some(width),
        }
    }

    /// For text written to `stream`, as `choice` and the environment decide.
    pub fn for_stream(choice: ColorChoice, stream: Stream) -> Self {
        let tty = match stream {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        };
        Self {
            color: wants_color(choice, tty, std::env::var_os("NO_COLOR").as_deref()),
            terminal: tty.then_some(stream),
            fixed: None,
        }
    }

    pub fn color(&self) -> bool {
        self.color
    }

    pub fn is_terminal(&self) -> bool {
        self.terminal.is_some() || self.fixed.is_some()
    }

    /// The terminal's width now (at least [`MIN_WIDTH`]); None when not a terminal. Only the
    /// columns are asked for: a terminal may say its rows are 0 and still be 80 wide.
    pub fn width(&self) -> Option<usize> {
        if let Some(w) = self.fixed {
            return Some(w);
        }
        let size = match self.terminal? {
            Stream::Stdout => rustix::termios::tcgetwinsize(std::io::stdout()),
            Stream::Stderr => rustix::termios::tcgetwinsize(std::io::stderr()),
        };
        let cols = size.ok().map(|s| s.ws_col as usize).filter(|&c| c > 0)?;
        Some(cols.max(MIN_WIDTH))
    }

    /// `text` in the colour of `tone` (unchanged without colour).
    pub fn paint(&self, tone: Tone, text: &str) -> String {
        let code = match tone {
            Tone::Good => "32",
            Tone::Bad => "31",
            Tone::Warn => "33",
            Tone::Plain => return text.to_string(),
        };
        if !self.color || text.is_empty() {
            return text.to_string();
        }
        format!("\x1b[{code}m{text}\x1b[0m")
    }

    /// `text` in the colour of the task state `state` names (`succeeded`, `failed`, ...).
    pub fn state(&self, state: &str, text: &str) -> String {
        self.paint(tone_of(state), text)
    }
}

/// Colour is on when forced, or on a terminal when `NO_COLOR` is unset or empty
/// (<https://no-color.org>). An explicit `--color always` wins over `NO_COLOR`.
fn wants_color(choice: ColorChoice, tty: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => tty && no_color.is_none_or(|v| v.is_empty()),
    }
}

/// The tone of a task's state or status as sandpen names it.
pub fn tone_of(state: &str) -> Tone {
    match state {
        "succeeded" => Tone::Good,
        "failed" | "error" | "oom_killed" | "timed_out" | "disk_exceeded" | "budget_exceeded" => Tone::Bad,
        "cancelled" | "skipped" | "waiting" | "stopping" => Tone::Warn,
        _ => Tone::Plain,
    }
}

/// The colour of `tone` in a comfy-table cell (which measures its cells without escapes).
pub fn table_color(tone: Tone) -> Option<comfy_table::Color> {
    match tone {
        Tone::Good => Some(comfy_table::Color::Green),
        Tone::Bad => Some(comfy_table::Color::Red),
        Tone::Warn => Some(comfy_table::Color::Yellow),
        Tone::Plain => None,
    }
}

/// Display columns of `text`, escapes not counted.
pub fn width_of(text: &str) -> usize {
    console::measure_text_width(text)
}

/// `text` cut to `width` columns, ending in `…` when cut.
pub fn truncate(text: &str, width: usize) -> String {
    console::truncate_str(text, width, "…").into_owned()
}

/// `text` cut or padded with spaces to exactly `width` columns.
pub fn fit(text: &str, width: usize) -> String {
    let cut = truncate(text, width);
    let pad = width.saturating_sub(width_of(&cut));
    format!("{cut}{}", " ".repeat(pad))
}

/// `text` in lines of at most `width` columns, broken at spaces; lines after the first start
/// with `indent` spaces. A word longer than a line is cut into pieces (a path is not lost).
pub fn wrap(text: &str, width: usize, indent: usize) -> Vec<String> {
    let width = width.max(indent + 8);
    let mut lines = Vec::new();
    let mut line = String::new();
    let mut has_word = false;
    for word in text.split(' ') {
        if has_word && width_of(&line) + 1 + width_of(word) > width {
            lines.push(std::mem::replace(&mut line, " ".repeat(indent)));
            has_word = false;
        }
        if has_word {
            line.push(' ');
        }
        let mut rest = word;
        while width_of(&line) + width_of(rest) > width {
            let (piece, tail) = split_at_width(rest, width - width_of(&line));
            line.push_str(piece);
            lines.push(std::mem::replace(&mut line, " ".repeat(indent)));
            rest = tail;
        }
        line.push_str(rest);
        has_word = true;
    }
    lines.push(line);
    lines
}

/// The longest head of `text` at most `room` columns wide (at least one character), and the
/// rest.
fn split_at_width(text: &str, room: usize) -> (&str, &str) {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += width_of(c.encode_utf8(&mut [0; 4]));
        if used > room && i > 0 {
            return text.split_at(i);
        }
    }
    (text, "")
}

/// A table column as the fitting sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// The widest cell (header included).
    pub natural: usize,
    /// How narrow it may get before columns are dropped (its natural width if it never
    /// narrows).
    pub min: usize,
    /// The order columns go in when even narrowed they do not fit: lowest first. None: kept.
    pub drop: Option<u8>,
}

/// The width of each column that fits in `avail` columns, None for a dropped one. Every
/// column costs `per_column` beyond its content (padding, borders) and the table `edge` more.
/// Narrowing comes before dropping; when nothing more can be dropped, the narrowable columns
/// go down to 2 columns (`x…`).
pub fn fit_columns(cols: &[Column], avail: usize, per_column: usize, edge: usize) -> Vec<Option<usize>> {
    let mut order: Vec<usize> = (0..cols.len()).filter(|&i| cols[i].drop.is_some()).collect();
    order.sort_by_key(|&i| cols[i].drop);
    for dropped in 0..=order.len() {
        let last = dropped == order.len();
        let mut widths: Vec<Option<usize>> = cols.iter().map(|c| Some(c.natural)).collect();
        for &i in &order[..dropped] {
            widths[i] = None;
        }
        let floor = |c: &Column| {
            if last && c.min < c.natural {
                c.min.min(2)
            } else {
                c.min
            }
        };
        loop {
            let kept = widths.iter().flatten().count();
            let total: usize = widths.iter().flatten().sum::<usize>() + kept * per_column + edge;
            if total <= avail {
                return widths;
            }
            // Narrow the column with the most room above its floor, one column at a time.
            let widest = (0..cols.len())
                .filter_map(|i| widths[i].map(|w| (i, w.saturating_sub(floor(&cols[i])))))
                .filter(|&(_, room)| room > 0)
                .max_by_key(|&(_, room)| room);
            match widest {
                Some((i, _)) => widths[i] = widths[i].map(|w| w - 1),
                None if last => return widths,
                None => break,
            }
        }
    }
    unreachable!("the last round returns")
}

#[cfg(test)]
mod tests;
