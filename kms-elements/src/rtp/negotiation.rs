//! The SdpEndpoint state machine of spec §10.5 for the RtpEndpoint: one
//! negotiation per endpoint, in either role. Pure; the endpoint holds it
//! under one lock for the whole of a negotiation call.

use kms_core::Error;

use super::sdp::Offered;
use crate::webrtc::sdp::{
    SDP_END_POINT_ALREADY_NEGOTIATED, SDP_END_POINT_ANSWER_ALREADY_PROCCESED, SDP_END_POINT_NO_LOCAL_SDP_ERROR,
    SDP_END_POINT_NO_REMOTE_SDP_ERROR, SDP_END_POINT_NOT_OFFER_GENERATED, err,
};

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    #[default]
    Idle,
    /// generateOffer done, waiting for processAnswer.
    OfferGenerated,
    /// processOffer done.
    Answered,
    /// generateOffer + processAnswer done.
    AnswerProcessed,
}

#[derive(Debug, Default)]
pub struct Negotiation {
    pub phase: Phase,
    pub local: Option<String>,
    pub remote: Option<String>,
    /// The sections of our offer, for checking the answer.
    pub offered: Vec<Offered>,
}

impl Negotiation {
    /// generateOffer and processOffer: only on a fresh endpoint.
    pub fn check_can_start(&self) -> Result<(), Error> {
        match self.phase {
            Phase::Idle => Ok(()),
            _ => Err(err(SDP_END_POINT_ALREADY_NEGOTIATED, "Endpoint already negotiated")),
        }
    }

    /// processAnswer: only after generateOffer, once.
    pub fn check_can_answer(&self) -> Result<(), Error> {
        match self.phase {
            Phase::OfferGenerated => Ok(()),
            Phase::AnswerProcessed => Err(err(SDP_END_POINT_ANSWER_ALREADY_PROCCESED, "Answer already processed")),
            Phase::Idle | Phase::Answered => Err(err(SDP_END_POINT_NOT_OFFER_GENERATED, "Offer not generated")),
        }
    }

    pub fn offer_generated(&mut self, local: String, offered: Vec<Offered>) {
        self.phase = Phase::OfferGenerated;
        self.local = Some(local);
        self.offered = offered;
    }

    pub fn offer_answered(&mut self, remote: String, local: String) {
        self.phase = Phase::Answered;
        self.remote = Some(remote);
        self.local = Some(local);
    }

    pub fn answer_processed(&mut self, remote: String) {
        self.phase = Phase::AnswerProcessed;
        self.remote = Some(remote);
    }

    pub fn local_sdp(&self) -> Result<String, Error> {
        self.local.clone().ok_or_else(|| err(SDP_END_POINT_NO_LOCAL_SDP_ERROR, "No local SDP"))
    }

    pub fn remote_sdp(&self) -> Result<String, Error> {
        self.remote.clone().ok_or_else(|| err(SDP_END_POINT_NO_REMOTE_SDP_ERROR, "No remote SDP"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offerer_path() {
        let mut n = Negotiation::default();
        assert_eq!(n.local_sdp().unwrap_err().code(), 40202);
        assert_eq!(n.remote_sdp().unwrap_err().code(), 40203);
        assert_eq!(n.check_can_answer().unwrap_err().code(), 40209, "processAnswer before generateOffer");
        n.check_can_start().unwrap();
        n.offer_generated("o".into(), vec![]);
        assert_eq!(n.check_can_start().unwrap_err().code(), 40208, "second generateOffer / processOffer");
        assert_eq!(n.local_sdp().unwrap(), "o");
        assert_eq!(n.remote_sdp().unwrap_err().code(), 40203);
        n.check_can_answer().unwrap();
        n.answer_processed("a".into());
        assert_eq!(n.check_can_answer().unwrap_err().code(), 40210, "second processAnswer");
        assert_eq!(n.remote_sdp().unwrap(), "a");
    }

    #[test]
    fn answerer_path() {
        let mut n = Negotiation::default();
        n.offer_answered("offer".into(), "answer".into());
        assert_eq!(n.check_can_start().unwrap_err().code(), 40208);
        assert_eq!(n.check_can_answer().unwrap_err().code(), 40209);
        assert_eq!((n.local_sdp().unwrap(), n.remote_sdp().unwrap()), ("answer".into(), "offer".into()));
    }
}
