//! A readable, stable rendering of a compiled snapshot: what `explain --tree` prints and what
//! the compiled-tree snapshot tests pin down.

use super::snapshot::*;
use std::fmt::Write as _;

impl Snapshot {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "default dialect {}", self.default_dialect);
        let mut hosts: Vec<(String, usize)> = self
            .hosts
            .exact
            .iter()
            .map(|(h, s)| (h.clone(), *s))
            .collect();
        hosts.sort();
        hosts.extend(
            self.hosts
                .suffixes
                .iter()
                .map(|(h, s)| (format!("*{h}"), *s)),
        );
        hosts.extend(self.hosts.any.map(|s| ("*".to_string(), s)));
        out.push_str("hosts\n");
        for (h, s) in hosts {
            let _ = writeln!(out, "  {h} → {}", self.services[s].name);
        }
        for s in &self.services {
            s.render(&mut out);
        }
        out
    }
}

impl Service {
    fn render(&self, out: &mut String) {
        let _ = writeln!(out, "service {} (dialect {})", self.name, self.dialect);
        let l = &self.limits;
        let _ = writeln!(
            out,
            "  limits body {} uri {} header {} headers {}",
            l.body, l.uri, l.header, l.headers
        );
        match &self.stages {
            StageSelector::None => {}
            StageSelector::Header {
                header,
                names,
                default,
            } => {
                let _ = writeln!(
                    out,
                    "  stages {} from header {header:?} default {}",
                    names.join(" "),
                    names[*default]
                );
            }
            StageSelector::Path { names } => {
                let _ = writeln!(out, "  stages {} from path", names.join(" "));
            }
        }
        for (i, tree) in self.trees.iter().enumerate() {
            match self.stages.names().get(i) {
                Some(stage) => {
                    let _ = writeln!(out, "  tree [{stage}]");
                }
                None => out.push_str("  tree\n"),
            }
            for line in tree.render(&|r| format!("#{r}")).lines() {
                let _ = writeln!(out, "    {line}");
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            let _ = writeln!(out, "  route #{i} {} ({})", r.label, r.location);
            for (n, check) in r.program.iter().enumerate() {
                let _ = writeln!(out, "    {}. {check}", n + 1);
            }
            for policy in &r.policies {
                let action = self.describe_action(&policy.action);
                let _ = writeln!(out, "    ↳ {policy} → {action}");
                for line in self.describe_upstream(&policy.action) {
                    let _ = writeln!(out, "        {line}");
                }
            }
            let _ = writeln!(out, "    → {}", self.describe_action(&r.action));
            for line in self.describe_upstream(&r.action) {
                let _ = writeln!(out, "      {line}");
            }
        }
    }

    /// What a forward does to the backend request, one line per statement (none for other
    /// actions and for a plain forward).
    pub fn describe_upstream(&self, a: &Action) -> Vec<String> {
        let Action::Forward(f) = a else {
            return Vec::new();
        };
        let mut lines = Vec::new();
        if let Some(s) = &f.shaping {
            lines.extend(s.describe());
        }
        let backend = &self.backends[f.backend];
        if let Some(signer) = &backend.signer {
            lines.push(format!("signed {} as {:?}", signer.kind.name(), signer.key));
        }
        lines.extend(backend.targeting.describe());
        if backend.targeting.breaker.is_some() {
            lines.push(format!(
                "downgrade {}",
                self.describe_downgrade(&backend.downgrade)
            ));
        }
        lines
    }

    fn describe_downgrade(&self, d: &Downgrade) -> String {
        match d {
            Downgrade::Mock(m) => self.describe_action(&Action::Mock(m.clone())),
            Downgrade::Backend(b) => format!("to backend {}", self.backends[*b].name),
            Downgrade::Unavailable => "unavailable (the dialect's no-backend row)".to_string(),
        }
    }

    /// One line describing a route's terminal action.
    pub fn describe_action(&self, a: &Action) -> String {
        match a {
            Action::Mock(m) => {
                let mut s = format!("mock {}", m.answer.status);
                if let Some(ct) = m.content_type {
                    let _ = write!(s, " {ct} {}", String::from_utf8_lossy(&m.answer.body));
                }
                s
            }
            Action::Forward(f) => {
                let b = &self.backends[f.backend];
                let mut s = format!(
                    "forward {} [{}]",
                    b.name,
                    b.targets
                        .iter()
                        .map(|t| t.url.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                if let Some(p) = &f.path {
                    let _ = write!(s, " path {p}");
                }
                s
            }
            Action::IssueTokens { provider } => {
                format!("issue tokens {}", self.providers[*provider].name)
            }
        }
    }
}
