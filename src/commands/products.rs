//! `enc365-nginx products`: the products the account may order (Encryption365
//! `/account/products`), through the configured provider's account API, as a table or one JSON
//! object. The table shows the CA's words in the language of the interface where it gives both
//! ([`crate::locale`]); `--json` keeps the raw fields.

use anyhow::anyhow;
use serde_json::json;

use crate::ca::CaError;
use crate::commands::{Context, block_on, print_json};
use crate::exit::{CommandResult, ExitStatus, Failure};

/// Runs `products`.
pub fn run(ctx: &Context) -> CommandResult {
    let config = ctx.load_config()?;
    let api = ctx.account_api(&config, None, true)?;
    let products = block_on(api.products())?.map_err(|e| match e {
        CaError::Unsupported(_) => Failure::usage(anyhow!(e)),
        e => Failure::failed(anyhow!(e).context("could not list the products")),
    })?;
    let settings = config.provider_settings();
    let configured = settings.product_setting();
    let configured_id = settings.product();
    if ctx.global.json {
        let mut doc = json!({"provider": api.name(), "products": products});
        if let Some((key, value)) = &configured {
            doc[format!("configured_{key}")] = value.clone();
        }
        print_json(&doc);
        return Ok(ExitStatus::Success);
    }
    // Titles and periods in the language of the interface where the CA gives both, else as
    // given and labelled (Encryption365 titles are Chinese only; its period is in both).
    let lang = crate::locale::Lang::from_env();
    let rows: Vec<[String; 7]> = products
        .iter()
        .map(|p| {
            let period_zh = (p.provider_fields.get("periodText"))
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            [
                if p.id == configured_id {
                    format!("{}*", p.id)
                } else {
                    p.id.clone()
                },
                lang.as_given(&p.title),
                p.class.clone(),
                p.term.clone(),
                lang.pick(&p.period, period_zh),
                price(p.price_fqdn, &p.currency),
                price(p.price_wildcard, &p.currency),
            ]
        })
        .collect();
    let key = configured.as_ref().map_or("product", |(k, _)| *k);
    let id_header = key.to_ascii_uppercase();
    let header = [
        id_header.as_str(),
        "TITLE",
        "CLASS",
        "TERM",
        "PERIOD",
        "PER NAME",
        "PER WILDCARD",
    ];
    print_table(&header, &rows);
    if configured.is_some() {
        println!(
            "* = the configured product ({key} = {configured_id} under [{}] in the config file)",
            config.provider.table()
        );
    }
    Ok(ExitStatus::Success)
}

fn price(value: f64, currency: &str) -> String {
    if value == 0.0 {
        "free".to_string()
    } else {
        format!("{value:.2} {currency}")
    }
}

/// Prints rows under a header, columns padded to the widest cell (in terminal columns).
pub fn print_table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(display_width);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(display_width(cell));
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - display_width(c))))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Terminal columns a string takes: East Asian wide characters (CJK, Hangul, full-width forms)
/// take two, as product titles from Encryption365 are Chinese.
fn display_width(text: &str) -> usize {
    text.chars()
        .map(|c| match u32::from(c) {
            0x1100..=0x115F
            | 0x2E80..=0x303E
            | 0x3041..=0x33FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA000..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6 => 2,
            _ => 1,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::display_width;

    #[test]
    fn chinese_titles_count_two_columns_per_character() {
        assert_eq!(display_width("免费版 SSL 证书"), 15);
        assert_eq!(display_width("90天"), 4);
        assert_eq!(display_width("PID"), 3);
    }
}
