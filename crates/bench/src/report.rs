//! The report: the results as a text table on stdout (with the host it ran
//! on) and, with `--json`, as a JSON file; and how figures are written.

use std::fmt::Write as _;

use crate::cli::Args;
use crate::common::Res;
use crate::registry::Workload;
use crate::stats::Row;

/// The host in a few words: the OS (with the kernel release on Unix), the
/// CPU count, and what xev's default loop does here
/// (`Loop::capabilities`: its backend, the io_uring ring's setup flags,
/// which filesystem requests the kernel performs, and why it is not on
/// io_uring where it is not).
pub fn host_description() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let xev = match xev::Loop::new(xev::Options::default()) {
        Ok(lp) => lp.capabilities().to_string(),
        Err(e) => format!("no loop: {e}"),
    };
    format!("{}, {cpus} CPUs; xev: {xev}", os_description())
}

#[cfg(unix)]
fn os_description() -> String {
    // SAFETY: uname fills the zeroed struct.
    let kernel = unsafe {
        let mut u: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut u) == 0 {
            std::ffi::CStr::from_ptr(u.sysname.as_ptr())
                .to_string_lossy()
                .into_owned()
                + " "
                + &std::ffi::CStr::from_ptr(u.release.as_ptr()).to_string_lossy()
        } else {
            "?".into()
        }
    };
    kernel
}

#[cfg(not(unix))]
fn os_description() -> String {
    std::env::consts::OS.to_string()
}

/// A workload's figure as the table writes it: a rate in whole numbers
/// with grouped digits, seconds with two decimals, "-" when not finite.
pub fn fmt_figure(w: &Workload, f: f64) -> String {
    if !f.is_finite() {
        return "-".into();
    }
    if w.higher_is_better {
        group_digits(f.round() as u64)
    } else {
        format!("{f:.2}")
    }
}

fn group_digits(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

fn notes(row: &Row) -> String {
    if let Some(s) = &row.skipped {
        return format!("skipped: {s}");
    }
    if let Some(e) = &row.error {
        return format!("ERROR: {e}");
    }
    let mut parts = Vec::new();
    if let Some(b) = row.get("backend") {
        parts.push(format!("on {b}"));
    }
    if let (Some(i), Some(d)) = (row.get("init_s"), row.get("dispatch_s")) {
        let num = |v: Option<&str>| v.and_then(|v| v.parse::<f64>().ok()).unwrap_or(f64::NAN);
        let (i, d) = (num(Some(i)), num(Some(d)));
        let (ic, dc) = (num(row.get("init_cpu_s")), num(row.get("dispatch_cpu_s")));
        parts.push(format!(
            "init {i:.2} s ({ic:.2} CPU), dispatch {d:.2} s ({dc:.2} CPU)"
        ));
    }
    if let (Some(r), Some(s)) = (row.get("received"), row.get("sent")) {
        parts.push(format!("received {r} of {s}"));
    }
    if let Some(us) = row.get("server_cpu_us_per_req") {
        parts.push(format!("server CPU {us} µs/request"));
    }
    if let Some(n) = row.get("notifies") {
        if let Ok(n) = n.parse::<f64>() {
            parts.push(format!("{} notifies", group_digits(n.round() as u64)));
        }
    }
    if row.runs.len() > 1 {
        let lo = row.runs.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = row.runs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        parts.push(format!(
            "runs {}..{}",
            fmt_figure(row.workload, lo),
            fmt_figure(row.workload, hi)
        ));
    }
    parts.join("; ")
}

fn ratio(r: Option<f64>) -> String {
    r.map(|r| format!("{r:.2}x")).unwrap_or_else(|| "-".into())
}

/// The table on stdout, under a title line and a line saying what the
/// ratios mean.
pub fn print_table(args: &Args, host: &str, rows: &[Row]) {
    println!(
        "xev-bench ({} mode, {} run(s), medians; {host})",
        args.mode(),
        args.runs
    );
    println!(
        "xev/tokio, xev/floor: xev's speed relative to the other (>1.00x: xev faster); \
         floor = raw code on the same kernel interface"
    );
    println!();
    let header = [
        "workload",
        "contender",
        "figure",
        "unit",
        "CPU s",
        "peak MB",
        "xev/tokio",
        "xev/floor",
        "notes",
    ];
    let cells: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            let ok = r.error.is_none() && r.skipped.is_none();
            let measured = |s: String| if ok { s } else { "-".into() };
            [
                r.workload.name.to_string(),
                r.contender.to_string(),
                measured(fmt_figure(r.workload, r.figure)),
                r.workload.unit.to_string(),
                measured(format!("{:.2}", r.cpu)),
                match r.maxrss_mb.is_finite() {
                    true => measured(format!("{:.1}", r.maxrss_mb)),
                    false => "-".into(),
                },
                ratio(r.vs_tokio),
                ratio(r.vs_floor),
                notes(r),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            widths[i] = widths[i].max(s.len());
        }
    }
    let right = [false, false, true, false, true, true, true, true, false];
    let line = |c: &[String]| {
        let mut s = String::new();
        for (i, v) in c.iter().enumerate() {
            if i == c.len() - 1 {
                s.push_str(v);
            } else if right[i] {
                let _ = write!(s, "{v:>w$}  ", w = widths[i]);
            } else {
                let _ = write!(s, "{v:<w$}  ", w = widths[i]);
            }
        }
        s.trim_end().to_string()
    };
    println!("{}", line(&header.map(String::from)));
    let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
    println!("{}", "-".repeat(total.min(160)));
    let mut last = "";
    for (r, c) in rows.iter().zip(&cells) {
        if !last.is_empty() && last != r.workload.name {
            println!();
        }
        last = r.workload.name;
        println!("{}", line(c));
    }
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".into()
    }
}

