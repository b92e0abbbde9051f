"""The example Orchestration of each strategy, by file name: the same names under examples/ (language-model
agents) and tests/data/deterministic/ (the deterministic demo agents)."""

STRATEGY_FILES = {
    "pipeline": "pipeline.yaml",
    "hierarchical": "hierarchical.yaml",
    "swarm": "swarm.yaml",
    "eventDriven": "event-driven.yaml",
    "centralCommand": "central-command.yaml",
    "peerToPeer": "peer-to-peer.yaml",
    "market": "market.yaml",
}
