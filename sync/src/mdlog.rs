//! Reading the metadata log safely. A metadata change is logged twice: a
//! `prepare` entry before the change and a `commit` entry after it, so a
//! crash between the two leaves a prepare without its commit rather than a
//! change without any entry. The agent applies a change by fetching the
//! record as the master holds it now, so it needs one fetch after the change
//! has landed: at the commit, or — when the writer died before writing it —
//! once the prepare is older than the longest a metadata change can take.
//! It never moves its marker past a younger prepare whose commit it has not
//! seen, since the change may still land.

use meridian_zone::{MdlogEntry, MdlogPhase};

/// What to do with a page of metadata log entries.
#[derive(Debug, Clone, PartialEq)]
pub struct MdlogPlan {
    /// Entries to apply (fetch the record and store it), with their positions.
    pub apply: Vec<(String, MdlogEntry)>,
    /// Positions passed without work (prepares whose commit follows).
    pub passed: Vec<String>,
    /// The page was cut before a prepare whose change may still land: read
    /// again from there a little later.
    pub held: bool,
}

/// Plans a page (in log order) read at `now_ms`; a prepare older than
/// `settle_ms` without its commit counts as landed (or never to land).
pub fn plan_page(page: &[(String, MdlogEntry)], now_ms: u64, settle_ms: u64) -> MdlogPlan {
    let mut plan = MdlogPlan {
        apply: Vec::new(),
        passed: Vec::new(),
        held: false,
    };
    for (i, (pos, e)) in page.iter().enumerate() {
        match e.phase {
            MdlogPhase::Commit => plan.apply.push((pos.clone(), e.clone())),
            MdlogPhase::Prepare => {
                let committed = page[i + 1..]
                    .iter()
                    .any(|(_, c)| c.phase == MdlogPhase::Commit && c.id == e.id);
                if committed {
                    plan.passed.push(pos.clone());
                } else if now_ms.saturating_sub(e.ts_ms) >= settle_ms {
                    plan.apply.push((pos.clone(), e.clone()));
                } else {
                    plan.held = true;
                    return plan;
                }
            }
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, phase: MdlogPhase, ts_ms: u64) -> MdlogEntry {
        MdlogEntry {
            section: "user".into(),
            name: format!("u{id}"),
            op: "write".into(),
            ts_ms,
            id: id.into(),
            phase,
        }
    }

    #[test]
    fn a_prepare_with_its_commit_is_applied_once_at_the_commit() {
        let page = vec![
            ("1".to_string(), entry("a", MdlogPhase::Prepare, 100)),
            ("2".to_string(), entry("a", MdlogPhase::Commit, 101)),
        ];
        let p = plan_page(&page, 102, 30_000);
        assert_eq!(p.passed, vec!["1".to_string()]);
        assert_eq!(p.apply.len(), 1);
        assert_eq!(p.apply[0].0, "2");
        assert!(!p.held);
    }

    #[test]
    fn a_young_prepare_without_commit_holds_the_page_there() {
        let page = vec![
            ("1".to_string(), entry("a", MdlogPhase::Commit, 100)),
            ("2".to_string(), entry("b", MdlogPhase::Prepare, 100)),
            ("3".to_string(), entry("c", MdlogPhase::Commit, 100)),
        ];
        let p = plan_page(&page, 1_000, 30_000);
        assert!(p.held);
        assert_eq!(p.apply.len(), 1, "only what precedes the prepare");
        assert!(p.passed.is_empty());
    }

    #[test]
    fn an_old_prepare_of_a_dead_writer_is_applied() {
        let page = vec![("1".to_string(), entry("a", MdlogPhase::Prepare, 100))];
        let p = plan_page(&page, 100 + 30_000, 30_000);
        assert!(!p.held);
        assert_eq!(p.apply.len(), 1);
    }
}
