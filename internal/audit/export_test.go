package audit

// CheckpointMessage exposes what a checkpoint signs, for tests that forge
// one the way an attacker with another key would.
var CheckpointMessage = checkpointMessage
