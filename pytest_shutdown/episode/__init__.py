"""One episode: the agent loop, the task channel, evidence, the detector and the record."""
