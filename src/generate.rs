//! Manual pages and shell completions of `enc365-nginx`, from its clap definition: the
//! `clap-docs` crate does the work (it is shared with `enc365-sim`); this module is where the tool
//! reaches it, so `crate::generate::man_pages` reads as before.

pub use clap_docs::{completions, man_pages};

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
        assert!(
            !bash.contains("generate"),
            "hidden commands are not completed"
        );
        assert!(dir.path().join("zsh/_enc365-nginx").exists());
        assert!(dir.path().join("fish/enc365-nginx.fish").exists());
    }
}
