//! A run's report as one self-contained HTML page: inline SVG plots (no
//! script, no fonts, nothing fetched), so it opens anywhere, offline.

use std::fmt::Write;

use super::report::Report;

/// A line of a plot: its name, colour and points.
struct Line<'a> {
    name: &'a str,
    colour: &'a str,
    points: Vec<(f64, f64)>,
}

const W: f64 = 760.0;
const H: f64 = 260.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 34.0;
const TOP: f64 = 12.0;
const RIGHT: f64 = 12.0;
const COLOURS: [&str; 8] =
    ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

/// A line for [`plot_series`]: its name and points.
pub struct Series {
    /// Its name in the legend.
    pub name: String,
    /// Its points.
    pub points: Vec<(f64, f64)>,
}

/// A plot of `series` (colours in order; points joined by x).
pub fn plot_series(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let sorted: Vec<Series> = series
        .iter()
        .map(|s| {
            let mut points = s.points.clone();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { name: s.name.clone(), points }
        })
        .collect();
    plot_marked(title, x_label, y_label, &sorted, &[])
}

/// A page's start, up to its body: the title and the one style sheet.
pub fn page_head(title: &str) -> String {
    format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{}</title><style>body{{font-family:sans-serif;max-width:820px;margin:1em auto;color:#222}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}figure{{margin:1em 0}}figcaption{{font-weight:bold}}.bad{{color:#b00}}</style></head><body>"#,
        escape(title)
    )
}

/// Text made safe inside HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A round step for an axis reaching `max`.
fn tick_step(max: f64) -> f64 {
    let raw = (max / 5.0).max(1e-9);
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag)
}

/// An SVG line plot with axes, a legend and vertical marks (`marks`: x and
/// label) for the timeline's events.
fn plot(title: &str, x_label: &str, y_label: &str, lines: &[Line<'_>], marks: &[(f64, String)]) -> String {
    let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
    let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let xs: Vec<f64> = xs.collect();
    let x_min = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let x_min = if x_min.is_finite() { x_min } else { 0.0 };
    let x_max = xs.iter().copied().fold(x_min + 1.0, f64::max);
    let y_max = ys.fold(1.0f64, f64::max) * 1.05;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let sx = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * pw;
    let sy = |y: f64| TOP + ph - y / y_max * ph;
    let mut svg = format!(
        r#"<figure><figcaption>{}</figcaption><svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" role="img" aria-label="{}">"#,
        escape(title),
        escape(title)
    );
    let _ = write!(
        svg,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>"##
    );
    let step = tick_step(y_max);
    let mut y = 0.0;
    while y <= y_max {
        let (x2, at, label_x, label_y) = (LEFT + pw, sy(y), LEFT - 4.0, sy(y) + 3.0);
        let label = if step < 1.0 { format!("{y:.2}") } else { format!("{y:.0}") };
        let _ = write!(
            svg,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{at}" y2="{at}" stroke="#e0e0e0"/><text x="{label_x}" y="{label_y}" font-size="10" text-anchor="end">{label}</text>"##
        );
        y += step;
    }
    let step = tick_step(x_max - x_min);
    let mut x = (x_min / step).ceil() * step;
    while x <= x_max {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>"#,
            sx(x),
            TOP + ph + 14.0,
            if step < 1.0 { format!("{x:.2}") } else { format!("{x:.0}") }
        );
        x += step;
    }
    for (x, label) in marks {
        let (at, bottom, label, label_x, label_y) =
            (sx(*x), TOP + ph, escape(label), sx(*x) + 2.0, TOP + 10.0);
        let _ = write!(
            svg,
            r##"<line x1="{at}" x2="{at}" y1="{TOP}" y2="{bottom}" stroke="#888" stroke-dasharray="4 3"><title>{label}</title></line><text x="{label_x}" y="{label_y}" font-size="9" fill="#555">{label}</text>"##
        );
    }
    for l in lines {
        let pts: Vec<String> = l.points.iter().map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y))).collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"><title>{}</title></polyline>"#,
            l.colour,
            pts.join(" "),
            escape(l.name)
        );
    }
    // a sweep's few points: each marked
    for l in lines.iter().filter(|l| l.points.len() <= 40) {
        for (x, y) in &l.points {
            let _ =
                write!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"/>"#, sx(*x), sy(*y), l.colour);
        }
    }
    for (i, l) in lines.iter().enumerate() {
        let y = TOP + 14.0 + 13.0 * i as f64;
        let _ = write!(
            svg,
            r#"<rect x="{}" y="{}" width="10" height="3" fill="{}"/><text x="{}" y="{}" font-size="10">{}</text>"#,
            LEFT + pw - 150.0,
            y - 4.0,
            l.colour,
            LEFT + pw - 136.0,
            y,
            escape(l.name)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text><text x="12" y="{}" font-size="11" transform="rotate(-90 12 {})" text-anchor="middle">{}</text></svg></figure>"#,
        LEFT + pw / 2.0,
        H - 4.0,
        escape(x_label),
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        escape(y_label)
    );
    svg
}

