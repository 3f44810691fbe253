//! Whose runtime it is: the holder of each notebook's kernel (who started it), the rule for
//! what everyone else may do in it, and the per-user kernel limit.
//!
//! The rule, given by the collab service per command as a [`RuntimeAccess`] (the notebook's
//! owner and its `editors_may_run` setting) and applied here, where the holder is known:
//!
//! | caller, with a kernel held by someone else | execute | interrupt | restart / switch |
//! | --- | --- | --- | --- |
//! | the holder | yes | yes | yes |
//! | the owner | if `editors_may_run` | yes | yes, and takes it over |
//! | another editor | if `editors_may_run` | if `editors_may_run` | if `editors_may_run` |
//!
//! Completions and inspection ([`Action::Query`]) follow the execute column, and never
//! start a kernel.
//!
//! With no kernel running, an execute, restart or switch starts one held by the caller. A
//! takeover starts the fresh kernel for the caller: their drive, their name in
//! `state.kernel.holder`. Refusals are `runtime_not_shared` with a sentence naming the holder.

use tandem_protocol::runtime::{ErrorCode, Refusal, RuntimeAccess};

use super::Node;
use crate::session::Holder;

/// The holders of the notebooks' kernels on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Run cells (starting a kernel if none runs).
    Execute,
    /// Interrupt the running cell.
    Interrupt,
    /// Restart the kernel, or switch it to another device.
    Restart,
    /// Ask the running kernel for completions or an inspection: allowed as an execute is,
    /// and never starts a kernel.
    Query,
}

/// The answer of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decision {
    /// Go ahead; the holder stays.
    Proceed,
    /// Go ahead; the kernel this starts is the caller's.
    Claim,
    /// Refused, with why.
    Refuse(String),
}

/// The rule of the module doc: what `caller` may do to a kernel held by `holder` (`None`:
/// no kernel runs).
pub(super) fn decide(
    holder: Option<&Holder>,
    caller: &str,
    access: &RuntimeAccess,
    action: Action,
) -> Decision {
    let Some(holder) = holder else {
        return match action {
            Action::Interrupt | Action::Query => Decision::Proceed,
            Action::Execute | Action::Restart => Decision::Claim,
        };
    };
    if holder.id == caller {
        return Decision::Proceed;
    }
    let is_owner = !caller.is_empty() && caller == access.owner_id;
    match action {
        Action::Restart if is_owner => Decision::Claim,
        _ if access.editors_may_run => Decision::Proceed,
        Action::Interrupt if is_owner => Decision::Proceed,
        _ => Decision::Refuse(refusal(holder, access, is_owner, action)),
    }
}

/// A refusal that says whose runtime it is, why not, and what the caller can do.
fn refusal(holder: &Holder, access: &RuntimeAccess, is_owner: bool, action: Action) -> String {
    let name = if holder.name.trim().is_empty() {
        "someone else"
    } else {
        holder.name.as_str()
    };
    let whose = if holder.id == access.owner_id {
        format!(
            "This notebook's runtime belongs to {name}, who does not let editors run code in it"
        )
    } else if is_owner {
        format!(
            "This notebook's runtime belongs to {name}, and you do not let editors run code \
             in someone else's runtime"
        )
    } else {
        format!(
            "This notebook's runtime belongs to {name}, and the notebook's owner does not let \
             editors run code in someone else's runtime"
        )
    };
    let what = match action {
        Action::Execute if is_owner => format!(
            "restart the runtime to make it yours ({name}'s variables are lost), or allow it \
             in the share dialog"
        ),
        Action::Execute => format!(
            "your code would run with {name}'s Drive and the secrets {name} granted to this \
             notebook. Ask {name} to run it; once the runtime stops, your next run starts a \
             runtime of your own"
        ),
        Action::Interrupt | Action::Restart => {
            format!("only {name} or the notebook's owner may interrupt or restart it")
        }
        Action::Query => format!(
            "completions and docstrings come from the running kernel, which only {name} may \
             use; they come back once you run code in a runtime of your own"
        ),
    };
    format!("{whose}: {what}.")
}

