"""``dcqformat convert --budget SIZE``: choose every lever for the user's byte budget.

- :mod:`.budget`    ``"400KB"`` -> bytes
- :mod:`.plans`     :class:`~.plans.Plan` (palettes, q, scale, image share, patch dropping) and
  the candidate grid
- :mod:`.measure`   exact bytes of a plan on a sample, extrapolated with a 95 % error
- :mod:`.estimate`  the training-value estimate (a CNN trained on the decoded sample, tested
  on held-out originals)
- :mod:`.choose`    :func:`~.choose.make_plan`: measure, estimate, choose
- :mod:`.run`       :func:`~.run.convert_within_budget`: convert with the chosen plan; the file
  never exceeds the budget

``docs/budget.md`` explains it for users.
"""
