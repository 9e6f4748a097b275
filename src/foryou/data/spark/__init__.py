"""The Spark engine of `prepare` (`foryou prepare CONFIG --engine spark`): the same tables as the pandas engine.

`foryou.data.prepare` runs the same pipeline over either engine; here are the Spark table operations. Row-local
steps (parsing the source, cleaning, event weights) run the functions the pandas engine runs, on each partition,
so both engines agree row for row; steps that need the whole log (dedup, activity filters, splits) are Spark
jobs; the split events are then collected and indexed on the driver by the pipeline.
"""
