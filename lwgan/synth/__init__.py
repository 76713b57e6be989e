"""The synthetic data set embedded in lwgan: rendered people in iPER's layout with exact ground truth.

Subjects differ in body shape (betas), skin tone and hair; each wears several procedural outfits whose
patterns are glued to the body surface; every (subject, outfit) is filmed in iPER's two actions (an
A-pose turn and a sequence of movements) in front of a procedural background. See
`lwgan.synth.synthesize` for the layout on disk and `SynthOptions` for the knobs.
"""
