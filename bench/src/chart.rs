//! The PNG chart: throughput ratio to no filter against rule count, RBAC and peerguard, log-log.
//!
//! Drawn with plotters' primitives in pixel space; text uses the public-domain 8×8 bitmap font of
//! the `font8x8` crate, so no system font or font engine is needed.

use std::path::Path;

use anyhow::{anyhow, Result};
use font8x8::UnicodeFonts;
use plotters::prelude::*;

use crate::configs::Kind;
use crate::Report;

const W: u32 = 960;
const H: u32 = 600;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 920.0;
const TOP: f64 = 80.0;
const BOTTOM: f64 = 500.0;
const X_MIN: f64 = 0.7; // log10(5)
const X_MAX: f64 = 4.3; // log10(20000)

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("chart: {e:?}")
}

fn text(area: &Area<'_>, s: &str, x: i32, y: i32, scale: i32, color: &RGBColor) -> Result<()> {
    for (n, ch) in s.chars().enumerate() {
        let glyph = font8x8::BASIC_FONTS.get(ch).or_else(|| font8x8::LATIN_FONTS.get(ch)).unwrap_or([0; 8]);
        let gx = x + n as i32 * 8 * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8 {
                if bits & (1 << col) != 0 {
                    let (px, py) = (gx + col * scale, y + row as i32 * scale);
                    area.draw(&Rectangle::new([(px, py), (px + scale - 1, py + scale - 1)], color.filled()))
                        .map_err(err)?;
                }
            }
        }
    }
    Ok(())
}

/// Draws the chart for `report` into `path`.
pub fn draw(report: &Report, path: &Path) -> Result<()> {
    let series = |kind: Kind| -> Vec<(f64, f64)> {
        report
            .results
            .iter()
            .filter(|r| r.config.kind == kind)
            .filter_map(|r| Some((r.config.rules as f64, r.summary.as_ref()?.ratio_to_no_filter?)))
            .filter(|(_, y)| *y > 0.0)
            .collect()
    };
    let rbac = series(Kind::Rbac);
    let pg = series(Kind::Peerguard);
    let floor = report
        .results
        .iter()
        .find(|r| r.config.kind == Kind::WasmFloor)
        .and_then(|r| r.summary.as_ref()?.ratio_to_no_filter);
    let lowest = rbac.iter().chain(&pg).map(|p| p.1).fold(1.0f64, f64::min);
    let y_min = (lowest.log10() - 0.3).floor().min(-1.0);
    let y_max = 0.3; // ratio 2
    let px = |x: f64| (LEFT + (x.log10() - X_MIN) / (X_MAX - X_MIN) * (RIGHT - LEFT)) as i32;
    let py = |y: f64| (BOTTOM - (y.log10() - y_min) / (y_max - y_min) * (BOTTOM - TOP)) as i32;

    let root = BitMapBackend::new(path, (W, H)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let grey = RGBColor(215, 215, 215);
    let dark = RGBColor(60, 60, 60);
    text(&root, "Throughput vs no filter, by rule count (log-log)", 110, 24, 2, &BLACK)?;
    text(
        &root,
        &format!("Envoy --concurrency 1, mTLS, direct_response; {} mode", report.options.mode),
        110,
        50,
        1,
        &dark,
    )?;
    // Horizontal grid at each decade, with labels.
    let mut e = y_min as i32;
    while f64::from(e) <= y_max {
        let y = 10f64.powi(e);
        root.draw(&PathElement::new(vec![(LEFT as i32, py(y)), (RIGHT as i32, py(y))], grey.stroke_width(1)))
            .map_err(err)?;
        let label = if e >= 0 { format!("{y:.0}") } else { format!("{y:.*}", (-e) as usize) };
        text(&root, &label, 20, py(y) - 6, 2, &dark)?;
        e += 1;
    }
    for x in [10.0, 100.0, 1_000.0, 10_000.0] {
        root.draw(&PathElement::new(vec![(px(x), TOP as i32), (px(x), BOTTOM as i32)], grey.stroke_width(1)))
            .map_err(err)?;
        let label = format!("{x:.0}");
        text(&root, &label, px(x) - label.len() as i32 * 8, BOTTOM as i32 + 10, 2, &dark)?;
    }
    text(&root, "principal rules (the request matches the last)", 150, BOTTOM as i32 + 45, 2, &dark)?;
    root.draw(&Rectangle::new([(LEFT as i32, TOP as i32), (RIGHT as i32, BOTTOM as i32)], dark.stroke_width(1)))
        .map_err(err)?;
    // Reference lines: no filter (1.0) and the wasm floor.
    root.draw(&PathElement::new(vec![(LEFT as i32, py(1.0)), (RIGHT as i32, py(1.0))], BLACK.stroke_width(2)))
        .map_err(err)?;
    let green = RGBColor(0, 140, 60);
    if let Some(f) = floor {
        let mut x = LEFT as i32;
        while x < RIGHT as i32 {
            root.draw(&PathElement::new(vec![(x, py(f)), ((x + 10).min(RIGHT as i32), py(f))], green.stroke_width(2)))
                .map_err(err)?;
            x += 18;
        }
    }
    let blue = RGBColor(30, 90, 200);
    // RBAC's values above its points, peerguard's below, so that they do not collide at 10 rules.
    for (pts, color, dy) in [(&rbac, RED, -22), (&pg, blue, 10)] {
        let line: Vec<(i32, i32)> = pts.iter().map(|&(x, y)| (px(x), py(y))).collect();
        root.draw(&PathElement::new(line.clone(), color.stroke_width(3))).map_err(err)?;
        for (p, &(_, y)) in line.iter().zip(pts.iter()) {
            root.draw(&Circle::new(*p, 5, color.filled())).map_err(err)?;
            text(&root, &format!("{y:.3}"), p.0 + 8, p.1 + dy, 2, &color)?;
        }
    }
    // Legend.
    // Lower left: RBAC's line falls to the lower right.
    let (lx, ly) = (LEFT as i32 + 20, BOTTOM as i32 - 110);
    root.draw(&Rectangle::new([(lx - 10, ly - 10), (lx + 260, ly + 92)], WHITE.filled())).map_err(err)?;
    let entries = [(blue, "peerguard"), (RED, "native RBAC"), (green, "wasm floor"), (BLACK, "no filter = 1")];
    for (i, (c, name)) in entries.iter().enumerate() {
        let y = ly + i as i32 * 22 + 6;
        root.draw(&PathElement::new(vec![(lx, y), (lx + 30, y)], c.stroke_width(3))).map_err(err)?;
        text(&root, name, lx + 40, y - 7, 2, c)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
