"""Training mixers on a MUSDB18-HQ-layout dataset (`mdxmix train`)."""
