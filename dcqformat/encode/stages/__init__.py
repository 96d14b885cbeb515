"""The stages of a conversion, each a function from typed inputs to a typed result.

==============  =================================  =========================================
module          function(s)                        result
==============  =================================  =========================================
``proxy``       ``train_proxy_on_sample``          the task model (stages sample + train)
``analyse``     ``analyse``                        :class:`~.analyse.Analysis`
``fit``         ``cluster``, ``palettes``,         :class:`~.fit.Clusters`,
                ``refine``                         :class:`~.fit.PaletteTable`,
                                                   :class:`~.fit.RefineStats`
``select``      ``select``                         a selection plan + compacted palettes
``write``       ``write``                          :class:`~.write.WriteStats` (the file)
``provenance``  ``provenance``                     the provenance record
==============  =================================  =========================================

:mod:`.context` holds what they share (:class:`~.context.RunContext`). The drivers in
:mod:`dcqformat.encode.drivers` compose them; ``docs/architecture.md`` draws the picture.
"""
