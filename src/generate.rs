//! Manual pages and shell completions of `enc365-nginx`, from its clap definition: the
//! `clap-docs` crate does the work (it is shared with `enc365-sim`); this module is where the tool
//! reaches it, so `crate::generate::man_pages` reads as before.

pub use clap_docs::{ManExtras, completions, man_pages, man_pages_with};

/// The ENVIRONMENT (beyond the options' own variables), FILES and EXIT STATUS of every page.
pub fn extras() -> ManExtras {
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    ManExtras {
        environment: pairs(&[
            (
                "ENC365_BASE_URL",
                "The CA API base URL, instead of the config file's (tests, staging).",
            ),
            (
                "ENC365_PASSWORD",
                "The account password for register (else --password-stdin or a prompt).",
            ),
            (
                "ENC365_HOSTS_FILE",
                "Read names from this hosts-format file instead of DNS (tests and staging only).",
            ),
            (
                "ENC365_LOG, RUST_LOG",
                "A tracing filter for the log on stderr, e.g. debug (libraries too).",
            ),
        ]),
        files: pairs(&[
            (
                "/etc/enc365-nginx/config.toml",
                "The configuration (mode 0600): provider, credentials, product, hooks.",
            ),
            (
                "/var/lib/enc365-nginx/",
                "State: orders, backups of every file changed, validation files, the lock.",
            ),
            (
                "/etc/enc365-nginx/live/SITE/",
                "Each site's certificate and key, as nginx reads them.",
            ),
            (
                "/etc/nginx/nginx.conf",
                "The nginx configuration read (--nginx-conf).",
            ),
        ]),
        exit_status: pairs(&[
            ("0", "Done, or nothing to do."),
            (
                "1",
                "Some site or certificate failed (others may have succeeded), or the CA refused the request.",
            ),
            (
                "2",
                "Usage or configuration error: bad options, an unreadable nginx configuration, missing credentials, nginx -t failing before anything changed.",
            ),
            ("3", "Another run holds the lock; wait and retry."),
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use std::fs;

    #[test]
    fn writes_a_page_per_visible_command_and_three_completions() {
        let dir = tempfile::tempdir().unwrap();
        let pages = man_pages(crate::cli::Cli::command(), dir.path()).unwrap();
        let names: Vec<String> = pages
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert!(names.contains(&"enc365-nginx.1".to_string()), "{names:?}");
        assert!(
            names.contains(&"enc365-nginx-discover.1".to_string()),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n.contains("generate")),
            "hidden commands get no page: {names:?}"
        );
        let main = fs::read_to_string(dir.path().join("enc365-nginx.1")).unwrap();
        assert!(
            main.starts_with(".ie"),
            "roff: {}",
            &main[..40.min(main.len())]
        );
        assert!(main.contains(".TH enc365-nginx 1"), "{main}");
        let auto = fs::read_to_string(dir.path().join("enc365-nginx-auto.1")).unwrap();
        assert!(auto.contains(".SH EXAMPLES\n.nf\n"), "{auto}");
        assert!(
            auto.contains("enc365\\-nginx auto \\-\\-site shop.example.com \\-\\-json"),
            "{auto}"
        );

        let files = completions(crate::cli::Cli::command(), dir.path()).unwrap();
        assert_eq!(files.len(), 3);
        let bash = fs::read_to_string(dir.path().join("bash/enc365-nginx")).unwrap();
        assert!(bash.contains("discover"), "{bash}");
        // The hidden command is not completed (`cluster-key --generate` is a flag, not it).
        assert!(
            !bash.contains(",generate)") && !bash.contains("subcmd__generate"),
            "hidden commands are not completed"
        );
        assert!(dir.path().join("zsh/_enc365-nginx").exists());
        assert!(dir.path().join("fish/enc365-nginx.fish").exists());
    }
}
