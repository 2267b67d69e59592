"""Activation steering: difference-of-means directions and a hook that adds them to the residual stream."""
