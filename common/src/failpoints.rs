//! Fault injection for tests: the `FAILPOINTS` environment variable
//! (`name=actions;...`, the `fail` crate's action syntax) arms failpoints in
//! a daemon at start-up. Inert when unset.

/// Arms the failpoints listed in `FAILPOINTS`; returns the names armed
/// (none if it is unset).
pub fn configure_from_env() -> Result<Vec<String>, String> {
    match std::env::var("FAILPOINTS") {
        Ok(spec) => configure(&spec),
        Err(std::env::VarError::NotPresent) => Ok(Vec::new()),
        Err(std::env::VarError::NotUnicode(_)) => Err("FAILPOINTS is not valid UTF-8".into()),
    }
}

/// Arms failpoints from a `name=actions;...` list; returns the names armed.
/// On a malformed entry nothing stays armed.
pub fn configure(spec: &str) -> Result<Vec<String>, String> {
    let mut armed: Vec<String> = Vec::new();
    for part in spec.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let res = match part.split_once('=') {
            Some((name, actions)) => {
                let name = name.trim();
                fail::cfg(name, actions.trim())
                    .map(|()| name.to_string())
                    .map_err(|e| format!("failpoint {name}: {e}"))
            }
            None => Err(format!("failpoint entry {part:?} is not name=actions")),
        };
        match res {
            Ok(name) => {
                tracing::warn!(failpoint = %name, actions = %part, "failpoint armed");
                armed.push(name);
            }
            Err(e) => {
                for name in &armed {
                    fail::remove(name);
                }
                return Err(e);
            }
        }
    }
    Ok(armed)
}
