"""Curation of the DESOM-2 label map: experts' cell edits kept in the archive, published as new model versions."""
