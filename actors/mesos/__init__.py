"""The Mesos side: the MesosBridge actor, the scheduler adapter that turns driver callbacks
into messages, the v1 scheduler HTTP driver (and the pymesos option), and the offer codec
and placement."""