/// A per-shard figure over the run: a line per shard up to eight shards,
/// else the lowest, median and highest shard at each slot.
fn per_shard(r: &Report, value: impl Fn(&super::report::SlotRecord, usize) -> Option<u64>) -> Vec<Series> {
    let shards = r.shards as usize;
    let at = |x: &super::report::SlotRecord, s: usize| value(x, s).unwrap_or(0) as f64;
    if shards <= 8 {
        return (0..shards)
            .map(|s| Series {
                name: format!("shard {s}"),
                points: r.series.iter().map(|x| (x.slot as f64, at(x, s))).collect(),
            })
            .collect();
    }
    let order = |x: &super::report::SlotRecord| {
        let mut v: Vec<f64> = (0..shards).map(|s| at(x, s)).collect();
        v.sort_by(f64::total_cmp);
        v
    };
    [("lowest shard", 0.0), ("median shard", 0.5), ("highest shard", 1.0)]
        .into_iter()
        .map(|(name, q)| Series {
            name: name.to_string(),
            points: r
                .series
                .iter()
                .map(|x| {
                    let v = order(x);
                    (x.slot as f64, v[((v.len() - 1) as f64 * q).round() as usize])
                })
                .collect(),
        })
        .collect()
}

/// [`plot_series`] with the timeline's marks.
fn plot_marked(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    marks: &[(f64, String)],
) -> String {
    let lines: Vec<Line<'_>> = series
        .iter()
        .enumerate()
        .map(|(i, s)| Line { name: &s.name, colour: COLOURS[i % COLOURS.len()], points: s.points.clone() })
        .collect();
    plot(title, x_label, y_label, &lines, marks)
}

/// A CDF as a step line: flat until each value, then up to its share
/// (`values` in slots, drawn in milliseconds).
fn cdf_steps(cdf: &[(u64, f64)], slot_ms: f64) -> Vec<(f64, f64)> {
    let mut points = vec![(0.0, 0.0)];
    let mut below = 0.0;
    for (v, q) in cdf {
        let x = *v as f64 * slot_ms;
        points.push((x, below));
        points.push((x, *q));
        below = *q;
    }
    points
}

