"""The Hub side of a run: the model card (`card`) and the push (`push`: pre-flight, what a push leaves out)."""
