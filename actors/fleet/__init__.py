"""The brain between GoCD and Mesos: the Judge (pure scaling policies and their thin actor),
the AgentRegistry (the fleet's state machine) and GoCD's job-to-agent matching rule."""
