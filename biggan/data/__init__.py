"""biggan.data: raw images -> WebDataset shards -> training/eval batches.

sources.py    ImageNet folders (class folders or flat val + ground truth) and JFT-style manifests
preprocess.py decode to 8-bit RGB, centre square crop, area resize (Appendix C), encode
shard.py      plan_shards / write_shard / finalize_dataset (idempotent, resumable) and shard_dataset
info.py       DatasetInfo (OUT/dataset.json)
loader.py     train_loader (infinite, rank-split, multi-label draws) and eval_loader (every sample once)
samples.py    a tar's samples through the storage layer, one sample parsed and checked, images to a batch
demo.py       the embedded digits demo data
progress.py   images done, rate and ETA
"""
