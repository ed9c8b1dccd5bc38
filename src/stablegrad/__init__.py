"""stablegrad: NumPy reference implementations for "Taming Unstable Gradients".

Each module covers one concept and can be read in one sitting:

- ``activations``   sigmoid, tanh, relu, leaky relu, their derivatives, saturation
- ``init``          Xavier/Glorot and He/Kaiming initializers, predicted variances
- ``layers``        dense and activation layers, stacks of them (forward/backward)
- ``normalization`` batch norm (staged and compact backward), layer norm, RMS norm
- ``residual``      residual blocks (no norm, pre-LN, post-LN, scaled branches), stacks, their variance
- ``clipping``      clipping by value, by norm and by global norm
- ``gradcheck``     centered finite differences and relative errors
- ``losses``, ``optim``, ``network``  a small MLP trainer with per-layer history
- ``diagnostics``   per-layer gradient norms, saturation, update-to-data ratio
- ``datasets``      seeded toy data sets (two moons, regression, classification)
- ``plotting``      chapter figures; every function returns the data it drew
- ``seeds``         statistics over seeds (median and range) for anything that passes through training
- ``checking``      learner-facing comparisons with diagnostic messages
"""

__version__ = "0.1.0"
