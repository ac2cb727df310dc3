//! The statistics: a contender's runs on a workload reduced to one row of
//! medians, and xev's speed relative to tokio and to the floor.

use crate::common::extra;
use crate::registry::Workload;
use crate::supervisor::RunResult;

/// The median; NaN for no values.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// The medians of one contender on one workload.
pub struct Row {
    pub workload: &'static Workload,
    pub contender: &'static str,
    pub error: Option<String>,
    pub skipped: Option<String>,
    pub runs: Vec<f64>,
    pub figure: f64,
    pub cpu: f64,
    pub cpu_process: f64,
    pub elapsed: f64,
    pub maxrss_mb: f64,
    pub count: u64,
    /// Medians of the numeric extras; text extras from the last run.
    pub extra: Vec<(String, String)>,
    pub vs_tokio: Option<f64>,
    pub vs_floor: Option<f64>,
}

impl Row {
    /// An extra figure by name.
    pub fn get(&self, key: &str) -> Option<&str> {
        extra(&self.extra, key)
    }
}

/// One row from a contender's runs: medians of the successful runs, or the
/// first error when any run failed ("no run" when there was none).
pub fn aggregate(w: &'static Workload, contender: &'static str, runs: &[RunResult]) -> Row {
    let mut row = Row {
        workload: w,
        contender,
        error: None,
        skipped: None,
        runs: Vec::new(),
        figure: f64::NAN,
        cpu: f64::NAN,
        cpu_process: f64::NAN,
        elapsed: f64::NAN,
        maxrss_mb: f64::NAN,
        count: 0,
        extra: Vec::new(),
        vs_tokio: None,
        vs_floor: None,
    };
    let mut oks = Vec::new();
    for r in runs {
        match &r.outcome {
            Ok(o) => oks.push((o, r)),
            Err(e) => {
                row.error.get_or_insert_with(|| e.clone());
            }
        }
    }
    if row.error.is_some() || oks.is_empty() {
        row.error.get_or_insert_with(|| "no run".into());
        return row;
    }
    row.runs = oks.iter().map(|(o, _)| o.figure).collect();
    row.figure = median(row.runs.clone());
    row.cpu = median(oks.iter().map(|(o, _)| o.cpu).collect());
    row.cpu_process = median(oks.iter().map(|(_, r)| r.cpu_process).collect());
    row.elapsed = median(oks.iter().map(|(o, _)| o.elapsed).collect());
    // 0: the platform did not say (wine keeps no peak for an exited
    // process); the median of none is NaN, shown as "-".
    row.maxrss_mb = median(
        oks.iter()
            .filter(|(_, r)| r.maxrss_kb > 0)
            .map(|(_, r)| r.maxrss_kb as f64 / 1024.0)
            .collect(),
    );
    row.count = oks.last().map(|(o, _)| o.count).unwrap_or(0);
    for (k, v) in &oks.last().expect("non-empty").0.extra {
        let nums: Option<Vec<f64>> = oks
            .iter()
            .map(|(o, _)| o.get(k).and_then(|x| x.parse::<f64>().ok()))
            .collect();
        let value = match nums {
            Some(nums) => {
                let m = median(nums);
                if m.fract() == 0.0 && m.abs() < 1e15 {
                    format!("{}", m as i64)
                } else {
                    format!("{m:.4}")
                }
            }
            None => v.clone(),
        };
        row.extra.push((k.clone(), value));
    }
    row
}

/// xev's speed relative to `other` (>1: xev faster).
pub fn speed_ratio(w: &Workload, xev: f64, other: f64) -> Option<f64> {
    if !(xev.is_finite() && other.is_finite()) || xev <= 0.0 || other <= 0.0 {
        return None;
    }
    Some(if w.higher_is_better {
        xev / other
    } else {
        other / xev
    })
}

/// Fills in the xev rows' `vs_tokio` and `vs_floor`; `xev-dynamic` is
/// compared with the floor of the backend it picked.
pub fn fill_ratios(rows: &mut [Row]) {
    let find = |rows: &[Row], w: &str, c: &str| -> Option<f64> {
        rows.iter()
            .find(|r| r.workload.name == w && r.contender == c && r.error.is_none())
            .map(|r| r.figure)
            .filter(|f| f.is_finite())
    };
    for i in 0..rows.len() {
        let (w, c) = (rows[i].workload, rows[i].contender);
        if !c.starts_with("xev-") || rows[i].error.is_some() || rows[i].skipped.is_some() {
            continue;
        }
        let backend = match c {
            "xev-dynamic" => rows[i].get("backend").unwrap_or_default().to_string(),
            _ => c.trim_start_matches("xev-").to_string(),
        };
        let fig = rows[i].figure;
        rows[i].vs_tokio = find(rows, w.name, "tokio").and_then(|t| speed_ratio(w, fig, t));
        rows[i].vs_floor =
            find(rows, w.name, &format!("floor-{backend}")).and_then(|f| speed_ratio(w, fig, f));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::workload;

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        let timers = workload("million-timers").unwrap();
        assert_eq!(speed_ratio(timers, 10.0, 20.0), Some(2.0));
        let pp = workload("ping-pongs").unwrap();
        assert_eq!(speed_ratio(pp, 10.0, 20.0), Some(0.5));
    }
}
