"""The operator's web pages (`skyqa web`): night view, exposures, the two maps, cell galleries and curation."""
