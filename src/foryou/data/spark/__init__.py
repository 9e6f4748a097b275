"""The Spark engine of `prepare` (`foryou prepare CONFIG --engine spark`): the same tables as the pandas engine.

Row-local steps (parsing the source, cleaning, event weights) run the pandas engine's own functions on each
partition, so both engines agree row for row; steps that need the whole log (dedup, activity filters, splits)
are Spark jobs; the surviving events are then indexed on the driver with the pandas engine's code.
"""
