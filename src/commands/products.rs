//! `enc365-nginx products`: the products the account may order (`/account/products`), as a table
//! or one JSON object.

use anyhow::anyhow;
use serde_json::json;

use crate::commands::{Context, block_on, print_json};
use crate::exit::{CommandResult, ExitStatus, Failure};

/// Runs `products`.
pub fn run(ctx: &Context) -> CommandResult {
    let config = ctx.load_config()?;
    let client = ctx.enc365_client(&config)?;
    let products = block_on(client.products())?
        .map_err(|e| Failure::failed(anyhow!(e).context("could not list the products")))?;
    if ctx.global.json {
        print_json(&json!({"products": products, "configured_pid": config.pid}));
        return Ok(ExitStatus::Success);
    }
    let rows: Vec<[String; 7]> = products
        .iter()
        .map(|p| {
            [
                if p.pid == config.pid {
                    format!("{}*", p.pid)
                } else {
                    p.pid.to_string()
                },
                p.title.clone(),
                p.class.clone(),
                p.term.clone(),
                p.period.clone(),
                price(p.price_fqdn),
                price(p.price_wildcard),
            ]
        })
        .collect();
    let header = [
        "PID",
        "TITLE",
        "CLASS",
        "TERM",
        "PERIOD",
        "PER NAME",
        "PER WILDCARD",
    ];
    print_table(&header, &rows);
    println!(
        "* = the configured product (pid = {} in the config file)",
        config.pid
    );
    Ok(ExitStatus::Success)
}

fn price(value: f64) -> String {
    if value == 0.0 {
        "free".to_string()
    } else {
        format!("{value:.2} CNY")
    }
}

/// Prints rows under a header, columns padded to the widest cell (in characters).
pub fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
