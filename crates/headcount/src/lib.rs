//! headcount: cluster membership by gossip.
