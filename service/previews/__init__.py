"""Focal-plane previews of exposures, made while they are classified and kept beside the archive."""
