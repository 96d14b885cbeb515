"""The three ways to run the stages of :mod:`dcqformat.encode.stages`.

- :mod:`.single`: one process (``convert(src, dst)``);
- :mod:`.sharded`: ``fit_only`` (fit state to a file) and ``state`` + ``shard="i/N"`` runs that
  any scheduler can drive, joined by :func:`dcqformat.format.merge.merge_shards`;
- :mod:`.torchrun`: one rank of a torch.distributed job, with the collectives between stages.

:mod:`.common` holds what they share (argument checks, the model, the summary).
"""
