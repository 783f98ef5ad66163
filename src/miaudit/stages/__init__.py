"""The stages of an audit, one module each, in the order :mod:`miaudit.pipeline` calls
them:

- :mod:`~miaudit.stages.data`: the records, and the user's objects;
- :mod:`~miaudit.stages.plan`: the attacks that run, and every refusal made before
  anything trains;
- the game (:mod:`miaudit.games`), which draws the splits and makes the target, from
  :mod:`~miaudit.stages.targets` (saved folders, services, membership files),
  :mod:`~miaudit.stages.shadow_data` (the shadows' records) and
  :mod:`~miaudit.stages.models` (who trains what);
- :mod:`~miaudit.stages.models` again: the models trained;
- :mod:`~miaudit.stages.queries`: the target and the models asked;
- :mod:`~miaudit.stages.attacks`: the attacks scored;
- :mod:`~miaudit.stages.result`: the result assembled.
"""
