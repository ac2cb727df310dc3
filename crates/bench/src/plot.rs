//! `--plot FILE.svg`: the run's figures as grouped bars, one group per
//! workload and one bar per contender. Workloads have different units, so
//! each bar is the contender's figure relative to the best in its workload
//! (1.0 = fastest; for lower-is-better figures, best / figure), which puts
//! every workload on one axis. Drawn with `plotters` into an SVG.

use plotters::prelude::*;

use crate::common::Res;
use crate::stats::Row;

/// A contender's colour, by its place in the run's contender order.
fn colour(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    PALETTE[i % PALETTE.len()]
}

/// Each row's figure relative to the best of its workload, for the rows
/// that have one: (workloads in order, contenders in order, bars as
/// (workload index, contender index, relative figure)).
type Bars = (
    Vec<&'static str>,
    Vec<&'static str>,
    Vec<(usize, usize, f64)>,
);

fn bars(rows: &[Row]) -> Bars {
    let ok = |r: &&Row| r.error.is_none() && r.skipped.is_none() && r.figure > 0.0;
    let (mut workloads, mut contenders, mut bars) = (Vec::new(), Vec::new(), Vec::new());
    for r in rows.iter().filter(ok) {
        if !workloads.contains(&r.workload.name) {
            workloads.push(r.workload.name);
        }
        if !contenders.contains(&r.contender) {
            contenders.push(r.contender);
        }
    }
    for (wi, w) in workloads.iter().enumerate() {
        let group: Vec<&Row> = rows
            .iter()
            .filter(ok)
            .filter(|r| r.workload.name == *w)
            .collect();
        let higher = group[0].workload.higher_is_better;
        let figures = group.iter().map(|r| r.figure);
        let best = if higher {
            figures.fold(f64::MIN, f64::max)
        } else {
            figures.fold(f64::MAX, f64::min)
        };
        for r in group {
            let rel = if higher {
                r.figure / best
            } else {
                best / r.figure
            };
            let ci = contenders
                .iter()
                .position(|c| *c == r.contender)
                .unwrap_or(0);
            bars.push((wi, ci, rel));
        }
    }
    (workloads, contenders, bars)
}

/// Writes the plot of `rows` to `path` (SVG); `title` goes on top.
pub fn write_plot(path: &str, title: &str, rows: &[Row]) -> Res<()> {
    let (workloads, contenders, bars) = bars(rows);
    if workloads.is_empty() {
        return Err("--plot: no figures to draw".into());
    }
    let err = |e: &dyn std::fmt::Display| format!("--plot {path}: {e}");
    let width = (160 * workloads.len() as u32).max(640);
    let root = SVGBackend::new(path, (width, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let groups = workloads.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..groups, 0f64..1.4f64)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("figure / best in the workload (1 = fastest)")
        .draw()
        .map_err(|e| err(&e))?;
    // Workload names under their groups.
    chart
        .draw_series(workloads.iter().enumerate().map(|(i, w)| {
            Text::new(
                w.to_string(),
                (i as f64 + 0.1, -0.04),
                ("sans-serif", 12).into_font(),
            )
        }))
        .map_err(|e| err(&e))?;
    let width_per = 0.8 / contenders.len() as f64;
    for (ci, c) in contenders.iter().enumerate() {
        let col = colour(ci);
        chart
            .draw_series(bars.iter().filter(|b| b.1 == ci).map(|&(wi, _, rel)| {
                let x0 = wi as f64 + 0.1 + ci as f64 * width_per;
                Rectangle::new([(x0, 0.0), (x0 + width_per * 0.9, rel)], col.filled())
            }))
            .map_err(|e| err(&e))?
            .label(c.to_string())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], col.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::workload;
    use crate::stats::aggregate;

    fn row(w: &str, c: &'static str, figure: f64) -> Row {
        let mut r = aggregate(workload(w).unwrap(), c, &[]);
        (r.error, r.figure) = (None, figure);
        r
    }

    #[test]
    fn bars_are_relative_to_the_best_of_each_workload() {
        let rows = [
            row("ping-pongs", "a", 50.0),
            row("ping-pongs", "b", 100.0),
            // Lower is better: 10 s is the best, 20 s half as good.
            row("million-timers", "a", 20.0),
            row("million-timers", "b", 10.0),
        ];
        let (workloads, contenders, bars) = bars(&rows);
        assert_eq!(workloads, ["ping-pongs", "million-timers"]);
        assert_eq!(contenders, ["a", "b"]);
        assert_eq!(bars, [(0, 0, 0.5), (0, 1, 1.0), (1, 0, 0.5), (1, 1, 1.0)]);
        let path = std::env::temp_dir().join(format!("xev-bench-plot-{}.svg", std::process::id()));
        write_plot(path.to_str().unwrap(), "test", &rows).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(svg.contains("million-timers") && svg.matches("<rect").count() >= 4);
    }
}
