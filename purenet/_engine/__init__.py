"""purenet's fast engine (private): how the network of :mod:`purenet.reference` is
computed quickly on a CPU. Blocks of rows on purenet's threads (:mod:`.threads`), tiles
for skinny products (:mod:`.blocks`), batches packed without their blank columns
(:mod:`.packing`), and the block-by-block passes themselves (:mod:`.network`). Nothing
here changes what is computed, only the order of float additions."""
