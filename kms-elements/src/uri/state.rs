//! The UriEndpoint state (`getState`, `UriEndpointStateChanged`) as a pure
//! machine: commands and media happenings in, the transition to announce
//! out. The endpoints apply it under their own lock and raise the event.

use kms_core::api::core::UriEndpointState;

/// What moves the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriCommand {
    /// `play()` / `record()`.
    Start,
    /// `pause()`.
    Pause,
    /// `stop()`, and the end of the media (EOS, an error that ended it).
    Stop,
}

/// A change to announce with `UriEndpointStateChanged`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    pub from: UriEndpointState,
    pub to: UriEndpointState,
}

/// Starts in STOP (KMS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UriStateMachine {
    state: UriEndpointState,
}

impl Default for UriStateMachine {
    fn default() -> Self {
        UriStateMachine { state: UriEndpointState::Stop }
    }
}

impl UriStateMachine {
    pub fn state(&self) -> UriEndpointState {
        self.state
    }

    /// Applies `cmd`. Every command is legal in every state (KMS accepts
    /// `pause()` on a stopped player and `stop()` twice); only a real
    /// change is returned, so repeated commands raise no event.
    pub fn apply(&mut self, cmd: UriCommand) -> Option<Transition> {
        let to = match cmd {
            UriCommand::Start => UriEndpointState::Start,
            UriCommand::Pause => UriEndpointState::Pause,
            UriCommand::Stop => UriEndpointState::Stop,
        };
        let from = std::mem::replace(&mut self.state, to);
        (from != to).then_some(Transition { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use UriEndpointState::*;

    #[test]
    fn starts_stopped_and_reports_only_changes() {
        let mut m = UriStateMachine::default();
        assert_eq!(m.state(), Stop);
        assert_eq!(m.apply(UriCommand::Stop), None);
        assert_eq!(m.apply(UriCommand::Start), Some(Transition { from: Stop, to: Start }));
        assert_eq!(m.apply(UriCommand::Start), None);
        assert_eq!(m.apply(UriCommand::Pause), Some(Transition { from: Start, to: Pause }));
        assert_eq!(m.apply(UriCommand::Pause), None);
        assert_eq!(m.apply(UriCommand::Start), Some(Transition { from: Pause, to: Start }));
        assert_eq!(m.apply(UriCommand::Stop), Some(Transition { from: Start, to: Stop }));
        assert_eq!(m.state(), Stop);
    }

    #[test]
    fn pause_from_stop_is_a_change() {
        let mut m = UriStateMachine::default();
        assert_eq!(m.apply(UriCommand::Pause), Some(Transition { from: Stop, to: Pause }));
        assert_eq!(m.apply(UriCommand::Stop), Some(Transition { from: Pause, to: Stop }));
    }
}
