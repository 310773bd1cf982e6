//! Workflow models: data-driven state charts that say which desktop actions are enabled in each
//! view state. A model is JSON: `{"name", "initial", "states": {state: {"on": {action: next}}}}`;
//! an action is enabled in a state exactly when the state has a transition for it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use serde::Deserialize;
use thiserror::Error;

use super::error::{DomainError, DomainResult};

/// The model used when `PrepareSession` names none.
pub const DEFAULT_MODEL: &str = "default";
const BUILT_IN_DEFAULT: &str = include_str!("../../models/default.json");

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ModelError {
    #[error("not a valid workflow model: {0}")]
    Syntax(String),
    #[error("model '{model}': {reason}")]
    Invalid { model: String, reason: String },
    #[error("two models are named '{0}'")]
    Duplicate(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFile {
    name: String,
    #[serde(default)]
    description: String,
    initial: String,
    states: BTreeMap<String, StateFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    #[serde(default)]
    on: BTreeMap<String, String>,
}

/// A validated model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowModel {
    pub name: String,
    pub description: String,
    pub initial: String,
    /// Every action any state mentions, in name order: the list desktops are told about.
    pub actions: Vec<String>,
    transitions: BTreeMap<String, BTreeMap<String, String>>,
}

impl WorkflowModel {
    pub fn parse(json: &str) -> Result<Self, ModelError> {
        let file: ModelFile =
            serde_json::from_str(json).map_err(|e| ModelError::Syntax(e.to_string()))?;
        let invalid = |reason: String| ModelError::Invalid {
            model: file.name.clone(),
            reason,
        };
        if crate::domain::bounds::check_id("name", &file.name).is_err() {
            return Err(invalid(
                "name must be 1-128 letters, digits, '.', '_', '@' or '-'".into(),
            ));
        }
        if !file.states.contains_key(&file.initial) {
            return Err(invalid(format!(
                "initial state '{}' is not defined",
                file.initial
            )));
        }
        for (state, def) in &file.states {
            for (action, target) in &def.on {
                if action.starts_with(crate::domain::routing::DesktopAction::PREFIX) {
                    return Err(invalid(format!(
                        "state '{state}': action '{action}' is reserved for routing"
                    )));
                }
                if !file.states.contains_key(target) {
                    return Err(invalid(format!(
                        "state '{state}', action '{action}': target '{target}' is not defined"
                    )));
                }
            }
        }
        let actions: BTreeSet<String> = file
            .states
            .values()
            .flat_map(|s| s.on.keys().cloned())
            .collect();
        Ok(Self {
            actions: actions.into_iter().collect(),
            transitions: file.states.into_iter().map(|(k, v)| (k, v.on)).collect(),
            name: file.name,
            description: file.description,
            initial: file.initial,
        })
    }

    /// Every action with whether it is enabled in `view_state`.
    pub fn actions_in(&self, view_state: &str) -> Vec<(String, bool)> {
        let enabled = self.transitions.get(view_state);
        self.actions
            .iter()
            .map(|a| (a.clone(), enabled.is_some_and(|on| on.contains_key(a))))
            .collect()
    }

    /// The state `action` leads to from `view_state`.
    pub fn next_state(&self, view_state: &str, action: &str) -> DomainResult<&str> {
        if !self.actions.iter().any(|a| a == action) {
            return Err(DomainError::not_found("action", action));
        }
        self.transitions
            .get(view_state)
            .and_then(|on| on.get(action))
            .map(String::as_str)
            .ok_or_else(|| {
                DomainError::FailedPrecondition(format!(
                    "action '{action}' is not enabled in view state '{view_state}'"
                ))
            })
    }
}

/// The models a server knows, by name. Always holds the built-in `default`.
#[derive(Debug, Clone)]
pub struct ModelCatalog {
    models: HashMap<String, Arc<WorkflowModel>>,
}

impl Default for ModelCatalog {
    fn default() -> Self {
        let default = WorkflowModel::parse(BUILT_IN_DEFAULT).expect("the built-in model is valid");
        Self {
            models: HashMap::from([(default.name.clone(), Arc::new(default))]),
        }
    }
}

impl ModelCatalog {
    /// Adds a model; a file may replace the built-in `default`, but two files may not share a name.
    pub fn add(&mut self, model: WorkflowModel, replaces_builtin: bool) -> Result<(), ModelError> {
        let name = model.name.clone();
        let is_builtin_slot = name == DEFAULT_MODEL && replaces_builtin;
        if self.models.contains_key(&name) && !is_builtin_slot {
            return Err(ModelError::Duplicate(name));
        }
        self.models.insert(name, Arc::new(model));
        Ok(())
    }

    /// Looks a model up by the name a request gives; empty means `default`.
    pub fn get(&self, name: &str) -> DomainResult<&Arc<WorkflowModel>> {
        let name = if name.is_empty() { DEFAULT_MODEL } else { name };
        self.models
            .get(name)
            .ok_or_else(|| DomainError::not_found("model", super::ids::shorten(name)))
    }

    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.models.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_model_logs_in_and_out() {
        let catalog = ModelCatalog::default();
        let model = catalog.get("").unwrap();
        assert_eq!(model.initial, "initial");
        assert_eq!(
            model.actions_in("initial"),
            vec![
                ("session.login".into(), true),
                ("session.logout".into(), false)
            ]
        );
        assert_eq!(
            model.next_state("initial", "session.login").unwrap(),
            "logged_in"
        );
        assert_eq!(
            model.next_state("logged_in", "session.logout").unwrap(),
            "initial"
        );
    }

    #[test]
    fn disabled_and_unknown_actions_are_refused() {
        let catalog = ModelCatalog::default();
        let model = catalog.get(DEFAULT_MODEL).unwrap();
        assert!(matches!(
            model.next_state("initial", "session.logout"),
            Err(DomainError::FailedPrecondition(_))
        ));
        assert!(matches!(
            model.next_state("initial", "session.fly"),
            Err(DomainError::NotFound { .. })
        ));
        assert!(matches!(
            catalog.get("nope"),
            Err(DomainError::NotFound { .. })
        ));
    }

    #[test]
    fn invalid_models_say_what_is_wrong() {
        let err = WorkflowModel::parse(r#"{"name":"m","initial":"x","states":{}}"#).unwrap_err();
        assert_eq!(
            err.to_string(),
            "model 'm': initial state 'x' is not defined"
        );
        let err =
            WorkflowModel::parse(r#"{"name":"m","initial":"a","states":{"a":{"on":{"go":"b"}}}}"#)
                .unwrap_err();
        assert_eq!(
            err.to_string(),
            "model 'm': state 'a', action 'go': target 'b' is not defined"
        );
        assert!(matches!(
            WorkflowModel::parse("{"),
            Err(ModelError::Syntax(_))
        ));
    }
}