/// The page.
pub fn render(r: &Report) -> String {
    let marks: Vec<(f64, String)> = r
        .series
        .iter()
        .filter(|s| !s.events.is_empty())
        .map(|s| (s.slot as f64, s.events.join("; ")))
        .collect();
    let per_second = 1_000.0 / r.slot_ms as f64;
    let throughput = [
        Line {
            name: "offered",
            colour: COLOURS[1],
            points: r.series.iter().map(|s| (s.slot as f64, s.offered as f64 * per_second)).collect(),
        },
        Line {
            name: "included",
            colour: COLOURS[0],
            points: r.series.iter().map(|s| (s.slot as f64, s.included as f64 * per_second)).collect(),
        },
        Line {
            name: "messages delivered",
            colour: COLOURS[2],
            points: r.series.iter().map(|s| (s.slot as f64, s.delivered as f64 * per_second)).collect(),
        },
    ];
    let heads = per_shard(r, |x, s| x.heads.get(s).copied());
    let finals = per_shard(r, |x, s| x.finalized.get(s).copied());
    let cdfs: Vec<Line<'_>> = r
        .latencies
        .iter()
        .enumerate()
        .filter(|(_, l)| l.count > 0)
        .map(|(i, l)| Line {
            name: l.phase,
            colour: COLOURS[i % COLOURS.len()],
            points: cdf_steps(&l.cdf, r.slot_ms as f64),
        })
        .collect();
    let games = [Line {
        name: "games open",
        colour: COLOURS[4],
        points: r.series.iter().map(|s| (s.slot as f64, s.games_open as f64)).collect(),
    }];
    let mut html = page_head(&r.scenario);
    let _ = write!(
        html,
        "<h1>{}</h1><p>{}</p><p>Seed {}, tier {} ({} links), {} shards × {} validators, {} ms slots, {} slots run.</p>",
        escape(&r.scenario),
        escape(&r.description),
        r.seed,
        r.tier,
        r.isolation,
        r.shards,
        r.validators_per_shard,
        r.slot_ms,
        r.slots_run
    );
    match &r.violation {
        Some(v) => {
            let _ = write!(
                html,
                r#"<p class="bad"><b>Invariant broken</b> at slot {}: {} — {}</p>"#,
                v.slot,
                escape(v.invariant),
                escape(&v.evidence)
            );
        }
        None => {
            let _ = write!(
                html,
                "<p>Every invariant held after every slot: {}.</p>",
                escape(&r.invariants.join(", "))
            );
        }
    }
    let t = &r.totals;
    let _ = write!(
        html,
        "<p>{} transactions offered, {} taken by a node, {} included ({:.1} a second); {} messages delivered; {:.2} headers per shard per slot; {} games ended.</p>",
        t.offered,
        t.submitted,
        t.included,
        t.included_per_second,
        t.delivered,
        t.headers_per_shard_per_slot,
        t.games_ended
    );
    html +=
        &plot("Throughput over time (timeline entries dashed)", "slot", "per second", &throughput, &marks);
    html += &plot_marked("Accepted head height per shard", "slot", "height", &heads, &marks);
    html += &plot_marked("Final height per shard", "slot", "height", &finals, &marks);
    html += &plot("Latency per phase (CDF)", "milliseconds", "share of samples", &cdfs, &[]);
    html += &plot("Dispute games open", "slot", "games", &games, &marks);
    html += "<h2>Latency per phase (slots)</h2><table><tr><th>phase</th><th>n</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th></tr>";
    for l in &r.latencies {
        let _ = write!(
            html,
            "<tr><td style=\"text-align:left\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(l.phase),
            l.count,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max
        );
    }
    html += "</table><h2>Cross-shard latency per shard pair (slots)</h2><table><tr><th>from</th><th>to</th><th>n</th><th>p50</th><th>p99</th><th>max</th></tr>";
    for p in &r.pair_latencies {
        let _ = write!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            p.src, p.dst, p.count, p.p50, p.p99, p.max
        );
    }
    html += "</table>";
    if !r.nodes.is_empty() {
        // processes: each node's resident memory over the run, and its CPU
        let rss: Vec<Series> = r
            .nodes
            .iter()
            .map(|n| Series {
                name: n.node.clone(),
                points: n.rss_mb.iter().enumerate().map(|(i, m)| ((i + 1) as f64, *m)).collect(),
            })
            .collect();
        html += &plot_marked("Resident memory per node", "slot", "MB", &rss, &marks);
        html += "<h2>Per-node CPU and memory</h2><table><tr><th>node</th><th>CPU s</th><th>CPU % of a core</th><th>max RSS MB</th></tr>";
        for n in &r.nodes {
            let _ = write!(
                html,
                "<tr><td style=\"text-align:left\">{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td></tr>",
                escape(&n.node),
                n.cpu_seconds,
                n.cpu_percent,
                n.max_rss_mb
            );
        }
        html += "</table>";
    }
    html += "</body></html>\n";
    html
}
