//! A profile's command line as flags, so that `extra_args` can replace a flag the profile sets instead of
//! repeating it (clap-based clients such as Reth and Lighthouse exit with "the argument cannot be used
//! multiple times"; others take the last value or fail in their own ways).

/// How a client wants a flag's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// `--flag value`.
    Separate,
    /// `--flag=value` (Nimbus's parser needs it for every option; Teku documents it).
    Joined,
}

/// A command line under construction.
#[derive(Debug)]
pub(crate) struct Cmd {
    prefix: Vec<String>,
    args: Vec<(String, Option<String>)>,
    style: Style,
}

/// The flag name of an argument (`--a.b=c` → `--a.b`), or none for a value.
pub(crate) fn flag_name(arg: &str) -> Option<&str> {
    arg.starts_with('-')
        .then(|| arg.split_once('=').map_or(arg, |(name, _)| name))
}

impl Cmd {
    /// A command line starting with positional words (a subcommand such as `node` or `bn`).
    pub(crate) fn new(prefix: &[&str], style: Style) -> Self {
        Self {
            prefix: prefix.iter().map(|s| s.to_string()).collect(),
            args: Vec::new(),
            style,
        }
    }

    /// A flag without a value.
    pub(crate) fn flag(&mut self, name: &str) -> &mut Self {
        self.args.push((name.into(), None));
        self
    }

    /// A flag with a value.
    pub(crate) fn opt(&mut self, name: &str, value: impl ToString) -> &mut Self {
        self.args.push((name.into(), Some(value.to_string())));
        self
    }

    /// The argument vector: the profile's flags minus those `extra` sets again, then `extra` verbatim.
    pub(crate) fn finish(self, extra: &[String]) -> Vec<String> {
        let overridden: Vec<&str> = extra.iter().filter_map(|a| flag_name(a)).collect();
        let mut out = self.prefix;
        for (name, value) in self.args {
            if overridden.contains(&name.as_str()) {
                continue;
            }
            match (value, self.style) {
                (None, _) => out.push(name),
                (Some(v), Style::Separate) => out.extend([name, v]),
                (Some(v), Style::Joined) => out.push(format!("{name}={v}")),
            }
        }
        out.extend(extra.iter().cloned());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_args_replace_the_profiles_flag_in_either_spelling() {
        let mut c = Cmd::new(&["node"], Style::Separate);
        c.opt("--http.api", "eth,net,web3")
            .flag("--ipcdisable")
            .opt("--port", 1);
        let extra = [
            "--http.api=eth,net,web3,txpool,trace".to_string(),
            "--ipcpath".into(),
            "/x".into(),
        ];
        assert_eq!(
            c.finish(&extra),
            [
                "node",
                "--ipcdisable",
                "--port",
                "1",
                "--http.api=eth,net,web3,txpool,trace",
                "--ipcpath",
                "/x"
            ]
        );
        let mut c = Cmd::new(&[], Style::Joined);
        c.opt("--data-dir", "/d").opt("--rest-port", 5052);
        assert_eq!(
            c.finish(&["--rest-port".into(), "6000".into()]),
            ["--data-dir=/d", "--rest-port", "6000"]
        );
    }
}
