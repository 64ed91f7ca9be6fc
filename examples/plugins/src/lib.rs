//! What the example plugins share: they are configured through comma-separated lists in their
//! environment (set with `env = { ... }` in hookvisor's configuration).
#![forbid(unsafe_code)]

/// The comma-separated list in the variable `name` (`default` when unset): entries trimmed,
/// empty ones dropped.
pub fn env_list(name: &str, default: &str) -> Vec<String> {
    let value = std::env::var(name).unwrap_or_else(|_| default.to_owned());
    comma_list(&value)
}

/// Like [`env_list`], but the list must name at least one entry; the error names the variable
/// and its default.
pub fn required_env_list(name: &str, default: &str) -> Result<Vec<String>, String> {
    let list = env_list(name, default);
    if list.is_empty() {
        return Err(format!(
            "{name} lists no tools; name at least one (default: {default})"
        ));
    }
    Ok(list)
}

/// A comma-separated list: entries trimmed, empty ones dropped.
pub fn comma_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::comma_list;

    #[test]
    fn lists_are_trimmed_and_empties_dropped() {
        assert_eq!(
            comma_list(" exec, shell ,,bash,"),
            ["exec", "shell", "bash"]
        );
        assert!(comma_list(" , ").is_empty());
        assert!(comma_list("").is_empty());
    }
}
