"""`measure.head_effects` with the heads dealt out to an executor's workers.

Each head's effect is measured against the same clean forward, batch by batch, so a
worker that measures a share of the heads (after its own clean forward of the same
text, with the driver's thread count) gets the same figures as one process measuring
all of them (`headcode.executor`). Each worker loads the model once.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from headcode.library import Level
from headcode.replace import measure


def head_effects(executor, loaded, library, tables: Sequence, *, level: Level = Level.FULL, batch_size: int = 8,
                 force: bool = False, progress: bool = False) -> dict[tuple[int, int], dict[str, float]]:
    """`measure.head_effects` of `loaded` (a loaders.models.LoadedModel) on `executor`:
    in this process exactly that call; on Ray, shards of heads (two per worker, dealt
    round-robin so that each holds early and late layers alike) on actors that each
    load `loaded.name`."""
    if executor.is_local:
        return measure.head_effects(loaded.model, loaded.tokenizer, library, tables, level=level,
                                    batch_size=batch_size, force=force, progress=progress)
    from headcode.loaders.models import load_model

    keys = [key for key in library if level in library[key].levels]
    count = min(len(keys), 2 * executor.workers)
    shards = [library.replace(heads=[library[key] for key in keys[k::count]]) for k in range(count)]
    parts = executor.map_with(functools.partial(load_model, loaded.name, executor.device.value), _measure, shards,
                              list(tables), level, batch_size, force, desc=f"measure heads ({level.value})",
                              progress=progress)
    found = {key: effect for part in parts for key, effect in part.items()}
    return {key: found[key] for key in keys}


def _measure(loaded, library, tables: Sequence, level: Level, batch_size: int, force: bool) -> dict:
    return measure.head_effects(loaded.model, loaded.tokenizer, library, tables, level=level, batch_size=batch_size,
                                force=force)
