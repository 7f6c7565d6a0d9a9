//! The language of the interface, for the text a CA hands us (product titles, periods): shown in
//! the language of the interface where the CA gives both, otherwise as given and labelled so.
//! The language comes from the environment as for any POSIX program (`LC_ALL`, then
//! `LC_MESSAGES`, then `LANG`): `zh…` is Chinese, anything else English.
//!
//! Not here: translating our own messages (they are English).

/// A language of the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English (the default).
    English,
    /// Chinese (`LANG=zh_CN.UTF-8` and the like).
    Chinese,
}

impl Lang {
    /// The language of this process's environment.
    pub fn from_env() -> Lang {
        Lang::from_vars(|k| std::env::var(k).ok())
    }

    /// The language `get` (an environment lookup) gives: the first of `LC_ALL`, `LC_MESSAGES`
    /// and `LANG` that is set and not empty decides.
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Lang {
        let chosen = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .find_map(|k| get(k).filter(|v| !v.is_empty()));
        match chosen {
            Some(v) if v.to_ascii_lowercase().starts_with("zh") => Lang::Chinese,
            _ => Lang::English,
        }
    }

    /// The language `text` is written in: Chinese when it holds a CJK ideograph.
    pub fn of(text: &str) -> Lang {
        let cjk =
            |c: char| matches!(u32::from(c), 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF);
        if text.chars().any(cjk) {
            Lang::Chinese
        } else {
            Lang::English
        }
    }

    /// A CA's text given in both languages, in this one; when only one is given (the other
    /// empty), that one, labelled by [`Lang::as_given`].
    pub fn pick(self, english: &str, chinese: &str) -> String {
        match (self, english.is_empty(), chinese.is_empty()) {
            (Lang::English, false, _) => english.to_string(),
            (Lang::Chinese, _, false) => chinese.to_string(),
            (_, true, false) => self.as_given(chinese),
            (_, _, _) => self.as_given(english),
        }
    }

    /// A CA's text given in one language: as it is when that is this language, else with a
    /// label saying it is the CA's own words.
    pub fn as_given(self, text: &str) -> String {
        // Digits and signs are in no language: only words in the other one get the label.
        let other = match self {
            Lang::English => Lang::of(text) == Lang::Chinese,
            Lang::Chinese => {
                Lang::of(text) == Lang::English && text.chars().any(|c| c.is_ascii_alphabetic())
            }
        };
        if !other {
            return text.to_string();
        }
        match self {
            Lang::English => format!("{text} (as given by the CA)"),
            Lang::Chinese => format!("{text}（CA 原文）"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = (pairs.iter())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn lc_all_wins_then_lc_messages_then_lang() {
        assert_eq!(
            Lang::from_vars(env(&[("LANG", "zh_CN.UTF-8")])),
            Lang::Chinese
        );
        assert_eq!(Lang::from_vars(env(&[("LANG", "C")])), Lang::English);
        assert_eq!(Lang::from_vars(env(&[])), Lang::English);
        let both = env(&[("LC_ALL", "en_US.UTF-8"), ("LANG", "zh_TW.UTF-8")]);
        assert_eq!(Lang::from_vars(both), Lang::English);
        let messages = env(&[("LC_ALL", ""), ("LC_MESSAGES", "zh_CN"), ("LANG", "C")]);
        assert_eq!(Lang::from_vars(messages), Lang::Chinese);
    }

    #[test]
    fn text_in_both_languages_follows_the_interface_and_one_language_is_labelled() {
        assert_eq!(Lang::English.pick("quarterly", "季度"), "quarterly");
        assert_eq!(Lang::Chinese.pick("quarterly", "季度"), "季度");
        assert_eq!(Lang::Chinese.pick("annually", ""), "annually（CA 原文）");
        assert_eq!(
            Lang::English.as_given("免费版 SSL 证书"),
            "免费版 SSL 证书 (as given by the CA)"
        );
        assert_eq!(Lang::Chinese.as_given("免费版 SSL 证书"), "免费版 SSL 证书");
        assert_eq!(Lang::English.as_given("Basic DV"), "Basic DV");
        assert_eq!(Lang::Chinese.as_given("12"), "12");
    }
}
