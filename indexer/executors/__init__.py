"""Who runs the stages: this process with helpers ahead of the model (``local``, ``decoding``,
``workers``), or one builder process per GPU (``gpus``)."""