impl Node {
    /// Checks `caller`'s right to `action` on the notebook's kernel (see the module doc) and
    /// records them as its holder when the action starts a kernel of theirs, within the
    /// per-user limit. Errors are `(code, message)` for the reply.
    pub(super) async fn authorize(
        &self,
        notebook_id: &str,
        caller: &Holder,
        access: &RuntimeAccess,
        action: Action,
    ) -> Result<(), Refusal> {
        let mut notebooks = self.notebooks.lock().await;
        // A holder is the holder of a running kernel: those of kernels that stopped go.
        for entry in notebooks.values_mut() {
            if !entry.has_live_kernel() {
                entry.holder = None;
            }
        }
        let current = notebooks
            .get(notebook_id)
            .and_then(|entry| entry.holder.as_ref());
        let decision = decide(current, &caller.id, access, action);
        let message = match decision {
            Decision::Proceed => return Ok(()),
            Decision::Refuse(message) => {
                return Err(Refusal::new(ErrorCode::RuntimeNotShared, message));
            }
            Decision::Claim if caller.id.is_empty() => {
                // Nobody signed in (an older collab service): no holder to record.
                return Ok(());
            }
            Decision::Claim => {
                let limit = self.config.kernels.kernels_per_user;
                let held = notebooks
                    .iter()
                    .filter(|(id, entry)| {
                        id.as_str() != notebook_id
                            && entry.holder.as_ref().is_some_and(|h| h.id == caller.id)
                    })
                    .count();
                if limit == 0 || held < limit {
                    notebooks
                        .entry(notebook_id.to_owned())
                        .or_default()
                        .set_holder(caller.clone());
                    return Ok(());
                }
                format!(
                    "you already have {held} running kernel(s), the most one person may have; \
                     restart or leave one idle until it shuts down, then try again"
                )
            }
        };
        Err(Refusal::new(ErrorCode::KernelLimit, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(id: &str, name: &str) -> Holder {
        Holder {
            id: id.into(),
            name: name.into(),
        }
    }

    fn access(owner: &str, editors_may_run: bool) -> RuntimeAccess {
        RuntimeAccess {
            owner_id: owner.into(),
            editors_may_run,
        }
    }

    #[test]
    fn with_no_kernel_the_caller_starts_their_own() {
        let closed = access("alice", false);
        for action in [Action::Execute, Action::Restart] {
            assert_eq!(decide(None, "bob", &closed, action), Decision::Claim);
        }
        assert_eq!(
            decide(None, "bob", &closed, Action::Interrupt),
            Decision::Proceed
        );
    }

    #[test]
    fn the_holder_always_may() {
        let bob = person("bob", "Bob");
        for action in [Action::Execute, Action::Interrupt, Action::Restart] {
            assert_eq!(
                decide(Some(&bob), "bob", &access("alice", false), action),
                Decision::Proceed
            );
        }
    }

    #[test]
    fn editors_run_in_others_runtimes_only_when_the_owner_allows() {
        let alice = person("alice", "Alice");
        for action in [Action::Execute, Action::Interrupt, Action::Restart] {
            assert_eq!(
                decide(Some(&alice), "bob", &access("alice", true), action),
                Decision::Proceed
            );
            let Decision::Refuse(message) =
                decide(Some(&alice), "bob", &access("alice", false), action)
            else {
                panic!("{action:?} was not refused");
            };
            assert!(
                message.starts_with(
                    "This notebook's runtime belongs to Alice, who does not let editors run \
                     code in it"
                ),
                "{message}"
            );
        }
    }

    #[test]
    fn the_owner_interrupts_and_takes_over_by_restarting() {
        let bob = person("bob", "Bob");
        let closed = access("alice", false);
        assert_eq!(
            decide(Some(&bob), "alice", &closed, Action::Interrupt),
            Decision::Proceed
        );
        assert_eq!(
            decide(Some(&bob), "alice", &closed, Action::Restart),
            Decision::Claim
        );
        // A restart by the owner takes the runtime over whatever the setting.
        assert_eq!(
            decide(Some(&bob), "alice", &access("alice", true), Action::Restart),
            Decision::Claim
        );
        let Decision::Refuse(message) = decide(Some(&bob), "alice", &closed, Action::Execute)
        else {
            panic!("the owner ran code in Bob's runtime");
        };
        assert!(
            message.contains("restart the runtime to make it yours"),
            "{message}"
        );
        // A third person, in Bob's runtime, is told it is the owner's setting.
        let Decision::Refuse(message) = decide(Some(&bob), "carol", &closed, Action::Execute)
        else {
            panic!("Carol ran code in Bob's runtime");
        };
        assert!(
            message.contains("the notebook's owner does not let"),
            "{message}"
        );
    }

    #[test]
    fn queries_follow_the_execute_rule_and_never_claim() {
        let alice = person("alice", "Alice");
        assert_eq!(
            decide(None, "bob", &access("alice", false), Action::Query),
            Decision::Proceed
        );
        assert_eq!(
            decide(Some(&alice), "bob", &access("alice", true), Action::Query),
            Decision::Proceed
        );
        assert!(matches!(
            decide(Some(&alice), "bob", &access("alice", false), Action::Query),
            Decision::Refuse(_)
        ));
    }
}
