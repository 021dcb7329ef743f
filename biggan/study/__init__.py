"""biggan.study: a grid of settings x seeds, each an ordinary run, scored alike, in one table.

A study is a base preset plus a grid of dotted overrides (`--grid train.batch_size=16,32` or a
YAML file, or a named study preset) times seeds. Each cell x seed is a normal run named
`<cell>-s<seed>` in the study's folder `<store>/<study>/`, which is that run's store; the study's
own files (study.json, study.csv, study.md, study.png, scores/) live beside the runs. No training
or evaluation code knows it is in a study (STYLE.md): this package plans the runs, scores them
with one feature extractor and one reference, and reads their files back into a table.

- `spec`: what a study is (StudySpec) and how grids are written;
- `plan`: every cell checked before any run starts, named, expanded over seeds;
- `presets`: the paper's studies as named grids (Table 1, Appendix H's sweeps, Appendix E's priors);
- `scoring`: one run scored at its checkpoint to evaluate (a collapsed run with nothing before its
  onset is a row that says so);
- `table`: per-cell mean +- std over seeds, written as study.csv, study.md and study.png.

Pure Python over the config, the run store and the evaluation package: no Prefect, no Ray (the
`study-biggan` flow in flows/study.py schedules the runs).
"""
