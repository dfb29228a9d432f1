"""manta: the task side of Manta as manta-node ships it in its task image.

A minimal re-implementation of the light task API of the Manta SDK (`manta` 0.5b0): the same
import paths (`manta.light.task.Task`, `manta.light.utils`, ...), so task code written for the
platform runs unmodified. See python/README.md for what is and is not covered.
"""
__version__ = "0.5b0"
