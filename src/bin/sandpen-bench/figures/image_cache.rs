//! Figure 6: `sandpen image build` when nothing changed: one inspect call, not a build.

use std::process::Command;

use crate::ctx::{Ctx, Measured, timed};
use crate::row::Row;
use crate::stats::Sample;
use crate::target::{Bound, Target};

pub const FIGURE: &str = "6. `sandpen image build` with nothing changed (s)";

pub fn measure(ctx: &Ctx, _notes: &mut Vec<String>) -> Measured<Vec<Row>> {
    let n = if ctx.quick { 3 } else { 10 };
    let times = (0..n)
        .map(|_| timed(Command::new(&ctx.sandpen).args(["image", "build", "--target", "probe"])))
        .collect::<Measured<Vec<f64>>>()?;
    let s = Sample::new(times);
    Ok(vec![Row::new(
        FIGURE,
        s.show(3),
        String::new(),
        None,
        Target::of(Bound::AtMost(1.0, "s"), s.median()),
    )])
}