fn json_opt(v: Option<f64>) -> String {
    v.map(json_num).unwrap_or_else(|| "null".into())
}

fn json_opt_str(v: Option<&str>) -> String {
    v.map(json_str).unwrap_or_else(|| "null".into())
}

/// Writes the results to `path` as JSON: the command, mode, runs and host,
/// and a record per row.
pub fn write_json(path: &str, args: &Args, host: &str, rows: &[Row]) -> Res<()> {
    let mut s = String::from("{\n");
    let cmd: Vec<String> = std::env::args().collect();
    let _ = writeln!(s, "  \"command\": {},", json_str(&cmd.join(" ")));
    let _ = writeln!(s, "  \"mode\": {},", json_str(args.mode()));
    let _ = writeln!(s, "  \"runs\": {},", args.runs);
    let _ = writeln!(s, "  \"host\": {},", json_str(host));
    s.push_str("  \"results\": [\n");
    for (i, r) in rows.iter().enumerate() {
        s.push_str("    {");
        let _ = write!(
            s,
            "\"workload\": {}, \"contender\": {}, \"unit\": {}, \"higher_is_better\": {}, ",
            json_str(r.workload.name),
            json_str(r.contender),
            json_str(r.workload.unit),
            r.workload.higher_is_better
        );
        let _ = write!(
            s,
            "\"size\": {}, \"figure\": {}, \"runs\": [{}], \"cpu_s\": {}, \"cpu_process_s\": {}, \"elapsed_s\": {}, \"peak_rss_mb\": {}, \"count\": {}, ",
            r.workload.size(args.quick),
            json_num(r.figure),
            r.runs.iter().map(|v| json_num(*v)).collect::<Vec<_>>().join(", "),
            json_num(r.cpu),
            json_num(r.cpu_process),
            json_num(r.elapsed),
            json_num(r.maxrss_mb),
            r.count
        );
        let extra: Vec<String> = r
            .extra
            .iter()
            .map(|(k, v)| {
                let val = v
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|_| v.clone())
                    .unwrap_or_else(|| json_str(v));
                format!("{}: {}", json_str(k), val)
            })
            .collect();
        let _ = write!(
            s,
            "\"extra\": {{{}}}, \"vs_tokio\": {}, \"vs_floor\": {}, \"error\": {}, \"skipped\": {}}}",
            extra.join(", "),
            json_opt(r.vs_tokio),
            json_opt(r.vs_floor),
            json_opt_str(r.error.as_deref()),
            json_opt_str(r.skipped.as_deref()),
        );
        s.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ]\n}\n");
    std::fs::write(path, s).map_err(|e| format!("writing {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_are_grouped() {
        assert_eq!(group_digits(1234567), "1,234,567");
        assert_eq!(group_digits(999), "999");
    }
}
