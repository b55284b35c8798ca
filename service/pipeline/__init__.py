"""The per-exposure pipeline: read a FITS file, detect, cut out, measure, build the histo-vector, classify.

Training imports its preprocessing from here, so training and serving cannot drift.
"""
