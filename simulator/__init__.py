"""GalSim simulator of MegaCam-like exposures of known quality class (truth in a separate manifest).

Modules: params (truth + class draws), mosaic (detector), site (camera + sky: cfht, unseen), psf, sources, sky,
exposure, night, truth, cli.
"""
