"""The study commands: each one runs an experiment over models and faces and writes what docs/ reports and
the records it rests on (`python -m analysis.studies.NAME --help`). The measures and figures they use are
the library in analysis/ proper.

    ablation    the light Table I: train, score and tabulate every run (docs/ABLATION.md)
    lam_study   LAM of several models on the same faces and windows, paired statistics (docs/LAM.md)
    distances   how far each block looks, over many faces (docs/ATTENTION.md)
    sweep       does the graph threshold T matter? a sweep over a folder of faces
    report      every analysis figure for one face, as PNGs and one HTML page
"""
